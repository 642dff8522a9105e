"""Internal functions of campaign sending (`lib/campaigns/walk.py`, `delivery.py`): the
walk's hops, the delivery workers and their steps, recovery and due scheduled campaigns
(crons), an A/B test's automatic winner, the wake-up of recipient-local sends."""

from __future__ import annotations

from typing import Any

from owlat.app.lib import instance
from owlat.app.lib.campaigns import ab_tests, content, delivery, review, walk
from owlat.app.lib.campaigns.drafts import preflight
from owlat.app.lib.campaigns.states import CampaignStatus
from owlat.app.lib.errors import AppError
from owlat.app.lib.organization_deletion import gone_or_going
from owlat.app.lib.sending import journal, leases
from owlat.app.lib.sending.routes import Attempt
from owlat.app.lib.sending.sends import lease_ms
from owlat.app.lib.session_organization import now_ms
from owlat.runtime import (
    ActionCtx,
    MutationCtx,
    QueryCtx,
    internal,
    internal_action,
    internal_mutation,
    internal_query,
    v,
)

CAMPAIGN_ID = {"campaignId": v.id("campaigns")}


@internal_mutation(args={**CAMPAIGN_ID, "hop": v.number()})
async def walk_(ctx: MutationCtx, args: dict[str, Any]) -> None:
    await walk.hop(ctx, args["campaignId"], int(args["hop"]), now_ms())


@internal_action(args={**CAMPAIGN_ID, "generation": v.number()})
async def deliver(ctx: ActionCtx, args: dict[str, Any]) -> None:
    """One worker run, the lease of its claims renewed while it runs (`leases.py`)."""
    lease, attempts_journal = lease_ms(), journal.opened(instance.current().data_dir)
    async with leases.Renewal(
        ctx, internal.campaign_sends.renew, lease, attempts_journal
    ) as renewal:
        await delivery.deliver(ctx, args["campaignId"], int(args["generation"]), lease, renewal)


@internal_query(args=CAMPAIGN_ID)
async def plan(ctx: QueryCtx, args: dict[str, Any]) -> dict[str, Any] | None:
    return await delivery.plan(ctx, args["campaignId"])


@internal_mutation(
    args={
        **CAMPAIGN_ID,
        "generation": v.number(),
        "routeProviders": v.array(v.string()),
        "leaseMs": v.number(),
        "journal": v.optional(v.string()),
    }
)
async def claim(ctx: MutationCtx, args: dict[str, Any]) -> dict[str, Any]:
    return await delivery.claim(
        ctx,
        args["campaignId"],
        int(args["generation"]),
        args["routeProviders"],
        delivery.BATCH,
        now_ms(),
        args["leaseMs"],
        args.get("journal"),
    )


@internal_mutation(
    args={
        **CAMPAIGN_ID,
        "outcomes": v.array(v.any()),
        "attempts": v.array(v.any()),
        "journal": v.optional(v.string()),
    }
)
async def record(ctx: MutationCtx, args: dict[str, Any]) -> None:
    attempts = [Attempt.from_json(attempt) for attempt in args["attempts"]]
    outcomes, journal_name = args["outcomes"], args.get("journal")
    await delivery.record(ctx, args["campaignId"], outcomes, attempts, now_ms(), journal_name)


@internal_mutation(args=CAMPAIGN_ID)
async def declare_winner(ctx: MutationCtx, args: dict[str, Any]) -> str | None:
    """The automatic winner of an A/B test after its `testDuration` (`ab_tests.winner`);
    nothing when a winner was declared already or the campaign stopped."""
    campaign = await ctx.db.get(args["campaignId"])
    if campaign is None or campaign.get("abTestStatus") != "testing":
        return None
    if campaign["status"] not in (CampaignStatus.SENDING, CampaignStatus.PAUSED):
        return None
    stats = await walk.stats_of(ctx, campaign["_id"])
    winner = ab_tests.winner(campaign["abTestConfig"], (stats or {}).get("variants"))
    await walk.declare(ctx, campaign, winner, now_ms())
    return winner


@internal_mutation(args=CAMPAIGN_ID)
async def wake(ctx: MutationCtx, args: dict[str, Any]) -> None:
    """Recipient-local sends are due: delivery workers for a sending campaign."""
    campaign = await ctx.db.get(args["campaignId"])
    if campaign is not None and campaign["status"] == CampaignStatus.SENDING:
        await walk.spawn_workers(ctx, campaign["_id"])


@internal_query(args={"token": v.string(), "send": v.optional(v.string())})
async def archive(ctx: QueryCtx, args: dict[str, Any]) -> dict[str, Any] | None:
    """What the archive page shows (`content.archive_page`), or None."""
    return await content.archive_page(ctx, args["token"], args.get("send"))


