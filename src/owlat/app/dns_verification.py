"""`dnsVerification:*`: checking a sending domain's records (reference §12.3).

`verify` (an action, any member) looks every issued record up in DNS (and asks SES about an
SES domain), then applies the verdict of `lib/domains/states.py` (`decide`): verified, still
pending, or failed, with one result per record and the time of the next check. The cron
`recheckDue` does the same for every domain (sending and tracking) whose `nextCheckAt` has
come. A check is applied only to the records it looked up: when the records changed
meanwhile (`recordsVersion`), its verdict is dropped.
"""

from __future__ import annotations

import logging
from typing import Any

from owlat.app.lib.domains.checking import (
    check_and_apply,
    check_and_apply_tracking,
    result_from_json,
    tracking_verdict,
)
from owlat.app.lib.domains.issuing import domain_view
from owlat.app.lib.domains.states import DomainState, decide
from owlat.app.lib.session_organization import now_ms
from owlat.runtime import (
    UNDEFINED,
    ActionCtx,
    MutationCtx,
    QueryCtx,
    action,
    api,
    internal,
    internal_action,
    internal_mutation,
    internal_query,
    v,
)

logger = logging.getLogger("owlat.domains")
DUE_BATCH = 25  # domains of each kind checked per cron run


@action(args={"domainId": v.id("domains")})
async def verify(ctx: ActionCtx, args: dict[str, Any]) -> dict[str, Any]:
    """Check the domain's records now; the domain afterwards."""
    domain = await ctx.run_query(api.domains.get, {"domainId": args["domainId"]})
    return await check_and_apply(ctx, domain)


@internal_mutation(
    args={"domainId": v.id("domains"), "recordsVersion": v.number(), "results": v.array(v.any())}
)
async def apply(ctx: MutationCtx, args: dict[str, Any]) -> dict[str, Any]:
    """The verdict of one check run on the domain (`DOMAIN_REGISTERING` while it is)."""
    row = await ctx.db.get(args["domainId"])
    if row is None:
        return {}
    row = dict(row)
    if row["recordsVersion"] != args["recordsVersion"]:
        return domain_view(row, now_ms())  # the records changed since they were looked up
    now = int(now_ms())
    checks = [result_from_json(result) for result in args["results"]]
    verdict = decide(DomainState.from_fields(row), checks, now)
    results = [
        {"key": check.key, "name": check.name, **check.to_json(int(now))} for check in checks
    ]
    changes = {k: UNDEFINED if val is None else val for k, val in verdict.state.to_fields().items()}
    changes.update(
        verificationResults=results,
        lastCheckSummary=verdict.summary,
        lastCheckedAt=now,
        updatedAt=now,
    )
    await ctx.db.patch(row["_id"], changes)
    updated = await ctx.db.get(row["_id"])
    assert updated is not None  # patched in this transaction
    return domain_view(dict(updated), now)


@internal_query(args={"now": v.number()})
async def due(ctx: QueryCtx, args: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Sending and tracking domains whose next check has come (oldest due first)."""
    answer = {}
    for table in ("domains", "trackingDomains"):
        rows = await (
            ctx.db.query(table)
            .with_index(
                "by_next_check", lambda q: q.gte("nextCheckAt", 0).lte("nextCheckAt", args["now"])
            )
            .take(DUE_BATCH)
        )
        answer[table] = [dict(row) for row in rows]
    return answer


@internal_action(args={})
async def recheck_due(ctx: ActionCtx, args: dict[str, Any]) -> None:
    """The cron: check every due domain; one that fails to check does not stop the rest
    (its `nextCheckAt` is unchanged, so the next run tries it again)."""
    due_now = await ctx.run_query(internal.dns_verification.due, {"now": now_ms()})
    for domain in due_now["domains"]:
        try:
            await check_and_apply(ctx, domain)
        except Exception:
            logger.exception("checking the sending domain %s failed", domain["domain"])
    for tracking in due_now["trackingDomains"]:
        try:
            await check_and_apply_tracking(ctx, tracking)
        except Exception:
            logger.exception("checking the tracking domain %s failed", tracking["domain"])


@internal_mutation(args={"trackingDomainId": v.id("trackingDomains"), "result": v.any()})
async def apply_tracking(ctx: MutationCtx, args: dict[str, Any]) -> dict[str, Any]:
    row = await ctx.db.get(args["trackingDomainId"])
    if row is None:
        return {}
    await ctx.db.patch(
        row["_id"], tracking_verdict(row, result_from_json(args["result"]), now_ms())
    )
    updated = await ctx.db.get(row["_id"])
    assert updated is not None  # patched in this transaction
    return dict(updated)
