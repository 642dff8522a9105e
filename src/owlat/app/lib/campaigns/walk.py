"""Starting a campaign and walking its frozen audience (reference §11.2).

`start` (in the mutation that moves the campaign to `sending`) records the campaign's
`campaignSendJobs` row (the audience as preflight froze it, cursor at the start) and its
`campaignStats` counters, and schedules the first hop. `hop` (a scheduled mutation, run
exactly once) reads one keyset page of `PAGE` audience entries, creates one `emailSends`
row `queued` per eligible contact that has none for this campaign yet, advances the
cursor and schedules the next hop, all in one transaction: a crash repeats or skips no
page. A hop for another position than the job's (`hop` counter) does nothing, so a
resume may schedule one without doubling the walk. A paused or cancelled campaign's hop
stops; resuming schedules it again.

`start` also copies what the campaign sends (`content.snapshot`) and starts an A/B test
(`ab_tests.py`: the walk gives each send its variant; `declare` starts the remainder
walk); with recipient-local time (`local_time.py`) a send waits for its `dueAt`, and a
wake-up (`wake`) is scheduled once per distinct due time.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from owlat.app.lib import content_scans
from owlat.app.lib.audience import organization_settings
from owlat.app.lib.campaigns import ab_tests, content, local_time
from owlat.app.lib.campaigns.drafts import audience_page
from owlat.app.lib.campaigns.states import CampaignStatus
from owlat.app.lib.sending.send_states import SendStatus
from owlat.app.lib.session_organization import now_ms
from owlat.runtime import UNDEFINED, MutationCtx, QueryCtx, internal

PAGE = 500
WORKERS = 2  # delivery actions per campaign (each sends a batch at a time)


async def job_of(ctx: QueryCtx, campaign_id: str) -> dict[str, Any] | None:
    found = (
        await ctx.db.query("campaignSendJobs")
        .with_index("by_campaign", lambda q: q.eq("campaignId", campaign_id))
        .first()
    )
    return None if found is None else dict(found)


async def stats_of(ctx: QueryCtx, campaign_id: str) -> dict[str, Any] | None:
    found = (
        await ctx.db.query("campaignStats")
        .with_index("by_campaign", lambda q: q.eq("campaignId", campaign_id))
        .first()
    )
    return None if found is None else dict(found)


async def start(
    ctx: MutationCtx, campaign: Mapping[str, Any], audience: Mapping[str, Any], now: float
) -> None:
    """Move `campaign` (preflight passed) to `sending` and start its walk."""
    campaign_id, organization_id = campaign["_id"], campaign["organizationId"]
    changes: dict[str, Any] = {
        "status": str(CampaignStatus.SENDING),
        "sentAt": now,
        "scheduledAt": UNDEFINED,
        "contentBlockReason": UNDEFINED,
        "updatedAt": now,
    }
    variants: dict[str, Any] = {}
    config = campaign.get("abTestConfig") if campaign.get("isABTest") else None
    if config is not None:
        changes["abTestStatus"] = "testing"
        variants = {"variantMode": "ab_test", "testFraction": ab_tests.test_fraction(config),
                    "heldBack": 0}  # fmt: skip
    await ctx.db.patch(campaign_id, changes)
    await content.snapshot(ctx, campaign, now)
    await ctx.db.insert(
        "campaignSendJobs",
        {
            "organizationId": organization_id,
            "campaignId": campaign_id,
            "phase": "walking",
            "audience": dict(audience),
            "cursor": None,
            "hop": 0,
            "candidates": 0,
            "enqueued": 0,
            "skipped": 0,
            **variants,
            "startedAt": now,
            "updatedAt": now,
        },
    )
    if config is not None and config["winnerCriteria"] != "manual":
        await ctx.scheduler.run_after(
            config["testDuration"] * 3_600_000,
            internal.campaign_sends.declare_winner,
            {"campaignId": campaign_id},
        )
    await ctx.db.insert(
        "campaignStats",
        {
            "organizationId": organization_id,
            "campaignId": campaign_id,
            "sent": 0,
            "failed": 0,
            "suppressed": 0,
            "updatedAt": now,
        },
    )
    await schedule_hop(ctx, campaign_id, 0)


async def schedule_hop(ctx: MutationCtx, campaign_id: str, hop_number: int) -> None:
    await ctx.scheduler.run_after(
        0, internal.campaign_sends.walk, {"campaignId": campaign_id, "hop": hop_number}
    )


async def spawn_workers(ctx: MutationCtx, campaign_id: str, count: int = WORKERS) -> None:
    """Start `count` delivery workers (`delivery.deliver`) of a new generation: workers
    of earlier ones stop at their next claim, so a campaign has `count` at most (a
    restart, a resume or recovery never multiplies them)."""
    campaign = await ctx.db.get(campaign_id)
    assert campaign is not None, campaign_id
    generation = (campaign.get("workerGeneration") or 0) + 1
    await ctx.db.patch(campaign_id, {"workerGeneration": generation})
    for _ in range(count):
        await ctx.scheduler.run_after(
            0,
            internal.campaign_sends.deliver,
            {"campaignId": campaign_id, "generation": generation},
        )


async def hop(ctx: MutationCtx, campaign_id: str, hop_number: int, now: float) -> None:
    """Walk one page (module docstring)."""
    job = await job_of(ctx, campaign_id)
    campaign = await ctx.db.get(campaign_id)
    if job is None or campaign is None or job["hop"] != hop_number or job["phase"] == "done":
        return
    if campaign["status"] != CampaignStatus.SENDING:
        return
    contacts, read, cursor, done = await audience_page(
        ctx, campaign["organizationId"], job["audience"], job["cursor"], PAGE, job["startedAt"]
    )
    timing = await _local_timing(ctx, campaign, job)
    created = held = 0
    due_times: set[float] = set()
    for contact in contacts:
        if await _has_send(ctx, campaign_id, contact["_id"]):
            continue
        variant = ab_tests.variant_of(job, campaign, contact["_id"])
        if variant == "":
            held += 1
            continue
        row = {
            "organizationId": campaign["organizationId"],
            "campaignId": campaign_id,
            "contactId": contact["_id"],
            "email": contact["email"],
            "status": str(SendStatus.QUEUED),
            "attempts": 0,
            "queuedAt": now,
            "updatedAt": now,
        }
        if variant:
            row["abVariant"] = variant
        if timing is not None:
            default_zone, hour, minute = timing
            where = local_time.first_zone(contact.get("timezone"), default_zone)
            due = local_time.due_at(job["startedAt"], where, hour, minute)
            if due > now:  # the claim's index range skips it until then
                row.update(dueAt=due, updatedAt=due)
                due_times.add(due)
        await ctx.db.insert("emailSends", row)
        created += 1
    walked_before = job.get("variantMode") == "ab_winner"  # the test phase counted them
    changes = {
        "cursor": cursor,
        "hop": hop_number + 1,
        "candidates": job["candidates"] + (0 if walked_before else read),
        "enqueued": job["enqueued"] + created,
        "skipped": job["skipped"] + (0 if walked_before else read - len(contacts)),
        "phase": "done" if done else "walking",
        "updatedAt": now,
    }
    if held:
        changes["heldBack"] = (job.get("heldBack") or 0) + held
    if walked_before:
        changes["heldBack"] = max(0, (job.get("heldBack") or 0) - created)
    waking = due_times - set(job.get("wakeTimes") or ())
    if waking:
        changes["wakeTimes"] = sorted({*(job.get("wakeTimes") or ()), *waking})
        for due in sorted(waking):
            await ctx.scheduler.run_at(
                due, internal.campaign_sends.wake, {"campaignId": campaign_id}
            )
    await ctx.db.patch(job["_id"], changes)
    job.update(changes)
    if not done:
        await schedule_hop(ctx, campaign_id, hop_number + 1)
    if hop_number == 0:
        await spawn_workers(ctx, campaign_id)
    if done:
        stats = await stats_of(ctx, campaign_id)
        assert stats is not None
        await complete_if_finished(ctx, dict(campaign), job, stats, now)


async def _local_timing(
    ctx: QueryCtx, campaign: Mapping[str, Any], job: Mapping[str, Any]
) -> tuple[str | None, int, int] | None:
    """(default zone name, hour, minute) when the walk gives recipient-local due times
    (not in an A/B remainder walk, as upstream), else None."""
    if not campaign.get("useRecipientTimezone") or job.get("variantMode") == "ab_winner":
        return None
    settings = await organization_settings(ctx, campaign["organizationId"]) or {}
    default = campaign.get("timezone") or settings.get("timezone")
    return default, int(campaign["scheduledHour"]), int(campaign["scheduledMinute"])


async def declare(ctx: MutationCtx, campaign: Mapping[str, Any], winner: str, now: float) -> None:
    """Record the A/B test's winner and walk the audience again for the rest of it, in
    the winner's variant (`ab_tests.py`); a paused campaign's walk starts on resume."""
    await ctx.db.patch(
        campaign["_id"],
        {"abTestStatus": "winner_selected", "abWinner": winner, "abWinnerSelectedAt": now,
         "updatedAt": now},
    )  # fmt: skip
    job = await job_of(ctx, campaign["_id"])
    assert job is not None, campaign["_id"]
    hop_number = job["hop"] + 1
    await ctx.db.patch(
        job["_id"],
        {"variantMode": "ab_winner", "phase": "walking", "cursor": None, "hop": hop_number,
         "updatedAt": now},
    )  # fmt: skip
    if campaign["status"] == CampaignStatus.SENDING:
        await schedule_hop(ctx, campaign["_id"], hop_number)
        await spawn_workers(ctx, campaign["_id"])


async def _has_send(ctx: QueryCtx, campaign_id: str, contact_id: str) -> bool:
    found = (
        await ctx.db.query("emailSends")
        .with_index(
            "by_campaign_contact",
            lambda q: q.eq("campaignId", campaign_id).eq("contactId", contact_id),
        )
        .first()
    )
    return found is not None


FEEDBACK_COUNTERS = (
    "delivered", "opened", "humanOpened", "clicked", "bounced", "hardBounced", "softBounced",
    "complained",
)  # fmt: skip


async def count_feedback(
    ctx: MutationCtx, send: Mapping[str, Any], counter: str, delta: int
) -> None:
    """Move the campaign's `counter` (one of `FEEDBACK_COUNTERS`) by `delta`: the send
    table counter of `emailSends` (`lib/sending/send_tables.py`). A complaint is also
    counted on the campaign's content scan record (`content_scans.note_complaint`)."""
    if counter == "complained" and delta > 0:
        await content_scans.note_complaint(
            ctx, send["organizationId"], send["campaignId"], now_ms()
        )
    stats = await stats_of(ctx, send["campaignId"])
    if stats is not None:
        changes: dict[str, Any] = {counter: (stats.get(counter) or 0) + delta}
        if send.get("abVariant"):
            changes["variants"] = ab_tests.bumped(
                stats.get("variants"), send["abVariant"], counter, delta
            )
        await ctx.db.patch(stats["_id"], changes)


