"""`campaigns:*`: drafting, sending and watching campaigns (reference §7.5, §11).

Drafts (`campaigns:manage`, every role): `create`, `update` (draft only: name, template,
subject, From name and address, Reply-To, audience: a mailing list or a segment),
`duplicate` ("Copy of <name>", a draft), `remove` (drafts only).
Sending (admins: `campaigns:send`): `send` (a draft or a scheduled campaign, after the
preflight of `lib/campaigns/drafts.py` and the content scan of `lib/campaigns/review.py`),
`pause`, `resume`, `cancel` (also of a scheduled campaign); `approve` and `reject` a
campaign the scan held (`pending_review`); `contentScan` (any member) shows the findings.
Scheduling (admins: `campaigns:schedule`): `schedule` (a draft, preflight, a future
time; a cron starts it when due; the scan runs then), `unschedule` (back to draft).
Reads (any member): `get`, `preflight` (every problem that stops a send, each with its
code and field, for the editor's form), `list` (most recently changed first), `progress`
(the counts a dashboard subscribes to: maintained counters, never a scan), `sends` (a page of the
campaign's sends, by status).
A/B tests (`lib/campaigns/ab_tests.py`): `enableAbTest`, `disableAbTest` (drafts,
`campaigns:manage`), `declareAbTestWinner` (admins: it sends the rest of the audience);
`progress` carries the per-variant counts. Recipient-local time: `schedule` with
`useRecipientTimezone`, `scheduledHour`, `scheduledMinute` (`lib/campaigns/local_time.py`).
Archive: `update` with `archiveEnabled`; the page is `archive_routes.py`. Once the
organization curates senders (`campaign_senders.py`), `fromEmail` must be an enabled one.

The status machine is `lib/campaigns/states.py`; sending is `lib/campaigns/walk.py` and
`delivery.py`. Nothing is sent after a cancel or pause commits except the batches workers
had claimed before (at most `delivery.BATCH` messages per worker, already `sending`).
"""

from __future__ import annotations

from typing import Any

from owlat.app.lib import content_scans
from owlat.app.lib.audience import PAGINATION_OPTS, clean_timezone, page_options
from owlat.app.lib.campaigns import ab_tests, drafts, review, senders, walk
from owlat.app.lib.campaigns.drafts import (
    MAX_SUBJECT,
    campaign_of,
    checked_audience,
    clean_address,
    clean_header,
    clean_name,
    problem,
    refusals,
)
from owlat.app.lib.campaigns.states import CampaignStatus, check_move, invalid_state
from owlat.app.lib.errors import AppError, forbidden, invalid, not_found
from owlat.app.lib.session_organization import get_mutation_context, now_ms
from owlat.app.lib.templates import find_template
from owlat.app.schema import CAMPAIGN_AUDIENCE, CAMPAIGN_STATUS, SEND_STATUS
from owlat.runtime import UNDEFINED, MutationCtx, QueryCtx, internal, mutation, query, v

CAMPAIGN_ID = {"campaignId": v.id("campaigns")}
MIN_SCHEDULE_AHEAD_MS = 60_000.0


@mutation(args={"name": v.string()})
async def create(ctx: MutationCtx, args: dict[str, Any]) -> str:
    """A new draft campaign; its id."""
    context = await get_mutation_context(ctx, require="campaigns:manage")
    now = now_ms()
    return str(
        await ctx.db.insert(
            "campaigns",
            {
                "organizationId": context.team_id,
                "name": clean_name(args["name"]),
                "status": str(CampaignStatus.DRAFT),
                "createdBy": context.user_id,
                "createdAt": now,
                "updatedAt": now,
            },
        )
    )


DRAFT_FIELDS = {
    "name": v.optional(v.string()),
    "emailTemplateId": v.optional(v.union(v.id("emailTemplates"), v.null())),
    "subject": v.optional(v.string()),
    "fromName": v.optional(v.string()),
    "fromEmail": v.optional(v.string()),
    "replyTo": v.optional(v.string()),
    "audience": v.optional(v.union(CAMPAIGN_AUDIENCE, v.null())),
    "archiveEnabled": v.optional(v.boolean()),
    "timezone": v.optional(v.string()),
}


