"""The instance's own mails (lib/mailer.py: sign-up verification and notices, password
reset, invitations) go through the one send path: a `transactionalSends` row of kind
`system` without an organization, `queued` then `sent` through the outbox, seen by no
organization; left behind by a dead action, recovery sends it once."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from owlat.runtime import ConvexError
from owlat.runtime.application import Application
from owlat.runtime.testing import in_query
from tests.app.conftest import Site, signed_in, with_organization

PASSWORD = "correct-horse-1"
PAGE = {"numItems": 50, "cursor": None}


@pytest.fixture
async def site(site_on_both_engines: Site) -> Site:
    """These tests run on SQLite and PostgreSQL."""
    return site_on_both_engines


async def _system_sends(application: Application) -> list[dict[str, Any]]:
    async def read(ctx: Any) -> list[dict[str, Any]]:
        rows = await ctx.db.query("transactionalSends").collect()
        return [dict(row) for row in rows if row["kind"] == "system"]

    return list(await in_query(application, read))


async def test_auth_mails_are_system_sends_through_the_outbox(site: Site) -> None:
    async with site.browser() as browser:
        signed_up = await browser.post(
            "/sign-up/email", json={"email": "ann@example.com", "password": PASSWORD, "name": "A"}
        )
        assert signed_up.status_code == 200, signed_up.text
        reset = await browser.post("/request-password-reset", json={"email": "ann@example.com"})
        assert reset.status_code == 200, reset.text
    (mail,) = site.outbox()  # delivered before the answer
    (send,) = await _system_sends(site.application)
    assert "organizationId" not in send
    assert (send["status"], send["email"], send["providerType"]) == (
        "sent",
        "ann@example.com",
        "outbox",
    )
    assert (send["subject"], send["attempts"]) == ("Reset your password", 1)
    assert send["queuedAt"] <= send["sentAt"]
    assert mail["From"] == "Owlat <no-reply@owlat.local>"
    assert mail["Auto-Submitted"] == "auto-generated"
    assert mail["Message-ID"] == f"<{send['messageId']}>"


async def _sent_system_sends(application: Application) -> list[dict[str, Any]]:
    async with asyncio.timeout(30):
        while True:
            sent = [row for row in await _system_sends(application) if row["status"] == "sent"]
            if sent:
                return sent
            await asyncio.sleep(0.02)


async def test_an_invitation_is_a_system_send_no_organization_sees(site: Site) -> None:
    owner = await signed_in(site.application, "owner@acme.example")
    await with_organization(owner, "acme")
    await owner.mutation("invitations:invite", {"email": "bob@example.com", "role": "editor"})
    (send,) = await _sent_system_sends(site.application)
    assert (send["email"], send["attempts"]) == ("bob@example.com", 1)
    assert send["subject"].startswith("You are invited to join")
    (mail,) = site.outbox()
    assert "/invite/accept?id=" in mail.get_body(("plain",)).get_content()
    listed = await owner.query("transactionalSends:list", {"paginationOpts": PAGE})
    assert listed["page"] == []
    with pytest.raises(ConvexError, match="^Send not found"):
        await owner.query("transactionalSends:get", {"sendId": send["_id"]})


async def test_a_system_mail_left_by_a_dead_action_is_sent_once(site: Site) -> None:
    """Recorded but not delivered (its action died): recovery sends it, once; the same
    mail again (same key) is not written to the outbox a second time."""
    application = site.application
    mail = {"to": "bob@example.com", "subject": "Hello", "text": "Hi", "deliveryKey": "k" * 32}
    first = await application.run_mutation("transactionalSends:enqueueSystem", mail, internal=True)
    for _ in range(2):  # the second finds it claimed or sent: nothing to do
        await application.run_mutation(
            "transactionalSends:recoverStalled", {"leaseMs": 0}, internal=True
        )
    await _sent_system_sends(application)
    second = await application.run_mutation("transactionalSends:enqueueSystem", mail, internal=True)
    await application.run_action(
        "transactionalSends:deliver", {"sendIds": [second.value]}, internal=True
    )
    rows = {row["_id"]: row for row in await _system_sends(application)}
    assert [rows[first.value]["status"], rows[second.value]["status"]] == ["sent", "sent"]
    assert [m["To"] for m in site.outbox()] == ["bob@example.com"]
