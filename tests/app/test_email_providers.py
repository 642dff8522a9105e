"""emailProviders:* and providerRoutes:* — provider settings with secrets sealed at rest
and never answered by any query; routes per message type, the outbox by default."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import pytest

from owlat.app.lib import instance
from owlat.app.lib.email_providers.configured import build_provider
from owlat.app.lib.email_providers.smtp import SmtpProvider
from owlat.app.lib.email_providers.types import ErrorKind
from owlat.app.lib.sending.attachments import FetchPolicy
from owlat.app.lib.sending.routes import Attempt, record_attempts
from owlat.app.schema import ORG_TABLES
from owlat.config import Settings
from owlat.runtime import ConvexError
from owlat.runtime.application import Application
from owlat.runtime.errors import OwlatError
from owlat.runtime.testing import in_mutation, in_query
from tests.app.conftest import Caller, owner_and_editor
from tests.app.test_tenancy import _values

PASSWORD = "smtp-Pa55word-kept-secret"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY"
AWS_KEY_ID = "AKIAIOSFODNN7SECRETID"
RESEND_KEY = "re_live_0123456789abcdefSECRET"


@pytest.fixture
async def owlat(owlat_on_both_engines: Application) -> Application:
    """These tests run on SQLite and PostgreSQL."""
    return owlat_on_both_engines


@pytest.fixture
async def team(owlat: Application) -> tuple[Caller, Caller]:
    owner, editor, _ = await owner_and_editor(owlat)
    return owner, editor


async def _configure_all(owner: Caller) -> None:
    await owner.mutation(
        "emailProviders:saveSmtp",
        {"host": "Relay.Example.NET", "port": 465, "security": "tls", "username": "mailer",
         "password": PASSWORD},
    )  # fmt: skip
    await owner.mutation(
        "emailProviders:saveSes",
        {"region": "eu-west-1", "accessKeyId": AWS_KEY_ID, "secretAccessKey": AWS_SECRET},
    )
    await owner.mutation("emailProviders:saveResend", {"apiKey": RESEND_KEY})


async def _organization_rows(owlat: Application, organization_id: str) -> dict[str, Any]:
    async def read(ctx: Any) -> dict[str, Any]:
        rows: dict[str, Any] = {}
        for table in ORG_TABLES:
            found = await (
                ctx.db.query(table)
                .with_index("by_org", lambda q: q.eq("organizationId", organization_id))
                .collect()
            )
            rows.update({row["_id"]: dict(row) for row in found})
        return rows

    return dict(await in_query(owlat, read))


async def test_settings_are_checked_and_answered_masked(team: tuple[Caller, Caller]) -> None:
    owner, editor = team
    await _configure_all(owner)
    listed = await editor.query("emailProviders:list")
    assert [(p["kind"], p["settings"], p["secretsSet"]) for p in listed] == [
        ("smtp", {"host": "relay.example.net", "port": 465, "security": "tls",
                  "username": "mailer"}, ["password"]),
        ("ses", {"region": "eu-west-1"}, ["accessKeyId", "secretAccessKey"]),
        ("resend", {}, ["apiKey"]),
    ]  # fmt: skip
    with pytest.raises(ConvexError, match="^Admin access required$"):
        await editor.mutation("emailProviders:saveResend", {"apiKey": "re_x"})
    with pytest.raises(ConvexError, match="^SMTP host must be a host name or an IP address"):
        await owner.mutation("emailProviders:saveSmtp", {"host": "relay example"})
    with pytest.raises(ConvexError, match="^SMTP port must be a whole number from 1 to 65535$"):
        await owner.mutation("emailProviders:saveSmtp", {"host": "relay.example.net", "port": 0})
    with pytest.raises(ConvexError, match="^SES region must be an AWS region"):
        await owner.mutation("emailProviders:saveSes", {"region": "mars"})
    with pytest.raises(ConvexError, match="^apiKey must be at most 1024 characters"):
        await owner.mutation("emailProviders:saveResend", {"apiKey": " re_spaces "})


async def test_a_new_configuration_needs_its_secrets_an_update_keeps_them(
    owlat: Application, team: tuple[Caller, Caller]
) -> None:
    owner, _ = team
    with pytest.raises(ConvexError, match="^resend needs apiKey$"):
        await owner.mutation("emailProviders:saveResend", {})
    with pytest.raises(ConvexError, match="^ses needs accessKeyId and secretAccessKey$"):
        await owner.mutation("emailProviders:saveSes", {"region": "eu-west-1"})
    await _configure_all(owner)
    await owner.mutation("emailProviders:saveSmtp", {"host": "other.example.net", "username": "u"})
    organization = await owner.query("organizations:getActive")
    config = (
        await owlat.run_query(
            "emailProviders:sealed",
            {"organizationId": organization["_id"], "kind": "smtp"},
            internal=True,
        )
    ).value
    from owlat.app.lib.email_providers.configured import open_secrets

    assert open_secrets(organization["_id"], "smtp", config["credentials"]) == {
        "password": PASSWORD
    }
    assert config["settings"]["host"] == "other.example.net"


async def test_secrets_are_sealed_at_rest_and_in_no_query_result(
    owlat: Application, team: tuple[Caller, Caller]
) -> None:
    """Every public query, called with every id of the organization (and plain texts),
    answers nothing that holds a secret, its sealed form, or the domain's DKIM key."""
    owner, _ = team
    await _configure_all(owner)
    await owner.mutation("domains:create", {"domain": "signed.example.com", "providerKind": "smtp"})
    await owner.mutation(
        "providerRoutes:set",
        {"messageType": "test", "strategy": "single", "providers": [{"provider": "outbox"}]},
    )
    send_id = await owner.mutation(
        "emails:sendTest", {"to": "me@example.com", "subject": "Hi", "html": "<p>Hi</p>"}
    )
    organization_id = (await owner.query("organizations:getActive"))["_id"]
    rows = await _organization_rows(owlat, organization_id)
    stored = json.dumps(rows)
    for secret in (PASSWORD, AWS_SECRET, AWS_KEY_ID, RESEND_KEY, "BEGIN RSA PRIVATE KEY"):
        assert secret not in stored, f"{secret} is stored in the clear"
    sealed = [r["credentials"] for r in rows.values() if "credentials" in r]
    sealed += [r["dkimPrivateKey"] for r in rows.values() if "dkimPrivateKey" in r]
    assert len(sealed) == 4
    secrets = (PASSWORD, AWS_SECRET, AWS_KEY_ID, RESEND_KEY, *sealed)

    texts = [*rows, organization_id, send_id, "smtp", "ses", "resend", "me@example.com"]
    queries = [d for d in owlat.package.functions if not d.internal and d.kind.value == "query"]
    answered = 0
    for definition in queries:
        fields = definition.args.fields if definition.args is not None else {}
        for text in texts if fields else [""]:
            args = {name: _values(field, text) for name, field in fields.items()}
            if "paginationOpts" in args:
                args["paginationOpts"] = {"numItems": 100, "cursor": None}
            try:
                answer = await owner.query(definition.path, args)
            except OwlatError:
                continue
            answered += 1
            dumped = json.dumps(answer, default=str)
            for secret in secrets:
                assert secret not in dumped, f"{definition.path}({args}) answered a secret"
    assert answered > len(queries)