async def count_variants_sent(ctx: MutationCtx, campaign_id: str, sent: Mapping[str, int]) -> None:
    """Add a recorded batch's sent messages per A/B variant (`{"A": 3, "B": 2}`) to the
    campaign's `variants` counters."""
    if not sent:
        return
    stats = await stats_of(ctx, campaign_id)
    assert stats is not None, campaign_id
    variants = stats.get("variants")
    for variant, count in sent.items():
        variants = ab_tests.bumped(variants, variant, "sent", count)
    await ctx.db.patch(stats["_id"], {"variants": variants})


def pending(job: Mapping[str, Any], stats: Mapping[str, Any]) -> int:
    """Sends created and not yet sent, failed or suppressed."""
    return int(job["enqueued"] - stats["sent"] - stats["failed"] - stats["suppressed"])


async def complete_if_finished(
    ctx: MutationCtx,
    campaign: Mapping[str, Any],
    job: Mapping[str, Any],
    stats: Mapping[str, Any],
    now: float,
) -> bool:
    """`sending → sent` once the walk is done and every send has its outcome."""
    if campaign["status"] != CampaignStatus.SENDING or job["phase"] != "done":
        return False
    if ab_tests.awaiting_winner(campaign, job):
        return False
    if pending(job, stats) > 0:
        return False
    await ctx.db.patch(
        campaign["_id"],
        {"status": str(CampaignStatus.SENT), "completedAt": now, "updatedAt": now},
    )
    return True