@mutation(args={**CAMPAIGN_ID, **DRAFT_FIELDS})
async def update(ctx: MutationCtx, args: dict[str, Any]) -> None:
    """Change a draft's fields; "" (or null) clears an optional one. `archiveEnabled`:
    a public "view in browser" page; `timezone`: the IANA zone of recipients without one
    (recipient-local sends)."""
    context = await get_mutation_context(ctx, require="campaigns:manage")
    campaign = await campaign_of(ctx, context.team_id, args["campaignId"])
    if campaign["status"] != CampaignStatus.DRAFT:
        raise invalid_state(f"Only a draft can be edited; this campaign is {campaign['status']}")
    patch = await _draft_patch(ctx, context.team_id, args)
    patch["updatedAt"] = now_ms()
    await ctx.db.patch(campaign["_id"], patch)


async def _draft_patch(ctx: QueryCtx, organization_id: str, args: dict[str, Any]) -> dict[str, Any]:
    """The patch of `update`'s fields given in `args`, each checked (UNDEFINED clears)."""
    patch: dict[str, Any] = {}
    if "name" in args:
        patch["name"] = clean_name(args["name"])
    if "subject" in args:
        patch["subject"] = clean_header(args["subject"], "subject", MAX_SUBJECT) or UNDEFINED
    if "fromName" in args:
        patch["fromName"] = clean_header(args["fromName"], "fromName") or UNDEFINED
    for field in ("fromEmail", "replyTo"):
        if field in args:
            value = args[field].strip()
            patch[field] = clean_address(value, field) if value else UNDEFINED
    if patch.get("fromEmail", UNDEFINED) is not UNDEFINED:
        refused = await senders.refusal(ctx, organization_id, patch["fromEmail"])
        if refused is not None:
            raise forbidden("SENDER_NOT_ALLOWED", refused)
    if "emailTemplateId" in args:
        template_id = args["emailTemplateId"]
        if template_id is not None:
            template = await find_template(ctx, organization_id, template_id)
            if template is None:
                raise not_found("Template")
        patch["emailTemplateId"] = UNDEFINED if template_id is None else template_id
    if "archiveEnabled" in args:
        patch["archiveEnabled"] = args["archiveEnabled"]
    if "timezone" in args:
        patch["timezone"] = clean_timezone(args["timezone"]) or UNDEFINED
    if "audience" in args:
        audience = args["audience"]
        patch["audience"] = (
            UNDEFINED
            if audience is None
            else await checked_audience(ctx, organization_id, audience)
        )
    return patch


@query(args={**CAMPAIGN_ID, **DRAFT_FIELDS})
async def preflight(ctx: QueryCtx, args: dict[str, Any]) -> list[dict[str, str]]:
    """What stops the campaign from being sent now, all at once: `[{code, field,
    message}]` (empty: ready), `field` being the `update` argument (or `abTest`) it
    concerns. The draft fields given (the editor's unsaved form) are checked as `update`
    would and stand in for the saved ones; a field refused so reports that refusal only."""
    context = await get_mutation_context(ctx)
    campaign = await campaign_of(ctx, context.team_id, args["campaignId"])
    found: list[dict[str, str]] = []
    for field in DRAFT_FIELDS:
        if field in args:
            try:
                campaign |= await _draft_patch(ctx, context.team_id, {field: args[field]})
            except AppError as error:
                found.append(problem(field, error))
    draft = {key: value for key, value in campaign.items() if value is not UNDEFINED}
    refused = {row["field"] for row in found}
    checked, _ = await refusals(ctx, draft)
    return found + [problem(field, error) for field, error in checked if field not in refused]


@query(args=CAMPAIGN_ID)
async def get(ctx: QueryCtx, args: dict[str, Any]) -> dict[str, Any]:
    context = await get_mutation_context(ctx)
    return await campaign_of(ctx, context.team_id, args["campaignId"])


