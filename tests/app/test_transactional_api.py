"""POST /api/v1/transactional over real HTTP on the site port (reference §3.9, §10.2): the
answer's exact shape, upstream's validation messages, intake refusals with their reasons
in upstream's order, the contact upsert, Idempotency-Key for 24 hours, attachments (base64
stored and deleted once sent; https URLs fetched from public addresses only)."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from owlat.app.lib import instance
from owlat.app.lib.sending.attachments import FetchPolicy
from owlat.app.lib.sending.sends import send_body
from owlat.cli._shared import lean_paths
from owlat.runtime.auth import Authenticator
from owlat.runtime.database.commits import Commit
from owlat.runtime.errors import ArgumentValidationError, FunctionNotFoundError
from owlat.runtime.testing import in_mutation, in_query
from tests.app.conftest import Caller, Site, uploaded
from tests.app.mail_setup import settled
from tests.app.rendering.samples import text_block
from tests.app.sending.servers import https_server
from tests.app.test_rest_api import api_key, client, error, organization

BODY = [text_block("<p>Order {{orderId}}: {{total}} for <b>{{name|'you'}}</b></p>", "t1")]
SCHEMA = {"orderId": "string", "total": "number", "placedAt": "date"}
PDF = b"%PDF-1.4 a receipt"


@pytest.fixture
async def site(site_on_both_engines: Site, monkeypatch: pytest.MonkeyPatch) -> Site:
    """These tests run on SQLite and PostgreSQL, with a bucket big enough for them."""
    monkeypatch.setattr("owlat.app.api_keys.BUCKET_CAPACITY", 10_000.0)
    return site_on_both_engines


@dataclasses.dataclass
class Setup:
    owner: Caller
    organization_id: str
    email_id: str
    http: httpx.AsyncClient


@pytest.fixture
async def setup(site: Site) -> AsyncIterator[Setup]:
    """An organization with a published transactional email `order-receipt` and an API
    key allowed to send it."""
    owner, organization_id = await organization(site, "acme")
    email_id = await owner.mutation(
        "transactionalEmails:create",
        {"name": "Receipt", "slug": "order-receipt", "subject": "Order {{orderId}}",
         "content": json.dumps(BODY), "dataVariablesSchema": SCHEMA},
    )  # fmt: skip
    await owner.mutation("transactionalEmails:publish", {"transactionalEmailId": email_id})
    async with client(site, await api_key(owner)) as http:
        yield Setup(owner, organization_id, email_id, http)


def mails_to(site: Site, address: str) -> list[Any]:
    return [mail for mail in site.outbox() if mail["To"] == address]


async def rows(site: Site, table: str) -> list[dict[str, Any]]:
    async def read(ctx: Any) -> list[dict[str, Any]]:
        return [dict(row) for row in await ctx.db.query(table).collect()]

    return list(await in_query(site.application, read))


async def send(setup: Setup, **body: Any) -> httpx.Response:
    return await setup.http.post("/transactional", json={"slug": "order-receipt", **body})


# -- the happy path --------------------------------------------------------------------------


async def test_a_request_is_queued_answered_and_delivered_once(site: Site, setup: Setup) -> None:
    variables = {"orderId": "A-17", "total": 42.5, "name": "<Ada>"}
    response = await send(setup, email=" Ada@Example.com", dataVariables=variables)
    assert response.status_code == 202, response.text
    answer = response.json()["data"]
    contact_id = answer["contactId"]
    assert answer == {
        "status": "queued",
        "email": " Ada@Example.com",
        "transactionalEmailId": answer["transactionalEmailId"],
        "slug": "order-receipt",
        "contactId": contact_id,
        "contactCreated": True,
        "language": "en",
    }
    sent = await settled(setup.owner, answer["transactionalEmailId"])
    assert (sent["status"], sent["kind"], sent["email"]) == (
        "sent",
        "transactional",
        "ada@example.com",
    )
    assert (sent["transactionalEmailId"], sent["contactId"]) == (setup.email_id, contact_id)
    assert sent["dataVariables"] == variables
    (mail,) = mails_to(site, "ada@example.com")
    assert mail["Subject"] == "Order A-17"
    assert mail["Auto-Submitted"] == "auto-generated"
    assert mail["Feedback-ID"] == f"{setup.email_id}:{setup.organization_id}:transactional:owlat"
    html = mail.get_body(("html",)).get_content()
    assert "Order A-17: 42.5 for <b>&lt;Ada&gt;</b>" in html
    contact = await setup.owner.query("contacts:get", {"contactId": contact_id})
    assert contact["source"] == "transactional"
    again = await setup.http.post(
        "/transactional",
        json={"transactionalId": setup.email_id, "email": "ada@example.com",
              "language": "de", "addToAudience": False},
    )  # fmt: skip
    assert again.status_code == 202, again.text
    second = again.json()["data"]
    assert (second["slug"], second["contactId"], second["contactCreated"]) == (
        "",
        contact_id,
        False,
    )
    assert second["language"] == "en"  # the email has no German
    await settled(setup.owner, second["transactionalEmailId"])
    assert len(mails_to(site, "ada@example.com")) == 2


async def test_without_add_to_audience_no_contact_is_created(site: Site, setup: Setup) -> None:
    response = await send(setup, email="new@example.com", addToAudience=False)
    answer = response.json()["data"]
    assert "contactId" not in answer and answer["contactCreated"] is False
    assert await rows(site, "contacts") == []
    await settled(setup.owner, answer["transactionalEmailId"])
    assert len(mails_to(site, "new@example.com")) == 1


async def test_concurrent_requests_for_a_new_address_create_one_contact(
    site: Site, setup: Setup
) -> None:
    """The send's own contact lookup is the only check before it inserts the contact and
    its creation activity: it is in the send's read set, so requests racing for one new
    address still create one contact, with one activity."""
    answers = await asyncio.gather(*(send(setup, email="Race@Example.com") for _ in range(4)))
    assert [answer.status_code for answer in answers] == [202] * 4
    found = [answer.json()["data"] for answer in answers]
    assert sorted(data["contactCreated"] for data in found) == [False, False, False, True]
    (contact,) = await rows(site, "contacts")
    assert {data["contactId"] for data in found} == {contact["_id"]}
    assert (contact["email"], contact["source"], contact["properties"]) == (
        "race@example.com",
        "transactional",
        {},
    )
    (activity,) = await rows(site, "contactActivities")
    assert (activity["contactId"], activity["activityType"], activity["metadata"]) == (
        contact["_id"],
        "created",
        {"source": "transactional"},
    )
    assert activity["occurredAt"] == contact["createdAt"]


async def test_sends_share_the_rendering_and_keep_the_one_they_were_accepted_with(
    site: Site, setup: Setup
) -> None:
    """A send names the email's rendering (`sendContents`: one row for all the sends of one
    rendering) instead of carrying its bodies, and is personalized from it at delivery; an
    edit of the email makes a new row, and a send accepted before it keeps its own."""

    async def accepted(address: str, order: str) -> str:
        response = await send(setup, email=address, dataVariables={"orderId": order, "total": 1})
        assert response.status_code == 202, response.text
        return str(response.json()["data"]["transactionalEmailId"])

    first, second = await accepted("a@example.com", "A-1"), await accepted("b@example.com", "A-2")
    queued = {row["_id"]: row for row in await rows(site, "transactionalSends")}
    assert queued[first]["contentId"] == queued[second]["contentId"]
    assert not {"bodyId", "html", "text", "footerLinks"} & set(queued[first])
    assert await rows(site, "sendBodies") == []
    (content,) = await rows(site, "sendContents")
    assert "Order {{orderId}}" in content["html"]  # the rendering, not a personalized copy
    for send_id, address, order in ((first, "a", "A-1"), (second, "b", "A-2")):
        await settled(setup.owner, send_id)
        (mail,) = mails_to(site, f"{address}@example.com")
        assert mail["Subject"] == f"Order {order}"
        assert f"Order {order}: 1 for <b>you</b>" in mail.get_body(("html",)).get_content()
        assert f"Order {order}: 1 for you" in mail.get_body(("plain",)).get_content()

    async def bodies(ctx: Any) -> list[str]:  # in one call, as a claim of many sends reads them
        return [(await send_body(ctx, queued[send_id]))["html"] for send_id in (first, second)]

    one, two = await in_query(site.application, bodies)
    assert "Order A-1: 1 for" in one and "Order A-2: 1 for" in two

    edited = [text_block("<p>Receipt {{orderId}}</p>", "t1")]
    await setup.owner.mutation(
        "transactionalEmails:update",
        {"transactionalEmailId": setup.email_id, "content": json.dumps(edited),
         "showUnsubscribe": True, "forceWhilePublished": True},
    )  # fmt: skip
    third = await accepted("a@example.com", "A-3")
    row = next(row for row in await rows(site, "transactionalSends") if row["_id"] == third)
    assert row["contentId"] != queued[first]["contentId"]
    assert set(row["footerLinks"]) == {"preferences", "unsubscribe"}
    assert len(await rows(site, "sendContents")) == 2
    await settled(setup.owner, third)
    mail = mails_to(site, "a@example.com")[-1]
    html = mail.get_body(("html",)).get_content()
    assert "Receipt A-3" in html and "Manage preferences" in html and "for <b>" not in html
    assert "Unsubscribe: " in mail.get_body(("plain",)).get_content()
    # what the first send recorded is the rendering it was accepted with
    recorded = await setup.owner.query("transactionalSends:get", {"sendId": first})
    assert "Order A-1: 1 for <b>you</b>" in recorded["html"] and "Receipt" not in recorded["html"]
    assert "Manage preferences" not in recorded["text"]
    assert recorded["dataVariables"] == {"orderId": "A-1", "total": 1}
    assert not {"contentId", "footerLinks"} & set(recorded)


async def test_the_intakes_profile_of_an_email_follows_every_write_of_it(
    site: Site, setup: Setup
) -> None:
    """The intake reads a small `transactionalProfiles` row instead of the email: written in
    the transaction of every write of the email, so no request sees it older than the
    email (unpublished, renamed, edited, deleted); an email without one gets it."""

    async def status(**body: Any) -> tuple[int, str | None]:
        response = await send(setup, email="a@example.com", **body)
        reason = None if response.status_code == 202 else refusal(response)[2]
        return response.status_code, reason

    async def drop_profiles(ctx: Any) -> None:  # as before profiles existed
        for row in await ctx.db.query("transactionalProfiles").collect():
            await ctx.db.delete(row["_id"])

    by_id = {"transactionalId": setup.email_id, "slug": None}
    await in_mutation(site.application, drop_profiles)
    assert await status(**by_id) == (202, None)
    (profile,) = await rows(site, "transactionalProfiles")
    assert (profile["slug"], profile["status"], profile["hasContent"]) == (
        "order-receipt",
        "published",
        True,
    )
    assert set(profile["contents"]) == {"en"}
    email = {"transactionalEmailId": setup.email_id}
    await setup.owner.mutation("transactionalEmails:unpublish", email)
    assert await status() == (422, "template_not_published")
    await setup.owner.mutation("transactionalEmails:update", {**email, "slug": "receipt"})
    await setup.owner.mutation("transactionalEmails:publish", email)
    assert await status() == (404, "template_not_found")
    assert await status(slug="receipt") == (202, None)
    (profile,) = await rows(site, "transactionalProfiles")
    assert profile["slug"] == "receipt"
    await setup.owner.mutation("transactionalEmails:unpublish", email)
    await setup.owner.mutation("transactionalEmails:remove", email)
    assert await status(slug="receipt") == (404, "template_not_found")
    assert await status(**by_id) == (404, "template_not_found")
    assert await rows(site, "transactionalProfiles") == []
    assert len(await rows(site, "sendContents")) == 1  # its sends may still be queued


# -- refusals --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "email is required"),
        ({"email": 5}, "email must be a string"),
        ({"email": "nope"}, "Invalid email format"),
        ({"email": "a@b.co", "slug": None}, "Either transactionalId or slug is required"),
        ({"email": "a@b.co", "slug": 3}, "slug must be a string"),
        ({"email": "a@b.co", "transactionalId": "x", "slug": "y"},
         "Give either transactionalId or slug, not both"),
        ({"email": "a@b.co", "dataVariables": [1]}, "dataVariables must be an object"),
        ({"email": "a@b.co", "dataVariables": {"$x": 1}},
         "dataVariables keys must be 1 to 100 printable ASCII characters and not start with $"),
        ({"email": "a@b.co", "dataVariables": {"n": 2**60 + 1}},
         "dataVariables.n must be a number a 64-bit float holds exactly"),
        ({"email": "a@b.co", "language": 1}, "language must be a string"),
        ({"email": "a@b.co", "language": "english"},
         "language must be a language code such as en, de or pt-BR"),
        ({"email": "a@b.co", "addToAudience": "yes"}, "addToAudience must be a boolean"),
        ({"email": "a@b.co", "attachments": {}}, "attachments must be an array"),
        ({"email": "a@b.co", "attachments": [{"filename": "a.pdf", "url": "https://x.co/a"}] * 11},
         "Maximum 10 attachments allowed"),
        ({"email": "a@b.co", "attachments": [{"content": "QQ=="}]},
         "attachments[0].filename is required and must be a string"),
        ({"email": "a@b.co", "attachments": [{"filename": "a/b.pdf", "content": "QQ=="}]},
         "attachments[0].filename must not contain path separators"),
        ({"email": "a@b.co", "attachments": [{"filename": "run.exe", "content": "QQ=="}]},
         "attachments[0].filename has an extension mail providers refuse (.exe)"),
        ({"email": "a@b.co", "attachments": [{"filename": "a.pdf"}]},
         'attachments[0] must have exactly one of "content" (base64) or "url"'),
        ({"email": "a@b.co",
          "attachments": [{"filename": "a.pdf", "content": "QQ==", "url": "https://x.co"}]},
         'attachments[0] must have exactly one of "content" (base64) or "url"'),
        ({"email": "a@b.co", "attachments": [{"filename": "a.pdf", "url": "http://x.co/a"}]},
         "attachments[0].url must be an HTTPS URL"),
        ({"email": "a@b.co", "attachments": [{"filename": "a.pdf", "content": 7}]},
         "attachments[0].content must be a base64-encoded string"),
        ({"email": "a@b.co", "attachments": [{"filename": "a.pdf", "content": "QQ=!"}]},
         "attachments[0].content is not valid base64"),
        ({"email": "a@b.co", "attachments": [
            {"filename": f"{i}.pdf", "content": base64.b64encode(b"x" * 5_300_000).decode()}
            for i in range(2)]},
         "Total attachment size exceeds 10MB limit"),
    ],
)  # fmt: skip
async def test_shape_errors(site: Site, setup: Setup, body: dict[str, Any], message: str) -> None:
    payload = {"slug": "order-receipt", **body} if "transactionalId" not in body else body
    response = await setup.http.post("/transactional", json=payload)
    assert error(response) == (400, "invalid_input", message)
    assert await rows(site, "transactionalSends") == []


def refusal(response: httpx.Response) -> tuple[int, str, str, str]:
    body = response.json()["error"]
    return response.status_code, body["category"], body["data"]["reason"], body["message"]


async def test_intake_refusals_carry_their_reason_and_write_nothing(
    site: Site, setup: Setup
) -> None:
    owner = setup.owner
    await owner.mutation("blockedEmails:add", {"email": "gone@example.com", "reason": "bounced"})
    await owner.mutation("blockedEmails:add", {"email": "cold@example.com", "reason": "unengaged"})
    blocked = await send(setup, email="gone@example.com", slug="missing")
    assert refusal(blocked) == (
        422, "invalid_state", "recipient_blocked",
        "Cannot send to gone@example.com: gone@example.com is on the suppression list (bounced)",
    )  # fmt: skip
    missing = await send(setup, email="a@example.com", slug="missing")
    assert refusal(missing) == (
        404, "not_found", "template_not_found", 'Transactional email with slug "missing" not found'
    )  # fmt: skip
    draft = await owner.mutation(
        "transactionalEmails:create",
        {"name": "Draft", "slug": "draft", "subject": "S", "content": json.dumps(BODY)},
    )
    assert refusal(await send(setup, email="a@example.com", slug="draft"))[:3] == (
        422, "invalid_state", "template_not_published",
    )  # fmt: skip
    wrong_type = await send(setup, email="a@example.com", dataVariables={"total": "42"})
    assert refusal(wrong_type) == (
        400, "invalid_input", "invalid_variables",
        'Variable "total" should be of type "number", got "string"',
    )  # fmt: skip
    bad_date = await send(setup, email="a@example.com", dataVariables={"placedAt": "soon"})
    assert refusal(bad_date)[2] == "invalid_variables"
    await owner.mutation("organizationSettings:update", {"defaultFromEmail": "hi@shop-example.com"})
    await owner.mutation(
        "emailProviders:saveSmtp", {"host": "relay.example.net", "port": 2525, "security": "none"}
    )
    unverified = await send(setup, email="a@example.com", dataVariables={"total": "42"})
    assert refusal(unverified)[:3] == (422, "invalid_state", "domain_unverified")
    assert "shop-example.com is not a sending domain of this organization" in refusal(unverified)[3]
    assert await rows(site, "transactionalSends") == []
    assert await rows(site, "contacts") == []
    assert draft  # refused above
    await owner.mutation(
        "providerRoutes:set",
        {"messageType": "transactional", "strategy": "single",
         "providers": [{"provider": "outbox"}]},
    )  # fmt: skip
    cold = await send(setup, email="cold@example.com", dataVariables={"placedAt": 1.7e12})
    assert cold.status_code == 202, cold.text  # unengaged does not block transactional mail


async def _abuse_status(site: Site, status: str, reason: str | None = None) -> None:
    """What `owlat admin abuse set` asks the server for (the deployment admin's function)."""
    args = {"organization": "acme", "status": status, **({"reason": reason} if reason else {})}
    await site.application.run(None, "adminTools:setAbuseStatus", args, internal=True)


async def test_a_suspended_or_banned_organization_is_refused_first(
    site: Site, setup: Setup
) -> None:
    """abuse_blocked (403) comes before every other refusal (here a blocked recipient and a
    missing email); warned sends; members cannot set the status."""
    await setup.owner.mutation(
        "blockedEmails:add", {"email": "gone@example.com", "reason": "bounced"}
    )
    for status in ("suspended", "banned"):
        await _abuse_status(site, status, "spam complaints")
        refused = await send(setup, email="gone@example.com", slug="missing")
        assert refusal(refused) == (
            403, "forbidden", "abuse_blocked",
            f"Account {status}: sending is not allowed (spam complaints)",
        )  # fmt: skip
    assert await rows(site, "transactionalSends") == []
    shown = await setup.owner.query("organizationSettings:get")
    assert (shown["abuseStatus"], shown["abuseStatusReason"]) == ("banned", "spam complaints")
    await _abuse_status(site, "warned")
    accepted = await send(setup, email="a@example.com")
    assert accepted.status_code == 202, accepted.text
    with pytest.raises(ArgumentValidationError, match="extra field `abuseStatus`"):
        await setup.owner.mutation("organizationSettings:update", {"abuseStatus": "clean"})
    with pytest.raises(FunctionNotFoundError):  # internal: the deployment's admin key only
        await setup.owner.mutation(
            "adminTools:setAbuseStatus", {"organization": "acme", "status": "clean"}
        )


async def test_a_route_with_no_enabled_provider_is_refused_before_the_recipient(
    site: Site, setup: Setup
) -> None:
    """no_delivery_provider (422 invalid_state) when every provider of the transactional
    route is disabled; nothing recorded; the outbox default still sends."""
    accepted = await send(setup, email="a@example.com")
    assert accepted.status_code == 202, accepted.text  # nothing configured: the outbox
    await setup.owner.mutation(
        "blockedEmails:add", {"email": "gone@example.com", "reason": "bounced"}
    )
    await setup.owner.mutation(
        "providerRoutes:set",
        {"messageType": "transactional", "strategy": "single",
         "providers": [{"provider": "outbox"}]},
    )  # fmt: skip

    async def disable(ctx: Any) -> None:
        (route,) = await ctx.db.query("providerRoutes").collect()
        providers = [{**target, "enabled": False} for target in route["providers"]]
        await ctx.db.patch(route["_id"], {"providers": providers})

    await in_mutation(site.application, disable)
    refused = await send(setup, email="gone@example.com")
    assert refusal(refused) == (
        422, "invalid_state", "no_delivery_provider",
        "No delivery provider configured: every provider of the transactional route is disabled",
    )  # fmt: skip
    assert len(await rows(site, "transactionalSends")) == 1  # the first request's


async def test_the_scope_is_required(site: Site) -> None:
    owner, _ = await organization(site, "acme")
    async with client(site, await api_key(owner, ("contacts:read",))) as http:
        response = await http.post("/transactional", json={})
    assert error(response) == (
        403, "forbidden", "This API key is missing the required scope: transactional:send"
    )  # fmt: skip


async def test_a_published_email_without_blocks_is_refused(site: Site, setup: Setup) -> None:
    async def empty(ctx: Any) -> None:
        await ctx.db.patch(setup.email_id, {"content": " [ \n ] "})

    await in_mutation(site.application, empty)
    response = await send(setup, email="a@example.com")
    assert refusal(response)[:3] == (422, "invalid_state", "template_no_content")
    assert await rows(site, "transactionalSends") == []


async def test_the_key_is_checked_in_the_transaction_of_the_send(site: Site, setup: Setup) -> None:
    """One commit takes the key's token and queues the send (the check cannot be stale)."""
    commits: list[Commit] = []
    site.application.on_commit(commits.append)
    try:
        response = await send(setup, email="one@example.com", dataVariables={"orderId": "1"})
    finally:
        site.application.remove_commit_listener(commits.append)
    assert response.status_code == 202, response.text
    (queued,) = [
        commit
        for commit in commits
        if any(
            c.table == "transactionalSends" and c.old is None for c in commit.write_set.documents
        )
    ]
    assert {change.table for change in queued.write_set.documents} >= {"rateLimits"}


async def test_a_revoked_key_is_refused_on_the_next_request(site: Site) -> None:
    owner, _ = await organization(site, "acme")
    email_id = await owner.mutation(
        "transactionalEmails:create",
        {"name": "Receipt", "slug": "order-receipt", "subject": "Order",
         "content": json.dumps(BODY), "dataVariablesSchema": SCHEMA},
    )  # fmt: skip
    await owner.mutation("transactionalEmails:publish", {"transactionalEmailId": email_id})
    created = await owner.mutation(
        "apiKeys:create", {"name": "t", "scopes": ["transactional:send"]}
    )
    body = {"slug": "order-receipt", "email": "r@example.com"}
    async with client(site, created["apiKey"]) as http:
        assert (await http.post("/transactional", json=body)).status_code == 202
        await owner.mutation("apiKeys:revoke", {"keyId": created["keyId"]})
        response = await http.post("/transactional", json=body)
    assert error(response) == (401, "unauthenticated", "Invalid API key")
    assert len(await rows(site, "transactionalSends")) == 1


async def test_a_failing_key_check_is_a_server_error(
    site: Site, setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The check in the send's mutation and the one alone after it both fail: 500, as when
    `endpoint`'s own check fails (no rate headers), and nothing is queued."""

    async def failing(ctx: Any, key_hash: str) -> dict[str, Any]:
        raise RuntimeError("the key store is unreachable")

    monkeypatch.setattr("owlat.app.api_keys.check_key", failing)
    monkeypatch.setattr("owlat.app.rest_api.transactional.check_key", failing)
    response = await send(setup, email="a@example.com")
    assert error(response) == (500, "internal", "Internal server error")
    assert "x-ratelimit-remaining" not in response.headers
    assert await rows(site, "transactionalSends") == []


LONE = '{"slug": "order-receipt", "email": "a@example.com", "dataVariables": {"x": "\ud800"}}'


@pytest.mark.parametrize(
    "body",
    [
        LONE.replace("\ud800", "\\ud800").encode(),  # ASCII, an escape
        LONE.encode("utf-8", "surrogatepass"),  # read with surrogatepass
        LONE.encode("utf-16-le", "surrogatepass"),  # detected by its NULs
        b'{"slug": "order-receipt", "email": "a@example.com", "dataVariables": {"x": '
        + b"[" * 300 + b"]" * 300 + b"}}",  # as deep as the check can write back
    ],
)
async def test_a_body_a_document_cannot_hold_is_invalid_json(
    site: Site, setup: Setup, body: bytes
) -> None:
    """The lone-surrogate check is skipped only for bodies that cannot hold one."""
    response = await setup.http.post("/transactional", content=body)
    if body.count(b"[") == 300:
        assert error(response)[0] == 400, response.text
    else:
        assert error(response) == (400, "invalid_input", "Invalid JSON in request body")
    assert await rows(site, "transactionalSends") == []
    accepted = await send(setup, email="b@example.com", dataVariables={"name": "Zoë \u00e9"})
    assert accepted.status_code == 202, accepted.text


async def test_a_malformed_request_answers_the_keys_refusal_first(site: Site, setup: Setup) -> None:
    unknown = "lm_live_" + "x" * 40
    async with client(site, unknown) as http:
        response = await http.post("/transactional", content=b"{not json")
    assert error(response) == (401, "unauthenticated", "Invalid API key")
    response = await setup.http.post("/transactional", content=b"{not json")
    assert error(response) == (400, "invalid_input", "Invalid JSON in request body")
    assert response.headers["x-ratelimit-remaining"] == "9"  # the key was checked


# -- Idempotency-Key -------------------------------------------------------------------------


async def test_an_idempotency_key_replays_the_answer_for_24_hours(site: Site, setup: Setup) -> None:
    body = {"slug": "order-receipt", "email": "k@example.com", "dataVariables": {"orderId": "1"}}
    key = {"Idempotency-Key": "order-1"}
    first = await setup.http.post("/transactional", json=body, headers=key)
    replayed = await setup.http.post("/transactional", json=body, headers=key)
    assert first.status_code == replayed.status_code == 202
    assert replayed.json() == first.json()
    assert replayed.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    other = await setup.http.post(
        "/transactional", json={**body, "dataVariables": {"orderId": "2"}}, headers=key
    )
    assert refusal(other) == (
        409, "conflict", "idempotency_key_reused",
        "Idempotency-Key 'order-1' was already used with a different request body",
    )  # fmt: skip
    bad = await setup.http.post("/transactional", json=body, headers={"Idempotency-Key": ""})
    assert error(bad) == (
        400, "invalid_input", "Idempotency-Key must be 1 to 255 printable ASCII characters"
    )  # fmt: skip
    send_id = first.json()["data"]["transactionalEmailId"]
    await settled(setup.owner, send_id)
    assert len(mails_to(site, "k@example.com")) == 1
    assert len(await rows(site, "transactionalSends")) == 1

    async def expire(ctx: Any) -> None:
        for row in await ctx.db.query("apiIdempotencyKeys").collect():
            await ctx.db.patch(row["_id"], {"expiresAt": row["expiresAt"] - 24 * 3600 * 1000})

    await in_mutation(site.application, expire)
    later = await setup.http.post("/transactional", json=body, headers=key)
    assert later.status_code == 202 and later.json()["data"]["transactionalEmailId"] != send_id
    assert "idempotent-replayed" not in later.headers
    await settled(setup.owner, later.json()["data"]["transactionalEmailId"])
    assert len(mails_to(site, "k@example.com")) == 2
    await in_mutation(site.application, expire)
    purged = await site.application.run_mutation(
        "restApi/transactional:purgeIdempotencyKeys", {}, internal=True
    )
    assert purged.value == 1 and await rows(site, "apiIdempotencyKeys") == []


async def test_a_refused_request_records_nothing_under_its_key(site: Site, setup: Setup) -> None:
    key = {"Idempotency-Key": "retry-me"}
    body = {"email": "r@example.com", "dataVariables": {"total": "x"}}
    refused = await setup.http.post(
        "/transactional", json={"slug": "order-receipt", **body}, headers=key
    )
    assert refusal(refused)[2] == "invalid_variables"
    fixed = await setup.http.post(
        "/transactional",
        json={"slug": "order-receipt", "email": "r@example.com", "dataVariables": {"total": 1}},
        headers=key,
    )
    assert fixed.status_code == 202


# -- attachments -----------------------------------------------------------------------------


async def _files(site: Site) -> list[dict[str, Any]]:
    async def read(ctx: Any) -> list[dict[str, Any]]:
        return [dict(row) for row in await ctx.db.system.query("_storage").collect()]

    return list(await in_query(site.application, read))


async def test_base64_attachments_follow_the_emails_own_and_are_deleted_once_sent(
    site: Site, setup: Setup
) -> None:
    terms = await uploaded(site.application, setup.organization_id, b"terms")
    await setup.owner.mutation(
        "transactionalEmails:addAttachment",
        {"transactionalEmailId": setup.email_id, "storageId": terms, "filename": "terms.txt",
         "forceWhilePublished": True},
    )  # fmt: skip
    encoded = base64.b64encode(PDF).decode()
    response = await send(
        setup,
        email="a@example.com",
        attachments=[{"filename": "receipt.pdf", "content": encoded}],
    )
    assert response.status_code == 202, response.text
    send_id = response.json()["data"]["transactionalEmailId"]
    await settled(setup.owner, send_id)
    (mail,) = mails_to(site, "a@example.com")
    parts = [
        (p.get_filename(), p.get_content_type(), p.get_content()) for p in mail.iter_attachments()
    ]
    assert parts == [("terms.txt", "text/plain", "terms"), ("receipt.pdf", "application/pdf", PDF)]
    assert [f["_id"] for f in await _files(site)] == [terms]  # the request's file is gone
    eleven = [{"filename": f"{i}.pdf", "content": encoded} for i in range(10)]
    too_many = await send(setup, email="a@example.com", attachments=eleven)
    assert refusal(too_many) == (
        400, "invalid_input", "too_many_attachments",
        "Maximum 10 attachments allowed (the email has 1)",
    )  # fmt: skip
    assert [f["_id"] for f in await _files(site)] == [terms]  # refused: its files deleted


def _file_server() -> Starlette:
    async def file(request: Request) -> Response:
        return Response(PDF, media_type="application/pdf")

    async def moved(request: Request) -> Response:
        return RedirectResponse("/file.pdf", status_code=302)

    async def inward(request: Request) -> Response:
        return RedirectResponse("https://10.1.2.3/file.pdf", status_code=302)

    return Starlette(
        routes=[
            Route("/file.pdf", file),
            Route("/moved", moved),
            Route("/inward", inward),
        ]
    )


async def test_url_attachments_are_fetched_from_allowed_addresses_only(
    site: Site, setup: Setup, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with https_server(_file_server(), tmp_path) as (base, trust):

        async def attach(email: str, path: str) -> dict[str, Any]:
            response = await send(
                setup, email=email, attachments=[{"filename": "r.pdf", "url": base + path}]
            )
            assert response.status_code == 202, response.text
            return await settled(setup.owner, response.json()["data"]["transactionalEmailId"])

        refused = await attach("default@example.com", "/file.pdf")
        assert (refused["status"], refused["errorCode"]) == ("failed", "ATTACHMENT_UNAVAILABLE")
        assert "resolves to a loopback address (127.0.0.1): refused" in refused["errorMessage"]
        testing = FetchPolicy(allow_loopback=True, verify=trust)
        monkeypatch.setattr(
            instance, "_current", dataclasses.replace(instance.current(), attachment_fetch=testing)
        )
        fetched = await attach("fetched@example.com", "/moved")
        assert fetched["status"] == "sent", fetched.get("errorMessage")
        (mail,) = mails_to(site, "fetched@example.com")
        ((name, content),) = [(p.get_filename(), p.get_content()) for p in mail.iter_attachments()]
        assert (name, content) == ("r.pdf", PDF)
        inward = await attach("inward@example.com", "/inward")
        assert inward["errorCode"] == "ATTACHMENT_UNAVAILABLE"
        assert "10.1.2.3 resolves to a private or reserved address" in inward["errorMessage"]
    assert mails_to(site, "default@example.com") == mails_to(site, "inward@example.com") == []


# -- the lean path ---------------------------------------------------------------------------


async def test_the_lean_path_answers_before_the_starlette_stack(site: Site, setup: Setup) -> None:
    """`owlat serve` answers this route before the site port's Starlette stack
    (app/site_paths.py): with that stack replaced by one that answers nothing but 599,
    a send is still accepted (with a request id), and other paths reach the stack."""
    reached: list[str] = []

    async def stack(scope: Any, receive: Any, send: Any) -> None:
        reached.append(f"{scope['method']} {scope['path']}")
        await PlainTextResponse("the Starlette stack", status_code=599)(scope, receive, send)

    port = int(site.site_url.rsplit(":", 1)[1])
    authenticator = Authenticator((), admin_key="k" * 40)
    lean = lean_paths("owlat.app", stack, site.application, authenticator, port)
    headers = {"authorization": setup.http.headers["authorization"], "x-request-id": "req-1"}
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=lean), base_url=f"{site.site_url}/api/v1",
        headers=headers,
    ) as http:  # fmt: skip
        accepted = await http.post(
            "/transactional", json={"slug": "order-receipt", "email": "lean@example.com"}
        )
        refused = await http.post("/transactional", content=b"{not json")
        elsewhere = await http.get("/health")
        preflight = await http.options("/transactional")
    assert accepted.status_code == 202, accepted.text
    assert accepted.headers["x-request-id"] == "req-1"
    assert accepted.headers["x-ratelimit-limit"] == "10"
    await settled(setup.owner, accepted.json()["data"]["transactionalEmailId"])
    assert len(mails_to(site, "lean@example.com")) == 1
    assert error(refused) == (400, "invalid_input", "Invalid JSON in request body")
    assert refused.headers["access-control-allow-credentials"] == "true"
    assert (elsewhere.status_code, preflight.status_code) == (599, 599)
    assert reached == ["GET /api/v1/health", "OPTIONS /api/v1/transactional"]
