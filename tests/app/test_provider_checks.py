"""emailProviders:testConnection — a configured provider reached with its stored settings
and secrets as a delivery would, sending nothing: a real aiosmtpd relay (STARTTLS, AUTH), a
local Resend that checks the key, moto_server for SES, the outbox folder."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import boto3
import pytest

from owlat.app.lib import instance
from owlat.app.lib.sending.attachments import FetchPolicy
from owlat.runtime import ConvexError
from owlat.runtime.application import Application
from tests.app.conftest import Caller, owner_and_editor
from tests.app.sending.servers import FakeResend, Sink, self_signed, smtp_server
from tests.e2e.conftest import serve_in_process
from tests.s3 import MotoServer, free_port

SMTP_PASSWORD = "relay-pa55word"


@pytest.fixture
async def owlat(owlat_on_both_engines: Application) -> Application:
    return owlat_on_both_engines


@pytest.fixture
async def team(owlat: Application) -> tuple[Caller, Caller]:
    owner, editor, _ = await owner_and_editor(owlat)
    return owner, editor


@pytest.fixture
def with_instance(monkeypatch: pytest.MonkeyPatch) -> None:
    """`instance.current()` restored after the test (each test points it elsewhere)."""
    monkeypatch.setattr(instance, "_current", instance.current())


def _point(**changes: object) -> None:
    instance._current = dataclasses.replace(instance.current(), **changes)  # type: ignore[arg-type]


async def _test(caller: Caller, kind: str) -> dict[str, object]:
    answer: dict[str, object] = await caller.action("emailProviders:testConnection", {"kind": kind})
    return answer


@pytest.fixture
async def relay(tmp_path: Path) -> AsyncIterator[tuple[Sink, int, Path]]:
    """An aiosmtpd relay requiring STARTTLS and AUTH (user "owlat"); its CA file."""
    ca_file, tls = self_signed(tmp_path)
    sink = Sink()
    async with smtp_server(sink, tls=tls, password=SMTP_PASSWORD) as port:
        yield sink, port, ca_file


async def test_an_smtp_relay_is_reached_signed_in_and_nothing_is_sent(
    team: tuple[Caller, Caller],
    relay: tuple[Sink, int, Path],
    with_instance: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    owner, editor = team
    sink, port, ca_file = relay
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))  # the relay's certificate is trusted
    _point(smtp_hosts=FetchPolicy(allow_loopback=True))
    smtp = {"host": "127.0.0.1", "port": port, "security": "starttls", "username": "owlat"}
    await owner.mutation("emailProviders:saveSmtp", {**smtp, "password": SMTP_PASSWORD})
    assert await _test(owner, "smtp") == {
        "ok": True,
        "message": f"127.0.0.1:{port} accepted the connection (STARTTLS, signed in as owlat)",
    }
    assert sink.authenticated and sink.received == []
    # a wrong password: refused by the relay, said as such
    await owner.mutation("emailProviders:saveSmtp", {**smtp, "password": "wrong"})
    refused = await _test(owner, "smtp")
    assert refused["ok"] is False and refused["errorKind"] == "AUTH_FAILED"
    assert str(refused["message"]).startswith("CONNECT: authentication refused: 535")
    # nobody listening
    await owner.mutation(
        "emailProviders:saveSmtp", {**smtp, "port": free_port(), "password": SMTP_PASSWORD}
    )
    closed = await _test(owner, "smtp")
    assert closed["ok"] is False and closed["errorKind"] == "SERVER_ERROR"
    assert "cannot connect to 127.0.0.1" in str(closed["message"])
    # an editor may not use the organization's secrets
    with pytest.raises(ConvexError, match="Admin access required"):
        await _test(editor, "smtp")


async def test_a_relay_name_resolving_to_a_private_address_is_refused_when_tested(
    team: tuple[Caller, Caller], relay: tuple[Sink, int, Path], with_instance: None
) -> None:
    """Saved while any relay was allowed (or while the name resolved to a public address):
    the address is checked again each time the name is resolved."""
    owner, _ = team
    sink, port, _ = relay
    _point(smtp_hosts=None)  # OWLAT_ALLOW_PRIVATE_SMTP=1
    await owner.mutation(
        "emailProviders:saveSmtp", {"host": "localhost", "port": port, "security": "none"}
    )
    _point(smtp_hosts=FetchPolicy())  # `owlat serve`: relays on public addresses only
    refused = await _test(owner, "smtp")
    assert refused["ok"] is False and refused["errorKind"] == "AUTH_FAILED"
    assert "an SMTP relay must be on a public address" in str(refused["message"])
    assert sink.connections == 0


async def test_a_resend_key_is_checked_full_access_restricted_or_wrong(
    team: tuple[Caller, Caller], with_instance: None
) -> None:
    owner, _ = team
    fake = FakeResend(
        domains=[
            {"id": "d1", "name": "shop.example", "status": "verified"},
            {"id": "d2", "name": "new.example", "status": "pending"},
        ]
    )
    async with serve_in_process(fake.app()) as url:
        _point(resend_api_url=url)
        await owner.mutation("emailProviders:saveResend", {"apiKey": fake.api_key})
        assert await _test(owner, "resend") == {
            "ok": True,
            "message": "Resend accepted the key (1 verified domains: shop.example)",
        }
        await owner.mutation("emailProviders:saveResend", {"apiKey": fake.sending_key})
        assert (await _test(owner, "resend"))["ok"] is True
        await owner.mutation("emailProviders:saveResend", {"apiKey": "re_wrong"})
        assert await _test(owner, "resend") == {
            "ok": False,
            "errorKind": "AUTH_FAILED",
            "message": "403 invalid_api_key: API key is invalid",
        }
    assert fake.sent == []


@pytest.fixture(scope="module")
def ses_server() -> Iterator[MotoServer]:
    with MotoServer.running() as server:
        yield server


async def test_ses_credentials_are_checked_by_a_signed_call(
    team: tuple[Caller, Caller], ses_server: MotoServer, with_instance: None
) -> None:
    owner, _ = team
    client = boto3.client(
        "sesv2",
        region_name="eu-west-1",
        endpoint_url=ses_server.endpoint_url,
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    client.create_email_identity(EmailIdentity="checked.example")
    client.close()
    _point(ses_endpoint_url=ses_server.endpoint_url)
    await owner.mutation(
        "emailProviders:saveSes",
        {"region": "eu-west-1", "accessKeyId": "AKIAIOSFODNN7EXAMPLE", "secretAccessKey": "x" * 40},
    )
    answer = await _test(owner, "ses")
    assert answer["ok"] is True, answer
    assert str(answer["message"]).startswith("SES (eu-west-1) accepted the key: 1 identities")
    _point(ses_endpoint_url=f"http://127.0.0.1:{free_port()}")  # nobody there
    unreachable = await _test(owner, "ses")
    assert unreachable["ok"] is False and unreachable["errorKind"] == "SERVER_ERROR"
    assert "cannot reach SES" in str(unreachable["message"])


async def test_the_outbox_and_an_unconfigured_provider(
    team: tuple[Caller, Caller], tmp_path: Path, with_instance: None
) -> None:
    owner, _ = team
    answer = await _test(owner, "outbox")
    assert answer == {"ok": True, "message": f"messages are written to {tmp_path / 'outbox'}"}
    with pytest.raises(ConvexError, match="not found"):
        await _test(owner, "smtp")
