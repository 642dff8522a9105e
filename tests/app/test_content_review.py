"""Content scanning of transactional emails on publish and of campaigns when they start
(`lib/content_scans.py`, `lib/campaigns/review.py`): each level, the review by admins
(editors and other organizations refused), no send row for a held campaign, the status
machine's edges, a complaint annotating the scan record; on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from typing import Any

import pytest

from owlat.app.lib.campaigns.states import EDGES, CampaignStatus
from owlat.app.lib.sending.feedback import Event, apply
from owlat.app.lib.sending.send_tables import SEND_TABLES
from owlat.runtime import ConvexError
from owlat.runtime.application import Application
from owlat.runtime.testing import in_mutation, in_query
from tests.app.campaign_setup import finished, list_audience
from tests.app.conftest import Caller, owner_and_editor
from tests.app.rendering.samples import text_block

CLEAN = "Spring news"
SUSPICIOUS = "FREE MONEY, ACT NOW!!!"  # caps 10 + "free money" 20 + "act now" 3 + !!! 3 = 36
BLOCKED = '<p>Cheap viagra, <a href="http://203.0.113.9/buy">shop.example.com</a></p>'


@pytest.fixture
async def owlat(owlat_on_both_engines: Application) -> Application:
    return owlat_on_both_engines


def _content(html: str = "<p>Hello {{firstName}}</p>") -> str:
    return json.dumps([text_block(html, "t1")])


async def _rows(owlat: Application, table: str) -> list[dict[str, Any]]:
    async def read(ctx: Any) -> list[dict[str, Any]]:
        return [dict(row) for row in await ctx.db.query(table).collect()]

    return list(await in_query(owlat, read))


def test_the_status_machine_has_upstreams_edges_and_pause() -> None:
    s = CampaignStatus
    assert {
        s.DRAFT: {s.SCHEDULED, s.SENDING},
        s.SCHEDULED: {s.DRAFT, s.SENDING, s.CANCELLED},
        s.SENDING: {s.SENT, s.DRAFT, s.PENDING_REVIEW, s.PAUSED, s.CANCELLED},
        s.PENDING_REVIEW: {s.SENDING, s.DRAFT},
        s.PAUSED: {s.SENDING, s.CANCELLED},
        s.SENT: set(),
        s.CANCELLED: set(),
    } == EDGES


# -- transactional emails ------------------------------------------------------------------------


async def _transactional(caller: Caller, slug: str, subject: str, html: str) -> dict[str, str]:
    email_id = await caller.mutation(
        "transactionalEmails:create",
        {"name": slug, "slug": slug, "subject": subject, "content": _content(html)},
    )
    return {"transactionalEmailId": email_id}


async def _status(caller: Caller, ident: dict[str, str]) -> str:
    return str((await caller.query("transactionalEmails:get", ident))["status"])


async def test_publish_at_each_level_and_the_review(owlat: Application) -> None:
    owner, editor, organization_id = await owner_and_editor(owlat)
    other, _, _ = await owner_and_editor(owlat, "globex")
    clean = await _transactional(owner, "clean", "Your receipt", "<p>Thanks</p>")
    assert (await owner.mutation("transactionalEmails:publish", clean))["status"] == "published"
    assert await owner.query("transactionalEmails:contentScan", clean) is None

    blocked = await _transactional(owner, "blocked", "Hi", BLOCKED)
    with pytest.raises(ConvexError, match=r"^The content scan blocked this email \(score 60\): "):
        await owner.mutation("transactionalEmails:publish", blocked)
    assert await _status(owner, blocked) == "draft"

    held = await _transactional(owner, "held", SUSPICIOUS, "<p>Hi</p>")
    published = await owner.mutation("transactionalEmails:publish", held)
    assert (published["status"], "publishedAt" in published) == ("pending_review", False)
    scan = await editor.query("transactionalEmails:contentScan", held)
    assert (scan["score"], scan["level"]) == (36, "suspicious")
    assert {flag["code"] for flag in scan["flags"]} == {
        "subject_caps", "subject_exclamations", "spam_phrase",
    }  # fmt: skip
    listed = await owner.query(
        "transactionalEmails:list",
        {"paginationOpts": {"numItems": 10, "cursor": None}, "status": "pending_review"},
    )
    assert [row["_id"] for row in listed["page"]] == [held["transactionalEmailId"]]
    # not sendable, as a draft
    sent = await owlat.run_mutation(
        "restApi/transactional:send",
        {"organizationId": organization_id, "email": "a@example.com",
         "requestEmail": "a@example.com", "slug": "held", "dataVariables": {},
         "addToAudience": False, "attachments": [], "ownedStorageIds": []},
        internal=True,
    )  # fmt: skip
    assert sent.value["refusal"] == {
        "status": 422, "reason": "template_not_published",
        "message": 'Transactional email "held" is not published (it awaits a content review)',
    }  # fmt: skip
    for refused, match in ((editor, "^Admin access required$"), (other, "not found")):
        for verb in ("approve", "reject"):
            with pytest.raises(ConvexError, match=match):
                await refused.mutation(f"transactionalEmails:{verb}", held)
    assert await other.query("transactionalEmails:contentScan", held) is None
    assert await _status(owner, held) == "pending_review"

    await owner.mutation("transactionalEmails:approve", held)
    assert await _status(owner, held) == "published"
    assert (await owner.query("transactionalEmails:contentScan", held))["review"][
        "decision"
    ] == "approved"
    with pytest.raises(ConvexError, match="is published, not pending review"):
        await owner.mutation("transactionalEmails:reject", held)

    # published again after an edit: held again, then rejected back to draft
    await owner.mutation(
        "transactionalEmails:update", {**held, "previewText": "p", "forceWhilePublished": True}
    )
    await owner.mutation("transactionalEmails:publish", held)
    await owner.mutation("transactionalEmails:reject", held)
    assert await _status(owner, held) == "draft"
    assert (await owner.query("transactionalEmails:contentScan", held))["review"][
        "decision"
    ] == "rejected"


async def test_an_email_changed_while_held_is_not_approved(owlat: Application) -> None:
    owner, editor, _ = await owner_and_editor(owlat)
    held = await _transactional(owner, "held", SUSPICIOUS, "<p>Hi</p>")
    await owner.mutation("transactionalEmails:publish", held)
    await editor.mutation(
        "transactionalEmails:update", {**held, "content": _content("<p>Now go to bit.ly</p>")}
    )
    with pytest.raises(ConvexError, match="changed since its content scan: publish it again"):
        await owner.mutation("transactionalEmails:approve", held)
    assert await _status(owner, held) == "pending_review"


# -- campaigns -----------------------------------------------------------------------------------


async def _campaign(
    owlat: Application, owner: Caller, organization_id: str, subject: str, html: str
) -> tuple[str, str]:
    """A draft campaign to a list of 2 (through the outbox); (campaign id, template id)."""
    await owner.mutation(
        "providerRoutes:set",
        {"messageType": "campaign", "strategy": "single", "providers": [{"provider": "outbox"}]},
    )
    list_id = await owner.mutation(
        "mailingLists:create", {"name": "Readers", "requireDoubleOptIn": False}
    )
    await list_audience(owlat, organization_id, list_id, 2)
    template_id = await owner.mutation(
        "emailTemplates:create",
        {"name": "News", "type": "marketing", "subject": subject, "content": _content(html)},
    )
    await owner.mutation("emailTemplates:publish", {"templateId": template_id})
    campaign_id = await owner.mutation("campaigns:create", {"name": "Spring"})
    await owner.mutation(
        "campaigns:update",
        {"campaignId": campaign_id, "emailTemplateId": template_id,
         "fromEmail": "news@acme.example.com", "audience": {"kind": "list", "listId": list_id}},
    )  # fmt: skip
    return campaign_id, template_id


async def _campaign_row(owlat: Application, campaign_id: str) -> dict[str, Any]:
    (row,) = [row for row in await _rows(owlat, "campaigns") if row["_id"] == campaign_id]
    return row


async def test_a_held_campaign_sends_nothing_until_an_admin_approves(owlat: Application) -> None:
    owner, editor, organization_id = await owner_and_editor(owlat)
    other, _, _ = await owner_and_editor(owlat, "globex")
    campaign_id, _ = await _campaign(owlat, owner, organization_id, SUSPICIOUS, "<p>Hi</p>")
    ident = {"campaignId": campaign_id}
    started = await owner.mutation("campaigns:send", ident)
    assert (started["status"], started["contentScan"]["score"]) == ("pending_review", 36)
    assert (await _campaign_row(owlat, campaign_id))["status"] == "pending_review"
    for table in ("emailSends", "campaignSendJobs", "campaignContents"):
        assert await _rows(owlat, table) == []
    for refused, match in ((editor, "^Admin access required$"), (other, "^Campaign not found$")):
        for verb in ("approve", "reject"):
            with pytest.raises(ConvexError, match=match):
                await refused.mutation(f"campaigns:{verb}", ident)
    for verb in ("pause", "cancel", "send"):
        with pytest.raises(ConvexError):
            await owner.mutation(f"campaigns:{verb}", ident)
    assert await _rows(owlat, "emailSends") == []

    await owner.mutation("campaigns:approve", ident)
    assert (await finished(owner, campaign_id))["sent"] == 2
    (scan,) = await _rows(owlat, "contentScanResults")
    assert (scan["resourceType"], scan["review"]["decision"]) == ("campaign", "approved")

    # a complaint about one of its sends is counted on the scan record
    async def complain(ctx: Any) -> None:
        send = await ctx.db.query("emailSends").first()
        await apply(ctx, SEND_TABLES["emailSends"], send, Event("complained", 1_000.0))

    await in_mutation(owlat, complain)
    shown = await owner.query("campaigns:contentScan", ident)
    assert shown["complaints"] == 1
    with pytest.raises(ConvexError, match="^Campaign not found$"):
        await other.query("campaigns:contentScan", ident)


async def test_a_blocked_campaign_goes_back_to_draft_and_a_rejected_one_too(
    owlat: Application,
) -> None:
    owner, _, organization_id = await owner_and_editor(owlat)
    campaign_id, template_id = await _campaign(owlat, owner, organization_id, CLEAN, BLOCKED)
    ident = {"campaignId": campaign_id}
    started = await owner.mutation("campaigns:send", ident)
    assert (started["status"], started["contentScan"]["level"]) == ("draft", "blocked")
    row = await _campaign_row(owlat, campaign_id)
    assert row["status"] == "draft"
    assert row["contentBlockReason"].startswith("Blocked by the content scan (score 60): ")
    assert "Link to a raw IP address 203.0.113.9" in row["contentBlockReason"]
    assert await _rows(owlat, "emailSends") == []
    with pytest.raises(ConvexError, match="is draft, not pending review"):
        await owner.mutation("campaigns:approve", ident)

    # the subject alone makes it suspicious: held, then rejected
    await owner.mutation(
        "emailTemplates:update",
        {"templateId": template_id, "content": _content(), "forceWhilePublished": True},
    )
    await owner.mutation("campaigns:update", {**ident, "subject": SUSPICIOUS})
    assert (await owner.mutation("campaigns:send", ident))["status"] == "pending_review"
    await owner.mutation("campaigns:reject", ident)
    row = await _campaign_row(owlat, campaign_id)
    assert (row["status"], row["contentBlockReason"]) == (
        "draft", "Rejected in the content review (score 36)",
    )  # fmt: skip

    # held again, its template edited meanwhile: not approved as scanned
    assert (await owner.mutation("campaigns:send", ident))["status"] == "pending_review"
    await owner.mutation(
        "emailTemplates:update",
        {"templateId": template_id, "content": _content("<p>Changed</p>"),
         "forceWhilePublished": True},
    )  # fmt: skip
    with pytest.raises(ConvexError, match="content changed since its content scan"):
        await owner.mutation("campaigns:approve", ident)
    assert await _rows(owlat, "emailSends") == []

    # clean: it sends, and the block reason is gone
    await owner.mutation("campaigns:reject", ident)
    await owner.mutation("campaigns:update", {**ident, "subject": CLEAN})
    assert (await owner.mutation("campaigns:send", ident)) == {
        "status": "sending", "contentScan": None,
    }  # fmt: skip
    assert (await finished(owner, campaign_id))["sent"] == 2
    assert "contentBlockReason" not in await _campaign_row(owlat, campaign_id)


async def test_a_due_scheduled_campaign_is_scanned_too(owlat: Application) -> None:
    owner, _, organization_id = await owner_and_editor(owlat)
    campaign_id, _ = await _campaign(owlat, owner, organization_id, SUSPICIOUS, "<p>Hi</p>")

    async def due(ctx: Any) -> None:
        await ctx.db.patch(campaign_id, {"status": "scheduled", "scheduledAt": 1.0})

    await in_mutation(owlat, due)
    await owlat.run_mutation("campaignSends:startDue", {}, internal=True)
    row = await _campaign_row(owlat, campaign_id)
    assert (row["status"], "scheduledAt" in row) == ("pending_review", False)
    assert await _rows(owlat, "emailSends") == []
