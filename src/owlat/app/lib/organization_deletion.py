"""Deleting an organization: at once it is marked and closed, then a durable job deletes
what it owns in bounded batches.

`begin` (the owner's `organizations:remove`) marks the organization (`deletion`), deletes
its members, invitations and API keys and clears it from the sessions where it is active
(nobody can act for it any more: every session- or key-scoped call is refused, and it
leaves its members' lists; each up to `ROWS_PER_STEP`, the first step takes any rest) and
schedules the first `step`. Each step deletes at most `ROWS_PER_STEP` rows, walking
`DELETION_ORDER` table by table through the `by_org` index, and schedules the next one in
the same transaction, so a crash or restart resumes where the last committed step
stopped (and a step that failed is restarted by the `resume_stalled` cron). The order
stops the organization's own work first: form endpoints (public intake), webhooks,
automations, campaigns and their sends go before its contacts, so its scheduled functions
find their rows gone and end (each returns when its automation run, campaign, send or
delivery log is missing), no contact deletion fans out webhooks or starts automations,
and segment counts are gone before contacts.

A row's stored files (`STORAGE_FIELDS`, the `_storage` ids of its fields) are deleted with
it; an SES domain's identity is deleted at SES by a scheduled action given the sealed
credentials (`ses_actions.delete_identity`, retried, never blocking). Work that was already
running may still write a row into a table the job has passed, so the walk repeats until a
whole pass finds nothing; only then is the organization document deleted.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Final

from owlat.app.lib import stalled_jobs
from owlat.app.lib.domains.ses_deletion import schedule_identity_deletion
from owlat.app.lib.session_organization import now_ms
from owlat.app.schema import ORG_TABLES
from owlat.runtime import UNDEFINED, MutationCtx, QueryCtx, internal

ROWS_PER_STEP: Final = 250
# A step is restarted when its job has not advanced for this long (a step that raised).
STALL_MS: Final = 5 * 60_000
RESUME_BATCH: Final = 20
SESSIONS: Final = "sessions"  # not owned: their `activeOrganizationId` is cleared
# Nobody acts for the organization, then its own work stops, then its data goes.
_FIRST: Final = (
    "members",
    "invitations",
    "apiKeys",
    SESSIONS,
    "formEndpoints",
    "webhookDeliveryLogs",
    "webhooks",
    "automationRuns",
    "automationStats",
    "automations",
    "campaigns",
    "campaignSendJobs",
    "contactImports",
    "sendQueues",
    "transactionalSends",
    "emailSends",
    "segmentCounts",
    "segmentCountTotals",
    "segmentCountDeltas",
)
# the rest in `ORG_TABLES`' order: domains before emailProviders (the SES credentials)
DELETION_ORDER: Final = _FIRST + tuple(t for t in ORG_TABLES if t not in _FIRST)
# Where a table's rows keep `_storage` ids: field paths, `[]` stepping into an array.
STORAGE_FIELDS: Final[dict[str, tuple[str, ...]]] = {
    "contactImports": ("storageId",),
    "mediaAssets": ("storageId",),
    "transactionalEmails": ("attachments[].storageId",),
    "transactionalProfiles": ("attachments[].storageId",),
    "transactionalSends": ("attachments[].storageId", "attachmentStorageIds[]"),
}


def is_being_deleted(organization: Mapping[str, Any]) -> bool:
    return organization.get("deletion") is not None


async def gone_or_going(ctx: QueryCtx, organization_id: str) -> bool:
    """Whether the organization is deleted or being deleted (its work must not start)."""
    organization = await ctx.db.get(organization_id)
    return organization is None or is_being_deleted(organization)


async def begin(ctx: MutationCtx, organization_id: str) -> None:
    """Mark the organization, close it to everyone and schedule the job (module docstring)."""
    now = now_ms()
    job = {"startedAt": now, "table": DELETION_ORDER[0], "found": False, "updatedAt": now}
    await ctx.db.patch(organization_id, {"deletion": job, "updatedAt": now})
    for table in _FIRST[: _FIRST.index(SESSIONS) + 1]:
        await _delete_batch(ctx, table, organization_id, ROWS_PER_STEP)
    await _schedule(ctx, organization_id)


async def step(ctx: MutationCtx, organization_id: str) -> None:
    """Delete up to `ROWS_PER_STEP` rows, then schedule the next step, or, after a pass
    that found nothing, delete the organization."""
    organization = await ctx.db.get(organization_id)
    if organization is None or not is_being_deleted(organization):
        return
    job = dict(organization["deletion"])
    position = _position(job["table"])
    budget = ROWS_PER_STEP
    while budget > 0:
        deleted = await _delete_batch(ctx, DELETION_ORDER[position], organization_id, budget)
        budget -= deleted
        job["found"] = job["found"] or deleted > 0
        if budget == 0:
            break  # the table may hold more
        if position + 1 < len(DELETION_ORDER):
            position += 1
        elif job["found"]:
            position, job["found"] = 0, False  # rows came in meanwhile: walk again
        else:
            await ctx.db.delete(organization_id)
            return
    job.update(table=DELETION_ORDER[position], updatedAt=now_ms())
    await ctx.db.patch(organization_id, {"deletion": job})
    await _schedule(ctx, organization_id)


async def resume_stalled(ctx: MutationCtx, idle_ms: float) -> int:
    """Schedule a step of each deletion idle for `idle_ms`; how many."""
    before = now_ms() - idle_ms
    stalled = await stalled_jobs.stalled(
        ctx, "organizations", "by_deletion", "deletion", before, RESUME_BATCH
    )
    for organization in stalled:
        job = {**organization["deletion"], "updatedAt": now_ms()}
        await ctx.db.patch(organization["_id"], {"deletion": job})
        await _schedule(ctx, organization["_id"])
    return len(stalled)


async def _schedule(ctx: MutationCtx, organization_id: str) -> None:
    await ctx.scheduler.run_after(
        0, internal.organization_deletion.step, {"organizationId": organization_id}
    )


def _position(table: str) -> int:
    """Where the walk is (from the start for a table this version no longer deletes)."""
    return DELETION_ORDER.index(table) if table in DELETION_ORDER else 0


def _owned(ctx: MutationCtx, table: str, organization_id: str) -> Any:
    if table == SESSIONS:
        return ctx.db.query(table).with_index(
            "by_active_org", lambda q: q.eq("activeOrganizationId", organization_id)
        )
    return ctx.db.query(table).with_index(
        "by_org", lambda q: q.eq("organizationId", organization_id)
    )


async def _delete_batch(ctx: MutationCtx, table: str, organization_id: str, limit: int) -> int:
    """Delete (sessions: detach) up to `limit` rows of `table`; how many."""
    rows = await _owned(ctx, table, organization_id).take(limit)
    for row in rows:
        if table == SESSIONS:
            await ctx.db.patch(row["_id"], {"activeOrganizationId": UNDEFINED})
            continue
        for storage_id in set(storage_ids(table, row)):
            stored = await ctx.db.system.get(storage_id)
            if stored is not None and stored.get("owner") == organization_id:
                await ctx.storage.delete(storage_id)
        if table == "domains" and row["providerKind"] == "ses":
            await schedule_identity_deletion(ctx, organization_id, row["domain"])
        await ctx.db.delete(row["_id"])
    return len(rows)


def storage_ids(table: str, row: dict[str, Any]) -> Iterator[str]:
    """The `_storage` ids a row of `table` holds (`STORAGE_FIELDS`)."""
    for path in STORAGE_FIELDS.get(table, ()):
        yield from _at(row, path.replace("[]", ".[]").split("."))


def _at(value: Any, steps: list[str]) -> Iterator[str]:
    if not steps:
        if isinstance(value, str):
            yield value
        return
    first, rest = steps[0], steps[1:]
    if first == "[]":
        for item in value if isinstance(value, list) else ():
            yield from _at(item, rest)
    elif isinstance(value, dict) and first in value:
        yield from _at(value[first], rest)