async def test_routes_default_to_the_outbox_then_the_first_configured_provider(
    team: tuple[Caller, Caller],
) -> None:
    owner, editor = team
    routes = await editor.query("providerRoutes:list")
    assert [r["messageType"] for r in routes] == ["campaign", "transactional", "automation", "test"]
    assert all(r["isDefault"] for r in routes)
    assert routes[0]["strategy"] == "single"
    assert routes[0]["providers"] == [
        {"provider": "outbox", "weight": 1, "enabled": True, "health": "healthy"}
    ]
    await owner.mutation("emailProviders:saveResend", {"apiKey": RESEND_KEY})
    routes = await owner.query("providerRoutes:list")
    assert routes[1]["providers"][0]["provider"] == "resend"


async def test_a_route_names_configured_providers_and_pins_them(
    team: tuple[Caller, Caller],
) -> None:
    owner, editor = team
    route = {"messageType": "campaign", "strategy": "priority_failover"}
    with pytest.raises(ConvexError, match="^smtp is not configured; configure it first$"):
        await owner.mutation("providerRoutes:set", {**route, "providers": [{"provider": "smtp"}]})
    await owner.mutation("emailProviders:saveSmtp", {"host": "relay.example.net"})
    with pytest.raises(ConvexError, match="^smtp is named twice$"):
        await owner.mutation(
            "providerRoutes:set", {**route, "providers": [{"provider": "smtp"}] * 2}
        )
    with pytest.raises(ConvexError, match="^A route needs at least one enabled provider$"):
        await owner.mutation(
            "providerRoutes:set", {**route, "providers": [{"provider": "smtp", "enabled": False}]}
        )
    with pytest.raises(ConvexError, match="^Weights are whole numbers from 0 to 1000$"):
        await owner.mutation(
            "providerRoutes:set", {**route, "providers": [{"provider": "smtp", "weight": 0.5}]}
        )
    with pytest.raises(ConvexError, match="^Admin access required$"):
        await editor.mutation("providerRoutes:set", {**route, "providers": [{"provider": "smtp"}]})
    saved = await owner.mutation(
        "providerRoutes:set",
        {**route, "providers": [{"provider": "smtp"}, {"provider": "outbox", "weight": 3}]},
    )
    assert saved["providers"] == [
        {"provider": "smtp", "weight": 1, "enabled": True},
        {"provider": "outbox", "weight": 3, "enabled": True},
    ]
    (campaign,) = [
        r for r in await owner.query("providerRoutes:list") if r["messageType"] == "campaign"
    ]
    assert (campaign["isDefault"], campaign["strategy"]) == (False, "priority_failover")
    with pytest.raises(ConvexError, match="^The campaign route uses smtp; change the route first$"):
        await owner.mutation("emailProviders:remove", {"kind": "smtp"})
    await owner.mutation("providerRoutes:reset", {"messageType": "campaign"})
    await owner.mutation("emailProviders:remove", {"kind": "smtp"})
    assert await owner.query("emailProviders:list") == []