@query(args={"paginationOpts": PAGINATION_OPTS, "status": v.optional(CAMPAIGN_STATUS)})
async def list_(ctx: QueryCtx, args: dict[str, Any]) -> dict[str, Any]:
    """A page of the organization's campaigns, most recently changed first (of one
    status, if given)."""
    context = await get_mutation_context(ctx)
    query_ = (
        ctx.db.query("campaigns")
        .with_index("by_org_updated", lambda q: q.eq("organizationId", context.team_id))
        .order("desc")
    )
    if "status" in args:
        query_ = query_.filter(lambda q: q.eq(q.field("status"), args["status"]))
    return await query_.paginate(page_options(args["paginationOpts"]))


@mutation(args=CAMPAIGN_ID)
async def remove(ctx: MutationCtx, args: dict[str, Any]) -> None:
    """Delete a draft (a campaign that was ever scheduled or sent keeps its record)."""
    context = await get_mutation_context(ctx, require="campaigns:manage")
    campaign = await campaign_of(ctx, context.team_id, args["campaignId"])
    if campaign["status"] != CampaignStatus.DRAFT:
        raise invalid_state(f"Only a draft can be deleted; this campaign is {campaign['status']}")
    await ctx.db.delete(campaign["_id"])


@mutation(args=CAMPAIGN_ID)
async def duplicate(ctx: MutationCtx, args: dict[str, Any]) -> str:
    """A draft copy ("Copy of <name>") of any campaign's content, audience, A/B test and
    archive setting; its id."""
    context = await get_mutation_context(ctx, require="campaigns:manage")
    campaign = await campaign_of(ctx, context.team_id, args["campaignId"])
    copied = ("emailTemplateId", "subject", "fromName", "fromEmail", "replyTo", "isABTest",
              "abTestConfig", "archiveEnabled", "timezone")  # fmt: skip
    now = now_ms()
    row = {name: campaign[name] for name in copied if name in campaign}
    if row.get("isABTest"):
        row["abTestStatus"] = "pending"
    audience = campaign.get("audience")
    if audience is not None:
        row["audience"] = {k: value for k, value in audience.items() if k != "frozenFilters"}
    return str(
        await ctx.db.insert(
            "campaigns",
            {
                **row,
                "organizationId": context.team_id,
                "name": f"Copy of {campaign['name']}"[:200],
                "status": str(CampaignStatus.DRAFT),
                "createdBy": context.user_id,
                "createdAt": now,
                "updatedAt": now,
            },
        )
    )


@mutation(args=CAMPAIGN_ID)
async def send(ctx: MutationCtx, args: dict[str, Any]) -> dict[str, Any]:
    """Start sending a draft or scheduled campaign now (after its preflight and content
    scan, `lib/campaigns/review.py`): `{status, contentScan}`, `status` being `sending`,
    `pending_review` (held for an admin's review) or `draft` (blocked: the campaign's
    `contentBlockReason` says why), `contentScan` the findings (null when clean)."""
    context = await get_mutation_context(ctx, require="campaigns:send")
    campaign = await campaign_of(ctx, context.team_id, args["campaignId"])
    check_move(campaign["status"], CampaignStatus.SENDING)
    if campaign["status"] not in (CampaignStatus.DRAFT, CampaignStatus.SCHEDULED):
        raise invalid_state(f"A {campaign['status']} campaign is resumed, not sent")
    checked = await drafts.preflight(ctx, campaign)
    status = await review.start(ctx, campaign, checked["audience"], now_ms())
    found = None
    if status != CampaignStatus.SENDING:
        found = await content_scans.latest(ctx, context.team_id, "campaign", campaign["_id"])
    return {"status": str(status), "contentScan": content_scans.view(found)}


@mutation(args=CAMPAIGN_ID)
async def approve(ctx: MutationCtx, args: dict[str, Any]) -> None:
    """Send a campaign held by its content scan (admins): its preflight again, not its
    scan; refused (CONTENT_CHANGED) when its template changed since the scan."""
    context = await get_mutation_context(ctx, require="campaigns:send")
    campaign = await _held(ctx, context.team_id, args["campaignId"])
    checked = await drafts.preflight(ctx, campaign)
    await review.approve(ctx, campaign, checked["audience"], context.user_id, now_ms())


