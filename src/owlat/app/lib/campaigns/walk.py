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
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from owlat.app.lib.campaigns.drafts import audience_page
from owlat.app.lib.campaigns.states import CampaignStatus
from owlat.app.lib.sending.send_states import SendStatus
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
    await ctx.db.patch(
        campaign_id,
        {
            "status": str(CampaignStatus.SENDING),
            "sentAt": now,
            "scheduledAt": UNDEFINED,
            "updatedAt": now,
        },
    )
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
            "startedAt": now,
            "updatedAt": now,
        },
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
    created = 0
    for contact in contacts:
        if await _has_send(ctx, campaign_id, contact["_id"]):
            continue
        await ctx.db.insert(
            "emailSends",
            {
                "organizationId": campaign["organizationId"],
                "campaignId": campaign_id,
                "contactId": contact["_id"],
                "email": contact["email"],
                "status": str(SendStatus.QUEUED),
                "attempts": 0,
                "queuedAt": now,
                "updatedAt": now,
            },
        )
        created += 1
    changes = {
        "cursor": cursor,
        "hop": hop_number + 1,
        "candidates": job["candidates"] + read,
        "enqueued": job["enqueued"] + created,
        "skipped": job["skipped"] + read - len(contacts),
        "phase": "done" if done else "walking",
        "updatedAt": now,
    }
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
    table counter of `emailSends` (`lib/sending/send_tables.py`)."""
    stats = await stats_of(ctx, send["campaignId"])
    if stats is not None:
        await ctx.db.patch(stats["_id"], {counter: (stats.get(counter) or 0) + delta})


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
    if pending(job, stats) > 0:
        return False
    await ctx.db.patch(
        campaign["_id"],
        {"status": str(CampaignStatus.SENT), "completedAt": now, "updatedAt": now},
    )
    return True
