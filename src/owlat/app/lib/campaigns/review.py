"""The content scan of a starting campaign and its review (reference §11.1, §11.2 step 4).

`start` (where a draft or a scheduled campaign moves to `sending`, preflight passed)
scans the subject and rendered HTML and text part of every variant and language the
campaign sends (`lib/content_scans.py`), before any `emailSends` row exists:

    clean        sending starts (`walk.start`)
    suspicious   `sending → pending_review`: held, the result stored
    blocked      `sending → draft` with `contentBlockReason`, the result stored

An admin (`campaigns:send`) `approve`s a held campaign (`pending_review → sending`, after
the preflight again, without scanning again: the content must be the scanned one) or
`reject`s it (`pending_review → draft`, with `contentBlockReason`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from owlat.app.lib import content_scans
from owlat.app.lib.campaigns import walk
from owlat.app.lib.campaigns.states import CampaignStatus, check_move
from owlat.runtime import UNDEFINED, MutationCtx, QueryCtx


async def scanned_parts(ctx: QueryCtx, campaign: Mapping[str, Any]) -> list[content_scans.Parts]:
    """What the campaign sends, per variant (A, and B of an A/B test) and language."""
    config = campaign.get("abTestConfig") if campaign.get("isABTest") else None
    variants = [(campaign["emailTemplateId"], campaign.get("subject"))]
    if config is not None:
        variants.append(
            (config.get("variantBTemplateId") or campaign["emailTemplateId"],
             config.get("variantBSubject") or campaign.get("subject"))
        )  # fmt: skip
    parts = []
    for template_id, subject in variants:
        template = await ctx.db.get(template_id)
        assert template is not None, template_id  # preflight checked it
        parts.extend(content_scans.template_parts(template, subject))
    return parts


async def start(
    ctx: MutationCtx, campaign: Mapping[str, Any], audience: Mapping[str, Any], now: float
) -> CampaignStatus:
    """Scan the campaign and start, hold or block it (module docstring); its new status."""
    result, content_hash = content_scans.scan_parts(await scanned_parts(ctx, campaign))
    if result.level == "clean":
        await walk.start(ctx, campaign, audience, now)
        return CampaignStatus.SENDING
    resource: content_scans.Resource = ("campaign", campaign["_id"])
    await content_scans.record(ctx, campaign["organizationId"], resource, result, content_hash, now)
    changes: dict[str, Any] = {"scheduledAt": UNDEFINED, "updatedAt": now}
    if result.level == "blocked":
        to = CampaignStatus.DRAFT
        changes["contentBlockReason"] = (
            f"Blocked by the content scan (score {result.score}): {result.summary()}"
        )
    else:
        to = CampaignStatus.PENDING_REVIEW
    check_move(CampaignStatus.SENDING, to)
    await ctx.db.patch(campaign["_id"], {"status": str(to), **changes})
    return to


async def approve(
    ctx: MutationCtx,
    campaign: Mapping[str, Any],
    audience: Mapping[str, Any],
    user_id: str,
    now: float,
) -> None:
    """Start a held campaign (preflight passed again) whose content is the scanned one."""
    check_move(campaign["status"], CampaignStatus.SENDING)
    found = await content_scans.approvable(
        ctx, campaign["organizationId"], ("campaign", campaign["_id"]),
        await scanned_parts(ctx, campaign),
        "The campaign's content changed since its content scan: reject it and send again",
    )  # fmt: skip
    await walk.start(ctx, campaign, audience, now)
    await content_scans.review(ctx, found, "approved", user_id, now)


async def reject(ctx: MutationCtx, campaign: Mapping[str, Any], user_id: str, now: float) -> None:
    """A held campaign back to draft, `contentBlockReason` saying why."""
    check_move(campaign["status"], CampaignStatus.DRAFT)
    found = await content_scans.latest(ctx, campaign["organizationId"], "campaign", campaign["_id"])
    reason = "Rejected in the content review"
    if found is not None:
        await content_scans.review(ctx, found, "rejected", user_id, now)
        reason += f" (score {int(found['score'])})"
    await ctx.db.patch(
        campaign["_id"],
        {"status": str(CampaignStatus.DRAFT), "contentBlockReason": reason, "updatedAt": now},
    )