@mutation(args=CAMPAIGN_ID)
async def reject(ctx: MutationCtx, args: dict[str, Any]) -> None:
    """A campaign held by its content scan back to draft (admins)."""
    context = await get_mutation_context(ctx, require="campaigns:send")
    campaign = await _held(ctx, context.team_id, args["campaignId"])
    await review.reject(ctx, campaign, context.user_id, now_ms())


async def _held(ctx: QueryCtx, organization_id: str, campaign_id: str) -> dict[str, Any]:
    campaign = await campaign_of(ctx, organization_id, campaign_id)
    if campaign["status"] != CampaignStatus.PENDING_REVIEW:
        raise invalid_state(f"The campaign is {campaign['status']}, not pending review")
    return campaign


@query(args=CAMPAIGN_ID)
async def content_scan(ctx: QueryCtx, args: dict[str, Any]) -> dict[str, Any] | None:
    """The campaign's latest stored content scan (`{score, level, flags: [{code, severity,
    message, where}], scannedAt, review?, complaints?}`), or None (none held it)."""
    context = await get_mutation_context(ctx)
    campaign = await campaign_of(ctx, context.team_id, args["campaignId"])
    return content_scans.view(
        await content_scans.latest(ctx, context.team_id, "campaign", campaign["_id"])
    )


@mutation(
    args={
        **CAMPAIGN_ID,
        "scheduledAt": v.number(),
        "useRecipientTimezone": v.optional(v.boolean()),
        "scheduledHour": v.optional(v.number()),
        "scheduledMinute": v.optional(v.number()),
    }
)
async def schedule(ctx: MutationCtx, args: dict[str, Any]) -> None:
    """Schedule a draft for `scheduledAt` (epoch ms, at least a minute ahead). With
    `useRecipientTimezone`, sending starts then and each recipient gets the message at the
    first `scheduledHour:scheduledMinute` of their zone from then on."""
    context = await get_mutation_context(ctx, require="campaigns:schedule")
    campaign = await campaign_of(ctx, context.team_id, args["campaignId"])
    check_move(campaign["status"], CampaignStatus.SCHEDULED)
    now = now_ms()
    if args["scheduledAt"] < now + MIN_SCHEDULE_AHEAD_MS:
        raise invalid("SCHEDULED_IN_PAST", "The send time must be at least a minute ahead")
    local = _local_time(args)
    await drafts.preflight(ctx, campaign)
    await ctx.db.patch(
        campaign["_id"],
        {"status": str(CampaignStatus.SCHEDULED), "scheduledAt": args["scheduledAt"],
         **local, "updatedAt": now},
    )  # fmt: skip


def _local_time(args: dict[str, Any]) -> dict[str, Any]:
    """`schedule`'s recipient-local fields, checked (cleared when not used)."""
    hour: Any = args.get("scheduledHour")
    minute: Any = args.get("scheduledMinute")
    if not args.get("useRecipientTimezone"):
        if hour is not None or minute is not None:
            raise invalid(
                "INVALID_LOCAL_TIME", "scheduledHour and scheduledMinute need useRecipientTimezone"
            )
        return {"useRecipientTimezone": UNDEFINED, "scheduledHour": UNDEFINED,
                "scheduledMinute": UNDEFINED}  # fmt: skip
    if hour not in range(24) or minute not in range(60):
        raise invalid(
            "INVALID_LOCAL_TIME",
            "useRecipientTimezone needs scheduledHour (0–23) and scheduledMinute (0–59)",
        )
    return {
        "useRecipientTimezone": True,
        "scheduledHour": int(hour),
        "scheduledMinute": int(minute),
    }


@mutation(args=CAMPAIGN_ID)
async def unschedule(ctx: MutationCtx, args: dict[str, Any]) -> None:
    """A scheduled campaign back to draft."""
    context = await get_mutation_context(ctx, require="campaigns:schedule")
    campaign = await campaign_of(ctx, context.team_id, args["campaignId"])
    if campaign["status"] != CampaignStatus.SCHEDULED:
        raise invalid_state(f"The campaign is {campaign['status']}, not scheduled")
    await ctx.db.patch(
        campaign["_id"],
        {"status": str(CampaignStatus.DRAFT), "scheduledAt": UNDEFINED,
         **_local_time({}), "updatedAt": now_ms()},
    )  # fmt: skip


