"""Campaigns (campaigns:*, lib/campaigns/): drafts and their checks, preflight errors,
roles, and sending to a list through a real SMTP server (aiosmtpd) with pause, resume,
cancel and unsubscribes in the middle of a send, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import email.parser
import email.policy
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import dkim
import pytest

from owlat.app.lib.list_subscriptions import unsubscribe_all
from owlat.runtime import ConvexError
from owlat.runtime.application import Application
from owlat.runtime.testing import in_mutation, in_query
from tests.app.campaign_setup import (
    address,
    finished,
    list_audience,
    progress_until,
    published_template,
    ready_campaign,
)
from tests.app.conftest import Caller, owner_and_editor
from tests.app.domains.dns_server import DnsServer
from tests.app.mail_setup import configure, dkim_dns, smtp_domain
from tests.app.sending.servers import Sink, smtp_server

DOMAIN = "news-example.com"
SENDER = f"news@{DOMAIN}"


@pytest.fixture
async def owlat(owlat_on_both_engines: Application, tmp_path: Path, dns: DnsServer) -> Application:
    configure(tmp_path, dns)
    return owlat_on_both_engines


@pytest.fixture
async def team(owlat: Application) -> tuple[Caller, Caller, str]:
    return await owner_and_editor(owlat)


@pytest.fixture
async def sink() -> AsyncIterator[tuple[Sink, int]]:
    served = Sink()
    async with smtp_server(served) as port:
        yield served, port


async def _smtp_list(
    owlat: Application, team: tuple[Caller, Caller, str], port: int, dns: DnsServer, count: int
) -> tuple[str, list[str]]:
    """SMTP to the sink, a verified sending domain, a list of `count` members."""
    owner, _, organization_id = team
    await owner.mutation(
        "emailProviders:saveSmtp", {"host": "127.0.0.1", "port": port, "security": "none"}
    )
    await smtp_domain(owner, dns, DOMAIN)
    list_id = await owner.mutation(
        "mailingLists:create", {"name": "Readers", "requireDoubleOptIn": False}
    )
    return list_id, await list_audience(owlat, organization_id, list_id, count)


def _received(sink: Sink) -> list[tuple[str, email.message.EmailMessage]]:
    parser = email.parser.BytesParser(policy=email.policy.default)
    return [
        (recipient, parser.parsebytes(envelope.original_content or b""))
        for envelope in sink.received
        for recipient in envelope.rcpt_tos
    ]


def _once_each(sink: Sink) -> set[str]:
    """The recipients, checked to have had one message each, with distinct Message-IDs."""
    received = _received(sink)
    twice = [r for r, n in Counter(r for r, _ in received).items() if n > 1]
    assert not twice, f"sent twice to {twice[:5]}"
    ids = Counter(str(mail["Message-ID"]) for _, mail in received)
    assert max(ids.values(), default=1) == 1
    return {recipient for recipient, _ in received}


async def _received_at_least(sink: Sink, count: int) -> None:
    async with asyncio.timeout(30):
        while True:
            if len(sink.received) >= count:
                return
            await asyncio.sleep(0.002)


async def _sends(owlat: Application, campaign_id: str) -> list[dict[str, Any]]:
    async def read(ctx: Any) -> list[dict[str, Any]]:
        rows = await (
            ctx.db.query("emailSends")
            .with_index("by_campaign_contact", lambda q: q.eq("campaignId", campaign_id))
            .collect()
        )
        return [dict(row) for row in rows]

    result: list[dict[str, Any]] = await in_query(owlat, read)
    return result


async def test_a_campaign_reaches_each_eligible_member_of_its_list_once(
    owlat: Application,
    team: tuple[Caller, Caller, str],
    sink: tuple[Sink, int],
    dns: DnsServer,
) -> None:
    owner, editor, _ = team
    list_id, contact_ids = await _smtp_list(owlat, team, sink[1], dns, 60)
    await owner.mutation("blockedEmails:add", {"email": address(1), "reason": "manual"})

    async def unsubscribe(ctx: Any) -> None:
        contact = dict(await ctx.db.get(contact_ids[2]))
        await ctx.db.patch(contact["_id"], {"unsubscribedAt": 1.0})

    await in_mutation(owlat, unsubscribe)
    await owner.mutation("contacts:delete", {"contactId": contact_ids[3]})
    campaign_id = await ready_campaign(owner, list_id, SENDER, editor)
    await owner.mutation("campaigns:send", {"campaignId": campaign_id})
    progress = await finished(editor, campaign_id)
    assert progress | {"percent": 100.0} == progress
    assert (progress["enqueued"], progress["sent"], progress["failed"]) == (57, 57, 0)
    assert progress["pending"] == 0 and progress["skipped"] == progress["audience"] - 57
    expected = {address(i) for i in range(60)} - {address(1), address(2), address(3)}
    assert _once_each(sink[0]) == expected
    lookup = dkim_dns(dns)  # signed in the signing processes (a batch of 57)
    assert all(dkim.verify(e.original_content or b"", dnsfunc=lookup) for e in sink[0].received)
    rows = {row["email"]: row for row in await _sends(owlat, campaign_id)}
    for recipient, mail in _received(sink[0]):
        index = int(recipient[6:13])
        assert mail["Subject"] == f"News for R{index}"
        assert mail["From"] == f"Acme News <{SENDER}>"
        assert mail["Message-ID"] == f"<{rows[recipient]['messageId']}>"
        assert mail["Precedence"] == "bulk" and "DKIM-Signature" in mail
        assert mail["List-Unsubscribe"].startswith("<http://owlat.test/unsub/")
        assert mail["List-Id"] == f'"Readers" <list-{list_id}.{DOMAIN}>'
        html = mail.get_body(("html",)).get_content()
        assert f"Hello R{index}" in html and "Unsubscribe</a>" in html
    assert {row["status"] for row in rows.values()} == {"sent"}
    campaign = await owner.query("campaigns:get", {"campaignId": campaign_id})
    assert campaign["status"] == "sent" and campaign["completedAt"] >= campaign["sentAt"]
    page = await editor.query(
        "campaigns:sends",
        {"campaignId": campaign_id, "status": "sent",
         "paginationOpts": {"numItems": 500, "cursor": None}},
    )  # fmt: skip
    assert len(page["page"]) == 57
    with pytest.raises(ConvexError, match="^Only a draft can be edited; this campaign is sent$"):
        await editor.mutation("campaigns:update", {"campaignId": campaign_id, "name": "x"})
    with pytest.raises(ConvexError, match="^A sent campaign cannot become paused$"):
        await owner.mutation("campaigns:pause", {"campaignId": campaign_id})


async def test_preflight_names_what_is_missing(
    owlat: Application, team: tuple[Caller, Caller, str], sink: tuple[Sink, int], dns: DnsServer
) -> None:
    owner, editor, _ = team
    await owner.mutation(
        "emailProviders:saveSmtp", {"host": "127.0.0.1", "port": sink[1], "security": "none"}
    )
    campaign_id = await editor.mutation("campaigns:create", {"name": "  Launch  "})
    ident = {"campaignId": campaign_id}

    async def refused(message: str) -> None:
        with pytest.raises(ConvexError, match=message):
            await owner.mutation("campaigns:send", ident)

    await refused("^Choose the campaign's email template first$")
    draft = await editor.mutation(
        "emailTemplates:create",
        {"name": "Draft", "type": "marketing", "subject": "S", "content": "[]"},
    )
    await editor.mutation("campaigns:update", {**ident, "emailTemplateId": draft})
    await refused('^Publish the template "Draft" before sending$')
    await editor.mutation(
        "campaigns:update", {**ident, "emailTemplateId": await published_template(owner)}
    )
    await refused("^Choose the campaign's audience \\(a list or a segment\\) first$")
    list_id = await owner.mutation(
        "mailingLists:create", {"name": "Empty", "requireDoubleOptIn": False}
    )
    await editor.mutation(
        "campaigns:update", {**ident, "audience": {"kind": "list", "listId": list_id}}
    )
    await refused("^The campaign has no From address: set one, or a default sender")
    await editor.mutation("campaigns:update", {**ident, "fromEmail": SENDER})
    await refused(f"^Cannot send from {SENDER}: {DOMAIN} is not a sending domain")
    await smtp_domain(owner, dns, DOMAIN)
    await refused("^The campaign's audience has nobody in it$")
    with pytest.raises(ConvexError, match="^fromEmail must be one email address"):
        await editor.mutation("campaigns:update", {**ident, "fromEmail": "not an address"})
    with pytest.raises(ConvexError, match="^Campaign name must be 1 to 200 characters$"):
        await editor.mutation("campaigns:update", {**ident, "name": " "})
    with pytest.raises(ConvexError, match="^The send time must be at least a minute ahead$"):
        await owner.mutation("campaigns:schedule", {**ident, "scheduledAt": 1.0})
    campaign = await editor.query("campaigns:get", ident)
    assert (campaign["status"], campaign["name"]) == ("draft", "Launch")


async def test_the_preflight_query_lists_every_problem_with_its_code_and_field(
    owlat: Application, team: tuple[Caller, Caller, str], sink: tuple[Sink, int], dns: DnsServer
) -> None:
    owner, editor, _ = team
    await owner.mutation(
        "emailProviders:saveSmtp", {"host": "127.0.0.1", "port": sink[1], "security": "none"}
    )
    campaign_id = await editor.mutation("campaigns:create", {"name": "Launch"})
    ident = {"campaignId": campaign_id}

    async def found(caller: Caller = editor, **form: Any) -> list[tuple[str, str]]:
        rows = await caller.query("campaigns:preflight", {**ident, **form})
        return [(row["field"], row["code"]) for row in rows]

    assert await found() == [
        ("emailTemplateId", "NO_TEMPLATE"),
        ("audience", "NO_AUDIENCE"),
        ("fromEmail", "NO_FROM_EMAIL"),
    ]
    rows = await editor.query("campaigns:preflight", ident)
    assert rows[0]["message"] == "Choose the campaign's email template first"
    list_id = await owner.mutation(
        "mailingLists:create", {"name": "Empty", "requireDoubleOptIn": False}
    )
    unsaved = {"fromEmail": SENDER, "audience": {"kind": "list", "listId": list_id}}
    assert await found(owner, **unsaved) == [
        ("emailTemplateId", "NO_TEMPLATE"),
        ("fromEmail", "SENDER_DOMAIN_NOT_VERIFIED"),
        ("audience", "EMPTY_AUDIENCE"),
    ]
    assert await found(fromEmail="not an address", name=" ", subject="x" * 1001) == [
        ("name", "INVALID_NAME"),
        ("subject", "INVALID_SUBJECT"),
        ("fromEmail", "INVALID_FROM_EMAIL"),
        ("emailTemplateId", "NO_TEMPLATE"),
        ("audience", "NO_AUDIENCE"),
    ]
    await editor.mutation(
        "campaigns:update", {**ident, **unsaved, "emailTemplateId": await published_template(owner)}
    )
    await smtp_domain(owner, dns, DOMAIN)
    assert await found() == [("audience", "EMPTY_AUDIENCE")]
    await list_audience(owlat, team[2], list_id, 1)
    assert await found() == []
    # the deployment's admin suspends the organization; then a route with nothing enabled
    admin = "adminTools:setAbuseStatus"
    await owlat.run(None, admin, {"organization": "acme", "status": "suspended"}, internal=True)
    assert await found() == [("sending", "SENDING_NOT_ALLOWED")]
    with pytest.raises(ConvexError, match="^Account suspended: sending is not allowed$"):
        await owner.mutation("campaigns:send", ident)
    await owlat.run(None, admin, {"organization": "acme", "status": "clean"}, internal=True)
    route = {"messageType": "campaign", "strategy": "single", "providers": [{"provider": "smtp"}]}
    await owner.mutation("providerRoutes:set", route)

    async def disable(ctx: Any) -> None:
        (row,) = await ctx.db.query("providerRoutes").collect()
        await ctx.db.patch(row["_id"], {"providers": [{**row["providers"][0], "enabled": False}]})

    await in_mutation(owlat, disable)
    assert await found() == [("sending", "NO_DELIVERY_PROVIDER")]
    await editor.mutation("campaigns:update", {**ident, "emailTemplateId": None})
    with pytest.raises(ConvexError, match="^Choose the campaign's email template first$"):
        await owner.mutation("campaigns:send", ident)
    assert (await editor.query("campaigns:get", ident))["status"] == "draft"


async def test_editors_draft_but_only_admins_send_schedule_pause_and_cancel(
    owlat: Application, team: tuple[Caller, Caller, str], sink: tuple[Sink, int], dns: DnsServer
) -> None:
    owner, editor, _ = team
    list_id, _ = await _smtp_list(owlat, team, sink[1], dns, 3)
    campaign_id = await ready_campaign(owner, list_id, SENDER, editor)
    ident = {"campaignId": campaign_id}
    for path, args in (
        ("campaigns:send", ident),
        ("campaigns:schedule", {**ident, "scheduledAt": 4e12}),
        ("campaigns:pause", ident),
        ("campaigns:cancel", ident),
    ):
        with pytest.raises(ConvexError, match="^Admin access required$"):
            await editor.mutation(path, args)
    copy_id = await editor.mutation("campaigns:duplicate", ident)
    copy = await editor.query("campaigns:get", {"campaignId": copy_id})
    assert (copy["name"], copy["status"], copy["audience"]) == (
        "Copy of Spring news", "draft", {"kind": "list", "listId": list_id}
    )  # fmt: skip
    await editor.mutation("campaigns:remove", {"campaignId": copy_id})
    await owner.mutation("campaigns:schedule", {**ident, "scheduledAt": 4e12})
    with pytest.raises(ConvexError, match="^Only a draft can be deleted; this campaign is"):
        await editor.mutation("campaigns:remove", ident)
    await owner.mutation("campaigns:unschedule", ident)
    listed = await editor.query(
        "campaigns:list", {"paginationOpts": {"numItems": 10, "cursor": None}}
    )
    assert [c["_id"] for c in listed["page"]] == [campaign_id]
    assert sink[0].received == []


async def test_pause_and_resume_ten_times_neither_skip_nor_double(
    owlat: Application, team: tuple[Caller, Caller, str], sink: tuple[Sink, int], dns: DnsServer
) -> None:
    owner, editor, _ = team
    recipients = 1500  # ten pauses, each after 10 more messages: well within
    sink[0].delay = 0.01  # a relay slow enough that a fast machine does not finish first
    list_id, _ = await _smtp_list(owlat, team, sink[1], dns, recipients)
    campaign_id = await ready_campaign(owner, list_id, SENDER, editor)
    ident = {"campaignId": campaign_id}
    await owner.mutation("campaigns:send", ident)
    pauses = 0
    while pauses < 10:
        await _received_at_least(sink[0], len(sink[0].received) + 10)
        await owner.mutation("campaigns:pause", ident)
        pauses += 1
        await asyncio.sleep(0.05)
        await owner.mutation("campaigns:resume", ident)
    progress = await finished(editor, campaign_id)
    assert (progress["sent"], progress["failed"], progress["pending"]) == (recipients, 0, 0)
    assert _once_each(sink[0]) == {address(i) for i in range(recipients)}


async def test_nothing_is_claimed_after_a_cancel_commits(
    owlat: Application, team: tuple[Caller, Caller, str], sink: tuple[Sink, int], dns: DnsServer
) -> None:
    owner, editor, _ = team
    list_id, _ = await _smtp_list(owlat, team, sink[1], dns, 1500)
    campaign_id = await ready_campaign(owner, list_id, SENDER, editor)
    ident = {"campaignId": campaign_id}
    await owner.mutation("campaigns:send", ident)
    await _received_at_least(sink[0], 50)
    await owner.mutation("campaigns:cancel", ident)
    claimed = {
        row["email"] for row in await _sends(owlat, campaign_id) if row["status"] != "queued"
    }
    async with asyncio.timeout(30):  # the batches in flight end
        while True:
            rows = await _sends(owlat, campaign_id)
            if not any(row["status"] == "sending" for row in rows):
                break
            await asyncio.sleep(0.05)
    received = _once_each(sink[0])
    assert received <= claimed and len(received) < 1500
    # the queued sends end failed CANCELLED (in batches after the cancel): the counts add up
    progress = await progress_until(owner, campaign_id, lambda p: p["pending"] == 0)
    assert progress["status"] == "cancelled" and progress["sent"] == len(received)
    rows = await _sends(owlat, campaign_id)
    assert not [row for row in rows if row["status"] in ("queued", "sending")]
    cancelled = [row for row in rows if row.get("errorCode") == "CANCELLED"]
    assert cancelled and all(row["status"] == "failed" for row in cancelled)
    assert progress["sent"] + progress["failed"] + progress["suppressed"] == progress["enqueued"]
    assert progress["failed"] >= len(cancelled)
    await asyncio.sleep(0.5)
    assert len(sink[0].received) == len(received)
    with pytest.raises(ConvexError, match="^The campaign is cancelled, not paused$"):
        await owner.mutation("campaigns:resume", ident)


async def test_an_unsubscribe_or_a_block_committed_mid_send_stops_the_message(
    owlat: Application, team: tuple[Caller, Caller, str], sink: tuple[Sink, int], dns: DnsServer
) -> None:
    owner, editor, _ = team
    list_id, contact_ids = await _smtp_list(owlat, team, sink[1], dns, 1500)
    for index in range(4):  # the first messages hold the 4 connections for 2 s
        sink[0].faults[address(index)] = ["STALL"]
    campaign_id = await ready_campaign(owner, list_id, SENDER, editor)
    ident = {"campaignId": campaign_id}
    await owner.mutation("campaigns:send", ident)
    await progress_until(owner, campaign_id, lambda p: p["enqueued"] >= 1000)
    await owner.mutation("campaigns:pause", ident)
    queued = [row for row in await _sends(owlat, campaign_id) if row["status"] == "queued"]
    leaving, blocked = queued[0], queued[1]

    async def leave(ctx: Any) -> None:
        contact = dict(await ctx.db.get(leaving["contactId"]))
        await unsubscribe_all(ctx, contact=contact, source="public_email_link")

    await in_mutation(owlat, leave)
    await owner.mutation("blockedEmails:add", {"email": blocked["email"], "reason": "manual"})
    await owner.mutation("campaigns:resume", ident)
    progress = await finished(editor, campaign_id)
    assert (progress["sent"], progress["suppressed"]) == (1498, 2)
    received = _once_each(sink[0])
    assert leaving["email"] not in received and blocked["email"] not in received
    assert len(received) == 1498 and len(contact_ids) == 1500
    rows = {row["_id"]: row for row in await _sends(owlat, campaign_id)}
    assert rows[leaving["_id"]]["errorCode"] == rows[blocked["_id"]]["errorCode"]
    assert rows[blocked["_id"]]["errorCode"] == "RECIPIENT_SUPPRESSED"


async def test_a_campaign_to_a_segment_walks_the_matching_live_contacts(
    owlat: Application, team: tuple[Caller, Caller, str], sink: tuple[Sink, int], dns: DnsServer
) -> None:
    owner, editor, _ = team
    list_id, contact_ids = await _smtp_list(owlat, team, sink[1], dns, 30)

    async def unsubscribe(ctx: Any) -> None:
        await ctx.db.patch(contact_ids[12], {"unsubscribedAt": 1.0})

    await in_mutation(owlat, unsubscribe)
    starts = {"kind": "contact_property", "field": "firstName", "operator": "starts_with",
              "value": "R1"}  # fmt: skip
    segment_id = await owner.mutation(
        "segments:create", {"name": "R1x", "filters": {"logic": "AND", "conditions": [starts]}}
    )
    campaign_id = await ready_campaign(owner, list_id, SENDER, editor)
    await editor.mutation(
        "campaigns:update",
        {"campaignId": campaign_id, "audience": {"kind": "segment", "segmentId": segment_id}},
    )
    await owner.mutation("campaigns:send", {"campaignId": campaign_id})
    progress = await finished(editor, campaign_id)
    expected = {address(1)} | {address(i) for i in range(10, 20)} - {address(12)}
    assert _once_each(sink[0]) == expected
    assert (progress["audience"], progress["skipped"], progress["sent"]) == (11, 1, 10)
    for _, mail in _received(sink[0]):
        assert "List-Id" not in mail and mail["List-Unsubscribe"]
        assert "Unsubscribe</a>" not in mail.get_body(("html",)).get_content()
    campaign = await editor.query("campaigns:get", {"campaignId": campaign_id})
    assert campaign["audience"] == {"kind": "segment", "segmentId": segment_id}
