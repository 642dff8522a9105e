"""Outgoing webhooks (reference §5) through the real server, delivered to a receiver on
loopback (the test-only allowance): management and its permission, refused targets,
signed bodies, the email and contact events, retries, turning off after failures."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import hmac
import json
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from owlat.app.lib import instance, standard_webhooks
from owlat.app.lib.sending.attachments import FetchPolicy
from owlat.app.lib.webhooks import delivery
from owlat.runtime import ConvexError
from owlat.runtime.testing import in_query
from tests.app.conftest import Caller, Site, owner_and_editor
from tests.app.mail_setup import settled
from tests.app.rendering.samples import text_block
from tests.app.test_rest_api import api_key, client
from tests.e2e.conftest import serve_in_process

EMAIL_EVENTS = ["email.sent", "email.delivered", "email.opened", "email.clicked"]


@pytest.fixture
async def site(site_on_both_engines: Site) -> Site:
    return site_on_both_engines


@dataclasses.dataclass
class Receiver:
    url: str
    requests: list[tuple[dict[str, str], bytes]]
    statuses: list[int]  # answered in turn; 200 once they run out

    def events(self) -> list[str]:
        """The events received, sorted (deliveries run concurrently: no order is promised)."""
        return sorted(json.loads(body)["event"] for _, body in self.requests)

    def data(self, event: str) -> list[dict[str, Any]]:
        bodies = [json.loads(body) for _, body in self.requests]
        return [body["data"] for body in bodies if body["event"] == event]


@pytest.fixture
async def receiver(site: Site, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Receiver]:
    requests: list[tuple[dict[str, str], bytes]] = []
    statuses: list[int] = []

    async def hook(request: Request) -> Response:
        requests.append((dict(request.headers), await request.body()))
        return Response("received", status_code=statuses.pop(0) if statuses else 200)

    app = Starlette(routes=[Route("/hook", hook, methods=["POST"])])
    async with serve_in_process(app) as url:
        allowed = FetchPolicy(allow_loopback=True)
        configured = dataclasses.replace(instance.current(), webhook_fetch=allowed)
        monkeypatch.setattr(instance, "_current", configured)
        yield Receiver(f"{url}/hook", requests, statuses)


@pytest.fixture
async def admins(site: Site) -> tuple[Caller, Caller]:
    owner, editor, _ = await owner_and_editor(site.application)
    return owner, editor


async def _eventually(check: Any) -> Any:
    async with asyncio.timeout(20):
        while True:
            result = await check()
            if result:
                return result
            await asyncio.sleep(0.02)


async def _logs(owner: Caller, webhook_id: str) -> list[dict[str, Any]]:
    page = await owner.query(
        "webhooks:listDeliveryLogs",
        {"webhookId": webhook_id, "paginationOpts": {"numItems": 100, "cursor": None}},
    )
    return list(reversed(page["page"]))


async def _finished(owner: Caller, webhook_id: str, count: int) -> list[dict[str, Any]]:
    async def done() -> list[dict[str, Any]] | None:
        logs = await _logs(owner, webhook_id)
        ended = [log for log in logs if log["status"] in ("success", "failed")]
        return logs if len(ended) >= count else None

    result: list[dict[str, Any]] = await _eventually(done)
    return result


async def _webhook(owner: Caller, receiver: Receiver, events: list[str]) -> dict[str, str]:
    created: dict[str, str] = await owner.mutation(
        "webhooks:create", {"name": "CRM", "url": receiver.url, "events": events}
    )
    return created


# -- management ------------------------------------------------------------------------------


async def test_management_is_for_admins(site: Site, admins: tuple[Caller, Caller]) -> None:
    owner, editor = admins
    with pytest.raises(ConvexError, match="^Admin access required$"):
        await editor.mutation(
            "webhooks:create",
            {"name": "x", "url": "https://hooks.example.com/x", "events": ["email.sent"]},
        )
    created = await owner.mutation(
        "webhooks:create",
        {"name": " CRM ", "url": "https://hooks.example.com/x",
         "events": ["contact.created", "email.sent"]},
    )  # fmt: skip
    secret = created["secret"]
    assert secret.startswith("whsec_") and len(secret) == 38 and secret[6:].isalnum()
    for path, args in (
        ("webhooks:list", {}),
        ("webhooks:get", {"webhookId": created["webhookId"]}),
        ("webhooks:eventTypes", {}),
    ):
        with pytest.raises(ConvexError, match="^Admin access required$"):
            await editor.query(path, args)
    (listed,) = await owner.query("webhooks:list")
    assert "secret" not in listed
    assert (listed["name"], listed["events"]) == ("CRM", ["email.sent", "contact.created"])
    shown = await owner.query("webhooks:get", {"webhookId": created["webhookId"]})
    assert shown["secret"] == secret

    async def stored(ctx: Any) -> str:
        return str((await ctx.db.get(created["webhookId"]))["secret"])

    assert secret[6:] not in await in_query(site.application, stored)  # sealed at rest
    again = await owner.mutation("webhooks:regenerateSecret", {"webhookId": created["webhookId"]})
    assert again["secret"] != secret
    updated = await owner.mutation(
        "webhooks:update", {"webhookId": created["webhookId"], "events": ["email.bounced"]}
    )
    assert updated["events"] == ["email.bounced"] and "secret" not in updated
    assert "contact.deleted" in await owner.query("webhooks:eventTypes")
    await owner.mutation("webhooks:toggle", {"webhookId": created["webhookId"], "isActive": False})
    with pytest.raises(ConvexError, match="Turn the webhook on"):
        await owner.mutation("webhooks:sendTest", {"webhookId": created["webhookId"]})
    await owner.mutation("webhooks:remove", {"webhookId": created["webhookId"]})
    assert await owner.query("webhooks:list") == []


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://127.0.0.1:8080/x", "must not point at a loopback address"),
        ("http://[::1]/x", "must not point at a loopback address"),
        ("http://10.1.2.3/x", "must not point at a private or reserved address"),
        ("http://192.168.0.10/x", "must not point at a private or reserved address"),
        ("http://169.254.169.254/latest/meta-data", "must not point at a link-local address"),
        ("http://localhost:3000/x", "must not point at a local host"),
        ("https://printer.local/x", "must not point at a local host"),
        ("ftp://hooks.example.com/x", "must be an http(s) URL"),
        ("https://user:pw@hooks.example.com/x", "must not contain user info"),
        ("not a url", "must be an http(s) URL"),
    ],
)
async def test_private_targets_are_refused(
    site: Site, admins: tuple[Caller, Caller], url: str, message: str
) -> None:
    owner, _ = admins
    with pytest.raises(ConvexError, match=f"^Webhook URL {re.escape(message)}$"):
        await owner.mutation("webhooks:create", {"name": "x", "url": url, "events": ["email.sent"]})
    assert await owner.query("webhooks:list") == []


async def test_events_are_checked(site: Site, admins: tuple[Caller, Caller]) -> None:
    owner, _ = admins
    base = {"name": "x", "url": "https://hooks.example.com/x"}
    with pytest.raises(ConvexError, match="^Unknown event 'email.nope'"):
        await owner.mutation("webhooks:create", {**base, "events": ["email.nope"]})
    with pytest.raises(ConvexError, match="^Subscribe to at least one event$"):
        await owner.mutation("webhooks:create", {**base, "events": []})


# -- delivery --------------------------------------------------------------------------------


async def test_contact_events_are_signed_and_logged(
    site: Site, admins: tuple[Caller, Caller], receiver: Receiver
) -> None:
    owner, _ = admins
    created = await _webhook(
        owner, receiver, ["contact.created", "contact.updated", "contact.deleted"]
    )
    contact_id = await owner.mutation(
        "contacts:createFromSession", {"email": "ada@example.com", "firstName": "Ada"}
    )
    (log,) = await _finished(owner, created["webhookId"], 1)
    assert (log["status"], log["httpStatusCode"], log["attemptNumber"]) == ("success", 200, 1)
    assert log["responseBody"] == "received"
    (headers, body) = receiver.requests[0]
    document = json.loads(body)
    assert list(document) == ["event", "timestamp", "data"]
    assert document["event"] == "contact.created"
    assert document["data"]["contactId"] == contact_id
    assert document["data"]["email"] == "ada@example.com"
    assert body == log["payload"].encode()
    # Standard Webhooks signature, and upstream's headers
    assert headers["webhook-id"] == log["_id"]
    expected = standard_webhooks.sign(
        created["secret"], headers["webhook-id"], headers["webhook-timestamp"], body
    )
    assert standard_webhooks.matches(headers["webhook-signature"], expected)
    hexdigest = hmac.new(created["secret"].encode(), body, hashlib.sha256).hexdigest()
    assert headers["x-signature"] == hexdigest
    assert headers["x-webhook-id"] == created["webhookId"]
    assert headers["user-agent"] == "Owlat-Webhooks/1.0"
    await owner.mutation("contacts:update", {"contactId": contact_id, "lastName": "Lovelace"})
    await owner.mutation("contacts:delete", {"contactId": contact_id})
    await _finished(owner, created["webhookId"], 3)
    assert receiver.events() == ["contact.created", "contact.deleted", "contact.updated"]
    (updated,) = receiver.data("contact.updated")
    assert updated["changedFields"] == "lastName"
    stats = await owner.query("webhooks:getDeliveryStats", {"webhookId": created["webhookId"]})
    assert (stats["success"], stats["total"]) == (3, 3)


async def test_email_events_follow_a_tracked_send(
    site: Site, admins: tuple[Caller, Caller], receiver: Receiver
) -> None:
    owner, _ = admins
    created = await _webhook(owner, receiver, EMAIL_EVENTS)
    await owner.mutation("organizationSettings:update", {"trackTransactional": True})
    content = [text_block('<p><a href="https://shop.example/">Shop</a></p>')]
    email_id = await owner.mutation(
        "transactionalEmails:create",
        {"name": "Hi", "slug": "hi", "subject": "Hi", "content": json.dumps(content)},
    )
    await owner.mutation("transactionalEmails:publish", {"transactionalEmailId": email_id})
    async with client(site, await api_key(owner)) as api:
        response = await api.post("/transactional", json={"slug": "hi", "email": "b@example.com"})
    send_id = response.json()["data"]["transactionalEmailId"]
    await settled(owner, send_id)
    await _finished(owner, created["webhookId"], 1)
    (mail,) = [m for m in site.outbox() if m["To"] == "b@example.com"]
    html = mail.get_body(("html",)).get_content()
    pixel = html.split('<img src="')[1].split('"')[0]
    link = html.split('href="')[1].split('"')[0]
    async with httpx.AsyncClient() as http:
        await http.get(pixel)
        await http.get(link)
        await http.get(link)
    await _finished(owner, created["webhookId"], 5)
    assert receiver.events() == [
        "email.clicked", "email.clicked", "email.delivered", "email.opened", "email.sent",
    ]  # fmt: skip
    datas = [json.loads(body)["data"] for _, body in receiver.requests]
    assert {d["email"] for d in datas} == {"b@example.com"}
    assert {d["sendId"] for d in datas} == {send_id}
    (sent,) = receiver.data("email.sent")
    assert sent["transactionalEmailId"] == email_id and sent["campaignId"] is None
    assert receiver.data("email.opened")[0]["prefetchedBy"] is None
    assert receiver.data("email.clicked")[0]["url"] == "https://shop.example/"


async def test_failures_are_retried_then_turn_the_webhook_off(
    site: Site,
    admins: tuple[Caller, Caller],
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(delivery, "RETRY_DELAYS_MS", (50, 50))
    monkeypatch.setattr(delivery, "DISABLE_AFTER", 2)
    owner, _ = admins
    created = await _webhook(owner, receiver, ["contact.created"])
    receiver.statuses.extend([500, 503, 502])
    await owner.mutation("contacts:createFromSession", {"email": "one@example.com"})
    (log,) = await _finished(owner, created["webhookId"], 1)
    assert (log["status"], log["attemptNumber"], log["httpStatusCode"]) == ("failed", 3, 502)
    assert len(receiver.requests) == 3
    assert len({headers["webhook-id"] for headers, _ in receiver.requests}) == 1
    shown = await owner.query("webhooks:get", {"webhookId": created["webhookId"]})
    assert (shown["isActive"], shown["consecutiveFailures"]) == (True, 1)
    # a retry that succeeds
    receiver.statuses.extend([500])
    await owner.mutation("contacts:createFromSession", {"email": "two@example.com"})
    logs = await _finished(owner, created["webhookId"], 2)
    assert (logs[1]["status"], logs[1]["attemptNumber"]) == ("success", 2)
    shown = await owner.query("webhooks:get", {"webhookId": created["webhookId"]})
    assert shown["consecutiveFailures"] == 0
    # two deliveries failing in a row turn it off
    receiver.statuses.extend([500] * 6)
    await owner.mutation("contacts:createFromSession", {"email": "three@example.com"})
    await owner.mutation("contacts:createFromSession", {"email": "four@example.com"})
    await _finished(owner, created["webhookId"], 4)
    shown = await owner.query("webhooks:get", {"webhookId": created["webhookId"]})
    assert shown["isActive"] is False
    assert shown["disabledReason"] == "Turned off after 2 deliveries in a row failed"
    await owner.mutation("contacts:createFromSession", {"email": "five@example.com"})
    assert len(await _logs(owner, created["webhookId"])) == 4
    # turning it on again clears the count; a test event goes out
    await owner.mutation("webhooks:toggle", {"webhookId": created["webhookId"], "isActive": True})
    test_log = await owner.mutation("webhooks:sendTest", {"webhookId": created["webhookId"]})
    await _finished(owner, created["webhookId"], 5)
    log = await owner.query("webhooks:getDeliveryLog", {"deliveryLogId": test_log})
    assert (log["event"], log["status"]) == ("test", "success")
    assert json.loads(log["payload"])["data"]["message"] == "This is a test webhook from Owlat"


async def test_a_target_is_checked_again_when_delivered(
    site: Site, admins: tuple[Caller, Caller], receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(delivery, "RETRY_DELAYS_MS", (20, 20))
    owner, _ = admins
    created = await _webhook(owner, receiver, ["contact.created"])
    strict = dataclasses.replace(instance.current(), webhook_fetch=FetchPolicy())
    monkeypatch.setattr(instance, "_current", strict)  # the allowance is gone
    await owner.mutation("contacts:createFromSession", {"email": "x@example.com"})
    (log,) = await _finished(owner, created["webhookId"], 1)
    assert log["status"] == "failed" and "httpStatusCode" not in log
    assert log["errorMessage"] == "URL must not point at a loopback address"
    assert receiver.requests == []