@mutation(args=CAMPAIGN_ID)
async def pause(ctx: MutationCtx, args: dict[str, Any]) -> None:
    """Stop claiming sends; queued ones wait for `resume`."""
    context = await get_mutation_context(ctx, require="campaigns:send")
    campaign = await campaign_of(ctx, context.team_id, args["campaignId"])
    check_move(campaign["status"], CampaignStatus.PAUSED)
    now = now_ms()
    await ctx.db.patch(
        campaign["_id"], {"status": str(CampaignStatus.PAUSED), "pausedAt": now, "updatedAt": now}
    )


@mutation(args=CAMPAIGN_ID)
async def resume(ctx: MutationCtx, args: dict[str, Any]) -> None:
    """Go on where a paused campaign stopped: the walk from its cursor, the queued sends."""
    context = await get_mutation_context(ctx, require="campaigns:send")
    campaign = await campaign_of(ctx, context.team_id, args["campaignId"])
    if campaign["status"] != CampaignStatus.PAUSED:
        raise invalid_state(f"The campaign is {campaign['status']}, not paused")
    now = now_ms()
    await ctx.db.patch(
        campaign["_id"],
        {"status": str(CampaignStatus.SENDING), "pausedAt": UNDEFINED, "updatedAt": now},
    )
    job = await walk.job_of(ctx, campaign["_id"])
    assert job is not None, campaign["_id"]
    if job["phase"] == "walking":
        await walk.schedule_hop(ctx, campaign["_id"], job["hop"])
    await walk.spawn_workers(ctx, campaign["_id"])
    stats = await walk.stats_of(ctx, campaign["_id"])
    assert stats is not None
    await walk.complete_if_finished(ctx, {**campaign, "status": "sending"}, job, stats, now)


@mutation(args=CAMPAIGN_ID)
async def cancel(ctx: MutationCtx, args: dict[str, Any]) -> None:
    """Stop for good: nothing more is claimed; the queued sends become `failed` CANCELLED
    afterwards, in batches (`campaign_sends.cancel_queued`)."""
    context = await get_mutation_context(ctx, require="campaigns:send")
    campaign = await campaign_of(ctx, context.team_id, args["campaignId"])
    check_move(campaign["status"], CampaignStatus.CANCELLED)
    now = now_ms()
    await ctx.db.patch(
        campaign["_id"],
        {"status": str(CampaignStatus.CANCELLED), "cancelledAt": now, "scheduledAt": UNDEFINED,
         "updatedAt": now},
    )  # fmt: skip
    await ctx.scheduler.run_after(
        0, internal.campaign_sends.cancel_queued, {"campaignId": campaign["_id"]}
    )


@query(args=CAMPAIGN_ID)
async def progress(ctx: QueryCtx, args: dict[str, Any]) -> dict[str, Any]:
    """The campaign's status and counts: `audience` entries walked, `enqueued` sends,
    `sent`, `failed` (also the queued sends of a cancelled campaign), `suppressed` (refused
    when claimed), `skipped` (not eligible when walked), `pending` (not yet sent),
    `walking`, `percent` (of enqueued sends done); after sending (provider events and
    tracking): `delivered`, `opened` (any open, mailbox proxies' prefetches included),
    `humanOpened` (opens not by a proxy), `clicked`, `bounced` (`hardBounced`,
    `softBounced`), `complained`: sends, each counted once; `abTest` (null without one):
    the test's settings, state, winner, contacts held back and per-variant counts and
    rates (`ab_tests.summary`)."""
    context = await get_mutation_context(ctx)
    campaign = await campaign_of(ctx, context.team_id, args["campaignId"])
    job = await walk.job_of(ctx, campaign["_id"])
    stats = await walk.stats_of(ctx, campaign["_id"])
    counts = {"audience": 0, "enqueued": 0, "skipped": 0, "sent": 0, "failed": 0,
              "suppressed": 0, "pending": 0} | dict.fromkeys(walk.FEEDBACK_COUNTERS, 0)  # fmt: skip
    if job is not None and stats is not None:
        counts.update(
            audience=job["candidates"],
            enqueued=job["enqueued"],
            skipped=job["skipped"],
            sent=stats["sent"],
            failed=stats["failed"],
            suppressed=stats["suppressed"],
            pending=walk.pending(job, stats),
            **{name: stats.get(name) or 0 for name in walk.FEEDBACK_COUNTERS},
        )
    done = counts["enqueued"] - counts["pending"]
    return {
        "status": campaign["status"],
        **counts,
        "walking": job is not None and job["phase"] == "walking",
        "percent": 100.0 * done / counts["enqueued"] if counts["enqueued"] else 0.0,
        "abTest": ab_tests.summary(campaign, job, stats),
    }


