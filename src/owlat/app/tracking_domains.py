"""`trackingDomains:*`: a host of the organization's own for open and click links
(reference §7.8): a CNAME `<tracking domain> → <the site's host>`.

`add` / `remove` (`organization:manage`); `list`, `get` (any member); `verify` (an action,
any member) resolves the CNAME now; the cron of `dnsVerification:recheckDue` re-checks
them (`lib/domains/checking.py`). `lib/tracking/policy.py` takes the first verified one
for the host of tracked links.
"""

from __future__ import annotations

from typing import Any

from owlat.app.lib.audience import live_document, organization_rows
from owlat.app.lib.domains.checking import (
    TRACKING_RETRY_MS,
    check_and_apply_tracking,
    tracking_target,
)
from owlat.app.lib.domains.names import normalize_tracking_domain
from owlat.app.lib.errors import AuthFailure, not_found
from owlat.app.lib.permissions import require_permission
from owlat.app.lib.session_organization import (
    get_mutation_context,
    get_team_id_from_session,
    now_ms,
)
from owlat.runtime import ActionCtx, MutationCtx, QueryCtx, action, api, mutation, query, v


@mutation(args={"domain": v.string()})
async def add(ctx: MutationCtx, args: dict[str, Any]) -> str:
    context = await get_mutation_context(ctx)
    require_permission(context.role, "organization:manage")
    domain = normalize_tracking_domain(args["domain"])
    existing = await (
        ctx.db.query("trackingDomains")
        .with_index(
            "by_org_domain", lambda q: q.eq("organizationId", context.team_id).eq("domain", domain)
        )
        .first()
    )
    if existing is not None:
        raise AuthFailure(
            "ALREADY_EXISTS", f"{domain} is already a tracking domain of this organization"
        )
    now = now_ms()
    return str(
        await ctx.db.insert(
            "trackingDomains",
            {
                "organizationId": context.team_id,
                "domain": domain,
                "cnameTarget": tracking_target(),
                "status": "pending",
                "nextCheckAt": now + TRACKING_RETRY_MS,
                "createdBy": context.user_id,
                "createdAt": now,
                "updatedAt": now,
            },
        )
    )


@query(args={})
async def list_(ctx: QueryCtx, args: dict[str, Any]) -> list[dict[str, Any]]:
    organization_id = await get_team_id_from_session(ctx)
    rows = await organization_rows(ctx, "trackingDomains", organization_id)
    return sorted(rows, key=lambda row: row["domain"])


async def _row(ctx: QueryCtx, organization_id: str, tracking_domain_id: str) -> dict[str, Any]:
    row = await live_document(ctx, "trackingDomains", organization_id, tracking_domain_id)
    if row is None:
        raise not_found("Tracking domain")
    return row


@query(args={"trackingDomainId": v.id("trackingDomains")})
async def get(ctx: QueryCtx, args: dict[str, Any]) -> dict[str, Any]:
    return await _row(ctx, await get_team_id_from_session(ctx), args["trackingDomainId"])


@mutation(args={"trackingDomainId": v.id("trackingDomains")})
async def remove(ctx: MutationCtx, args: dict[str, Any]) -> None:
    context = await get_mutation_context(ctx)
    require_permission(context.role, "organization:manage")
    row = await _row(ctx, context.team_id, args["trackingDomainId"])
    await ctx.db.delete(row["_id"])


@action(args={"trackingDomainId": v.id("trackingDomains")})
async def verify(ctx: ActionCtx, args: dict[str, Any]) -> dict[str, Any]:
    """Resolve the CNAME now; the tracking domain afterwards."""
    row = await ctx.run_query(api.tracking_domains.get, args)
    return await check_and_apply_tracking(ctx, row)