PRIVATE_HOSTS = [
    ("127.0.0.1", "a loopback address"),
    ("::1", "a loopback address"),
    ("localhost", "a local host"),
    ("mail.local", "a local host"),
    ("10.1.2.3", "a private or reserved address"),
    ("192.168.1.20", "a private or reserved address"),
    ("169.254.169.254", "a link-local address"),
    ("::ffff:172.16.0.1", "a private or reserved address"),
]


@pytest.mark.parametrize(("host", "refusal"), PRIVATE_HOSTS)
async def test_an_smtp_relay_on_a_private_loopback_or_link_local_address_is_refused(
    team: tuple[Caller, Caller], monkeypatch: pytest.MonkeyPatch, host: str, refusal: str
) -> None:
    owner, _ = team
    production = dataclasses.replace(instance.current(), smtp_hosts=FetchPolicy())
    monkeypatch.setattr(instance, "_current", production)
    with pytest.raises(ConvexError) as refused:
        await owner.mutation("emailProviders:saveSmtp", {"host": host, "port": 25})
    assert str(refused.value) == (
        f"SMTP host {host} is {refusal}: an SMTP relay must be on a public address (the "
        "operator may allow private ones with OWLAT_ALLOW_PRIVATE_SMTP=1)"
    )
    assert await owner.query("emailProviders:list") == []
    # OWLAT_ALLOW_PRIVATE_SMTP=1: anywhere, the self-hoster's LAN relay included.
    monkeypatch.setattr(instance, "_current", dataclasses.replace(production, smtp_hosts=None))
    await owner.mutation("emailProviders:saveSmtp", {"host": host, "port": 25})


async def test_owlat_dev_allows_loopback_relays_only_and_the_operator_setting_any(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(instance, "_current", instance.current())  # restored after
    site_url = "http://127.0.0.1:1"
    served = instance.configure_from_settings(Settings(), tmp_path, site_url)
    assert served.smtp_hosts == FetchPolicy(allow_loopback=False)
    relay = {"host": "relay.example.net", "port": 25, "security": "none"}
    provider = build_provider("smtp", relay, {})
    assert isinstance(provider, SmtpProvider) and provider.settings.addresses == FetchPolicy()
    dev = instance.configure_from_settings(Settings(), tmp_path, site_url, development=True)
    assert dev.smtp_hosts == FetchPolicy(allow_loopback=True)
    monkeypatch.setenv("OWLAT_ALLOW_PRIVATE_SMTP", "1")
    allowed = instance.configure_from_settings(Settings.from_env(), tmp_path, site_url)
    assert allowed.smtp_hosts is None


async def test_providers_screen_shows_health_bands_over_recent_calls(
    owlat: Application,
) -> None:
    """One fault after successes stays healthy; the success rate over the window of recent
    calls and the status are what the providers list and the routes answer."""
    owner, _, organization_id = await owner_and_editor(owlat)
    await owner.mutation("emailProviders:saveResend", {"apiKey": RESEND_KEY})
    now = time.time() * 1000

    async def record(outcomes: str) -> None:
        attempts = [
            Attempt("resend", None if o == "1" else ErrorKind.SERVER_ERROR, "boom")
            for o in outcomes
        ]
        await in_mutation(owlat, lambda ctx: record_attempts(ctx, organization_id, attempts, now))

    async def health() -> tuple[dict[str, Any], str]:
        [provider] = await owner.query("emailProviders:list")
        routes = await owner.query("providerRoutes:list")
        return provider["health"], routes[0]["providers"][0]["health"]

    await record("1" * 19 + "0")
    shown, on_route = await health()
    assert (shown["status"], shown["successRate"], shown["windowCalls"]) == ("healthy", 0.95, 20)
    assert on_route == "healthy"
    await record("100")
    shown, on_route = await health()
    assert (shown["status"], shown["successRate"], on_route) == ("degraded", 0.85, "degraded")
    await record("00100100100")  # never 5 faults in a row, under 50 % over the window
    shown, on_route = await health()
    assert (shown["status"], on_route) == ("down", "down")