@query(args={**CAMPAIGN_ID, "paginationOpts": PAGINATION_OPTS, "status": v.optional(SEND_STATUS)})
async def sends(ctx: QueryCtx, args: dict[str, Any]) -> dict[str, Any]:
    """A page of the campaign's sends (of one status, if given)."""
    context = await get_mutation_context(ctx)
    campaign = await campaign_of(ctx, context.team_id, args["campaignId"])

    def index(q: Any) -> Any:
        q = q.eq("campaignId", campaign["_id"])
        return q.eq("status", args["status"]) if "status" in args else q

    return await (
        ctx.db.query("emailSends")
        .with_index("by_campaign_status", index)
        .paginate(page_options(args["paginationOpts"]))
    )


@mutation(
    args={
        **CAMPAIGN_ID,
        "testType": v.union(v.literal("subject"), v.literal("content")),
        "variantBSubject": v.optional(v.string()),
        "variantBTemplateId": v.optional(v.string()),
        "splitPercentage": v.number(),
        "winnerCriteria": v.union(
            v.literal("open_rate"), v.literal("click_rate"), v.literal("manual")
        ),
        "testDuration": v.optional(v.number()),
    }
)
async def enable_ab_test(ctx: MutationCtx, args: dict[str, Any]) -> None:
    """Make a draft an A/B test (`ab_tests.clean_config`), or change its test."""
    context = await get_mutation_context(ctx, require="campaigns:manage")
    campaign = await campaign_of(ctx, context.team_id, args["campaignId"])
    if campaign["status"] != CampaignStatus.DRAFT:
        raise invalid_state(f"Only a draft gets an A/B test; this campaign is {campaign['status']}")
    config = await ab_tests.clean_config(ctx, context.team_id, args)
    await ctx.db.patch(
        campaign["_id"],
        {"isABTest": True, "abTestConfig": config, "abTestStatus": "pending",
         "updatedAt": now_ms()},
    )  # fmt: skip


@mutation(args=CAMPAIGN_ID)
async def disable_ab_test(ctx: MutationCtx, args: dict[str, Any]) -> None:
    """A draft without its A/B test."""
    context = await get_mutation_context(ctx, require="campaigns:manage")
    campaign = await campaign_of(ctx, context.team_id, args["campaignId"])
    if campaign["status"] != CampaignStatus.DRAFT:
        raise invalid_state(
            f"Only a draft's A/B test can be removed; this campaign is {campaign['status']}"
        )
    await ctx.db.patch(
        campaign["_id"],
        {"isABTest": UNDEFINED, "abTestConfig": UNDEFINED, "abTestStatus": UNDEFINED,
         "updatedAt": now_ms()},
    )  # fmt: skip


@mutation(args={**CAMPAIGN_ID, "winner": v.union(v.literal("A"), v.literal("B"))})
async def declare_ab_test_winner(ctx: MutationCtx, args: dict[str, Any]) -> None:
    """Declare the winner of a running A/B test: the rest of the audience gets it."""
    context = await get_mutation_context(ctx, require="campaigns:send")
    campaign = await campaign_of(ctx, context.team_id, args["campaignId"])
    if campaign.get("abTestStatus") != "testing":
        raise invalid_state(
            "The campaign has no A/B test in progress"
            if not campaign.get("isABTest")
            else f"The A/B test is {campaign.get('abTestStatus')}, not testing"
        )
    if campaign["status"] not in (CampaignStatus.SENDING, CampaignStatus.PAUSED):
        raise invalid_state(f"The campaign is {campaign['status']}")
    await walk.declare(ctx, campaign, args["winner"], now_ms())