@internal_mutation(
    args={
        **CAMPAIGN_ID,
        "unattempted": v.optional(journal.claims_arg("emailSends")),
        "held": v.optional(journal.claims_arg("emailSends")),
        "ended": v.optional(journal.claims_arg("emailSends")),
    }
)
async def cancel_queued(ctx: MutationCtx, args: dict[str, Any]) -> None:
    """A cancelled campaign's queued sends failed, a batch per run, until none is left;
    then its sends left `sending` past the lease, their journals read first where they
    name one (`read_cancelled_journals`; `delivery.cancel_queued`)."""
    campaign_id = args["campaignId"]
    now = now_ms()
    again = await delivery.cancel_queued(
        ctx,
        campaign_id,
        now,
        lease_ms(),
        args.get("unattempted"),
        args.get("held") or (),
        args.get("ended") or (),
    )
    if again == delivery.READ_JOURNALS:
        await ctx.scheduler.run_after(
            0, internal.campaign_sends.read_cancelled_journals, {"campaignId": campaign_id}
        )
    elif again is not None:
        await ctx.scheduler.run_after(
            again, internal.campaign_sends.cancel_queued, {"campaignId": campaign_id}
        )


@internal_action(args=CAMPAIGN_ID)
async def read_cancelled_journals(ctx: ActionCtx, args: dict[str, Any]) -> None:
    """`cancel_queued` again, told which of the cancelled campaign's stalled sends their
    journals here show never attempted or never ended (those end CANCELLED, not
    DELIVERY_UNCERTAIN), or ended (`sent`, DELIVERY_UNCONFIRMED)."""
    sends = internal.campaign_sends
    await journal.recover(ctx, sends.stalled, sends.cancel_queued, args, stalled_args=args)


@internal_action(args={"idleMs": v.optional(v.number())})
async def recover(ctx: ActionCtx, args: dict[str, Any]) -> int:
    """Recovery (`delivery.recover`), run where the attempt journals are: the stalled
    sends whose claim this process's data folder shows unattempted (`journal.py`) go
    back to `queued`, those it shows ended are `sent` (DELIVERY_UNCONFIRMED)."""
    stalled_sends, recover_sends = (
        internal.campaign_sends.stalled,
        internal.campaign_sends.recover_stalled,
    )
    return int(await journal.recover(ctx, stalled_sends, recover_sends, args))


@internal_query(args={"campaignId": v.optional(v.id("campaigns"))})
async def stalled(ctx: QueryCtx, args: dict[str, Any]) -> list[dict[str, Any]]:
    return await delivery.stalled(ctx, now_ms(), lease_ms(), args.get("campaignId"))


@internal_mutation(
    args={
        "idleMs": v.optional(v.number()),
        "unattempted": v.optional(journal.claims_arg("emailSends")),
        "held": v.optional(journal.claims_arg("emailSends")),
        "ended": v.optional(journal.claims_arg("emailSends")),
    }
)
async def recover_stalled(ctx: MutationCtx, args: dict[str, Any]) -> int:
    return await delivery.recover(
        ctx,
        now_ms(),
        lease_ms(),
        args.get("idleMs", delivery.IDLE_MS),
        args.get("unattempted") or (),
        args.get("held") or (),
        args.get("ended") or (),
    )


@internal_mutation(
    args={"claims": journal.claims_arg("emailSends"), "journal": v.optional(v.string())}
)
async def renew(ctx: MutationCtx, args: dict[str, Any]) -> list[str]:
    return await leases.renew(ctx, args["claims"], args.get("journal"), now_ms())


@internal_mutation(args={})
async def start_due(ctx: MutationCtx, args: dict[str, Any]) -> int:
    """Start the scheduled campaigns whose time has come (preflight again: one that fails
    it goes back to draft; then the content scan, `review.start`); how many were looked
    at."""
    now = now_ms()
    due = await (
        ctx.db.query("campaigns")
        .with_index(
            "by_status_scheduled",
            lambda q: q.eq("status", str(CampaignStatus.SCHEDULED)).lte("scheduledAt", now),
        )
        .take(20)
    )
    for campaign in due:
        if await gone_or_going(ctx, campaign["organizationId"]):
            continue  # its deletion deletes it
        try:
            checked = await preflight(ctx, campaign)
        except AppError:
            await ctx.db.patch(
                campaign["_id"], {"status": str(CampaignStatus.DRAFT), "updatedAt": now}
            )
            continue
        await review.start(ctx, campaign, checked["audience"], now)
    return len(due)
