"""Maintained segment counts: `segments:count` in constant time, exact, and live.

A segment whose conditions do not depend on the time of the query (no `in_last` /
`not_in_last`) gets a count that the contacts trigger keeps: every write of a contact
compares the document before and after against the organization's counted segments and
records the difference. The scan that `segments:count` would otherwise run over every
contact (seconds at a million) then happens once, in the background, when the segment is
created or its conditions change.

Three tables, so that contact writes never conflict with the counting itself:

- `segmentCounts`: the segment's conditions and state (`counting` → `ready`). The trigger
  reads these rows; they change only when counting starts or finishes.
- `segmentCountTotals`: the counted `base` and, while counting, the backfill's `cursor`.
  The trigger never reads it.
- `segmentCountDeltas`: changes recorded by the trigger without reading anything (a blind
  insert, or a patch of the row this transaction inserted): while counting, one row per
  change carrying the contact's `_creationTime`; once ready, one row per transaction.

The backfill (`backfill`, batches of `BACKFILL_BATCH` contacts) walks the organization's
contacts from the newest down. Contacts created at or after its cursor have been counted.
A batch counts the current state of the next contacts and, in the same transaction, settles
every recorded change: applied if its contact had already been counted when it was
recorded (created at or after the old cursor), dropped if this batch just counted the
contact's current state, kept otherwise. A contact created on a node whose clock is behind
lands below the cursor and is counted when the walk reaches it. When the walk ends the
count is `ready` and its value is `base` plus the deltas, which the `fold` cron moves into
`base` every minute. A count that cannot be kept (relative dates) or that is not ready
yet is answered by scanning, as before.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from owlat.app.lib.audience import organization_rows, property_definitions
from owlat.app.lib.errors import AppError
from owlat.app.lib.segment_filters import compile
from owlat.app.lib.session_organization import now_ms
from owlat.runtime import (
    Change,
    MutationCtx,
    QueryCtx,
    document_filter,
    internal,
    internal_mutation,
    v,
)

BACKFILL_BATCH = 1000
FOLD_BATCH = 4000  # changes folded per count per transaction
FOLD_COUNTS = 200  # counts visited per transaction
DROP_BATCH = 1000
MAX_UNFOLDED = 20_000  # a count with more changes not yet folded is answered by a scan
STALLED_MS = 60_000  # a backfill that has not advanced for this long is started again
_RELATIVE = frozenset({"in_last", "not_in_last"})

Test = Callable[[dict[str, Any]], bool]


@dataclasses.dataclass
class _Counted:
    count_id: str
    state: str
    test: Test | None  # None: the conditions no longer compile (a property was removed)


@dataclasses.dataclass
class _TransactionCache:
    """Per mutation: the organizations' counted segments and this transaction's delta rows."""

    counted: dict[str, list[_Counted]] = dataclasses.field(default_factory=dict)
    delta_rows: dict[str, str] = dataclasses.field(default_factory=dict)


_CACHE = "segment_counts"  # key of ctx.state


def _cache(ctx: QueryCtx) -> _TransactionCache:
    cache: _TransactionCache | None = ctx.state.get(_CACHE)
    if cache is None:
        cache = ctx.state[_CACHE] = _TransactionCache()
    return cache


def _forget(ctx: QueryCtx) -> None:
    """Drop the cached counted segments (their rows were just written)."""
    cache: _TransactionCache | None = ctx.state.get(_CACHE)
    if cache is not None:
        cache.counted.clear()


def _conditions(node: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    for item in node.get("conditions", ()):
        if "logic" in item:
            yield from _conditions(item)
        else:
            yield item


def countable(filters: Mapping[str, Any]) -> bool:
    """Whether a count of `filters` can be kept (it does not depend on the time)."""
    return not any(item.get("operator") in _RELATIVE for item in _conditions(filters))


def _test(filters: Any, definitions: Mapping[str, Any]) -> Test:
    return document_filter(compile(filters, definitions, now_ms()))


async def _count_row(ctx: QueryCtx, segment_id: str) -> dict[str, Any] | None:
    row = await (
        ctx.db.query("segmentCounts")
        .with_index("by_segment", lambda q: q.eq("segmentId", segment_id))
        .unique()
    )
    return None if row is None else dict(row)


async def _totals(ctx: QueryCtx, count_id: str) -> dict[str, Any]:
    row = await (
        ctx.db.query("segmentCountTotals")
        .with_index("by_count", lambda q: q.eq("countId", count_id))
        .unique()
    )
    if row is None:
        raise RuntimeError(f"segment count {count_id} has no totals row")
    return dict(row)


def _deltas(ctx: QueryCtx, count_id: str) -> Any:
    return ctx.db.query("segmentCountDeltas").with_index(
        "by_count", lambda q: q.eq("countId", count_id)
    )


# -- kept by the segments module ----------------------------------------------------------


async def start(ctx: MutationCtx, segment: Mapping[str, Any]) -> None:
    """(Re)start the maintained count of `segment` for its current conditions."""
    await stop(ctx, segment["_id"])
    if not countable(segment["filters"]):
        return
    organization_id = segment["organizationId"]
    now = now_ms()
    count_id = await ctx.db.insert(
        "segmentCounts",
        {
            "organizationId": organization_id,
            "segmentId": segment["_id"],
            "filters": segment["filters"],
            "state": "counting",
            "createdAt": now,
        },
    )
    await ctx.db.insert(
        "segmentCountTotals",
        {"organizationId": organization_id, "countId": count_id, "base": 0, "updatedAt": now},
    )
    await ctx.scheduler.run_after(0, internal.segment_counts.backfill, {"countId": count_id})


async def stop(ctx: MutationCtx, segment_id: str) -> None:
    """Forget the segment's count (its recorded changes are deleted in the background)."""
    row = await _count_row(ctx, segment_id)
    _forget(ctx)
    if row is None:
        return
    await ctx.db.delete(row["_id"])
    totals = await _totals(ctx, row["_id"])
    await ctx.db.delete(totals["_id"])
    await ctx.scheduler.run_after(0, internal.segment_counts.drop_deltas, {"countId": row["_id"]})


async def restart_for_property(ctx: MutationCtx, organization_id: str, key: str) -> None:
    """Count again the segments whose conditions name property `key` (it was created or
    removed: their conditions mean something else now)."""
    rows = await organization_rows(ctx, "segmentCounts", organization_id)
    for row in rows:
        if any(item.get("field") == key for item in _conditions(row["filters"])):
            segment = await ctx.db.get(row["segmentId"])
            if segment is not None:
                await start(ctx, segment)


async def stored_count(ctx: QueryCtx, segment_id: str) -> int | None:
    """The segment's maintained count, or None (not kept, or still counting)."""
    row = await _count_row(ctx, segment_id)
    if row is None or row["state"] != "ready":
        return None
    totals = await _totals(ctx, row["_id"])
    deltas = await _deltas(ctx, row["_id"]).take(MAX_UNFOLDED)
    if len(deltas) == MAX_UNFOLDED:
        return None  # the fold is far behind: scanning reads less
    return int(totals["base"] + sum(delta["delta"] for delta in deltas))


# -- the contacts trigger -----------------------------------------------------------------


async def _counted(ctx: QueryCtx, organization_id: str) -> list[_Counted]:
    cache = _cache(ctx)
    found = cache.counted.get(organization_id)
    if found is not None:
        return found
    rows = await organization_rows(ctx, "segmentCounts", organization_id)
    found = []
    if rows:
        definitions = await property_definitions(ctx, organization_id)
        for row in rows:
            try:
                test: Test | None = _test(row["filters"], definitions)
            except AppError:
                test = None
            found.append(_Counted(row["_id"], row["state"], test))
    cache.counted[organization_id] = found
    return found


async def on_contact_change(ctx: MutationCtx, change: Change) -> None:
    """Record how the write changed each counted segment of the contact's organization."""
    document = change.new if change.new is not None else change.old
    assert document is not None
    organization_id = document["organizationId"]
    for counted in await _counted(ctx, organization_id):
        if counted.test is None:
            continue
        was = change.old is not None and counted.test(change.old)
        now = change.new is not None and counted.test(change.new)
        if was == now:
            continue
        delta = 1 if now else -1
        if counted.state == "counting":
            await ctx.db.insert(
                "segmentCountDeltas",
                {
                    "organizationId": organization_id,
                    "countId": counted.count_id,
                    "delta": delta,
                    "contactCreated": document["_creationTime"],
                },
            )
        else:
            await _add(ctx, organization_id, counted.count_id, delta)


async def _add(ctx: MutationCtx, organization_id: str, count_id: str, delta: int) -> None:
    """Add to this transaction's delta row of a ready count (one row per transaction)."""
    rows = _cache(ctx).delta_rows
    row_id = rows.get(count_id)
    row = None if row_id is None else await ctx.db.get(row_id)
    if row is not None:
        await ctx.db.patch(row["_id"], {"delta": row["delta"] + delta})
        return
    rows[count_id] = await ctx.db.insert(
        "segmentCountDeltas",
        {"organizationId": organization_id, "countId": count_id, "delta": delta},
    )


# -- background work ----------------------------------------------------------------------


def _settle(
    deltas: list[dict[str, Any]], old_cursor: float, new_cursor: float
) -> tuple[int, list[dict[str, Any]]]:
    """What a backfill batch does with the recorded changes: the sum to apply, and the rows
    it is done with (applied, or dropped because the batch counted their contact)."""
    applied, done = 0, []
    for delta in deltas:
        created = delta.get("contactCreated", math.inf)
        if created >= old_cursor:
            applied += int(delta["delta"])
            done.append(delta)
        elif created >= new_cursor:
            done.append(delta)
    return applied, done


@internal_mutation(args={"countId": v.id("segmentCounts")})
async def backfill(ctx: MutationCtx, args: dict[str, Any]) -> None:
    """Count the next `BACKFILL_BATCH` contacts (newest first); reschedules itself until
    every contact is counted, then marks the count ready."""
    row = await ctx.db.get(args["countId"])
    if row is None or row["state"] != "counting":
        return
    organization_id = row["organizationId"]
    try:
        test = _test(row["filters"], await property_definitions(ctx, organization_id))
    except AppError:
        return  # a property it names was removed; restart_for_property starts it again
    totals = await _totals(ctx, row["_id"])
    old_cursor = totals.get("cursor", math.inf)

    def below(q: Any) -> Any:
        org = q.eq("organizationId", organization_id)
        return org if old_cursor == math.inf else org.lt("_creationTime", old_cursor)

    page = (
        await ctx.db.query("contacts")
        .with_index("by_org", below)
        .order("desc")
        .take(BACKFILL_BATCH)
    )
    if len(page) < BACKFILL_BATCH:
        counted, new_cursor = list(page), -math.inf
    else:
        new_cursor = page[-1]["_creationTime"]
        ties = await (
            ctx.db.query("contacts")
            .with_index(
                "by_org",
                lambda q: q.eq("organizationId", organization_id).eq("_creationTime", new_cursor),
            )
            .collect()
        )
        counted = [c for c in page if c["_creationTime"] > new_cursor] + list(ties)
    matched = sum(1 for contact in counted if test(contact))
    applied, done = _settle(await _deltas(ctx, row["_id"]).collect(), old_cursor, new_cursor)
    for delta in done:
        await ctx.db.delete(delta["_id"])
    changes: dict[str, Any] = {"base": totals["base"] + matched + applied, "updatedAt": now_ms()}
    if new_cursor == -math.inf:
        await ctx.db.patch(totals["_id"], changes)
        await ctx.db.patch(row["_id"], {"state": "ready"})
        return
    await ctx.db.patch(totals["_id"], {**changes, "cursor": new_cursor})
    await ctx.scheduler.run_after(0, internal.segment_counts.backfill, {"countId": row["_id"]})


@internal_mutation(
    args={"from": v.optional(v.id("segmentCounts")), "after": v.optional(v.id("segmentCounts"))}
)
async def fold(ctx: MutationCtx, args: dict[str, Any]) -> int:
    """Move the recorded changes of ready counts into their base, so that reading a count
    stays a few rows (a cron runs this every minute). Walks the counts that have changes
    in id order (`from` one, or `after` one), at most `FOLD_COUNTS` counts and
    `FOLD_BATCH` changes per count per transaction, and schedules itself again where it
    stopped; returns how many rows it folded."""
    position, inclusive = args.get("from") or args.get("after"), "from" in args
    folded = 0
    for _ in range(FOLD_COUNTS):
        first = await _next_delta(ctx, position, inclusive)
        if first is None:
            return folded
        count_id, position, inclusive = first["countId"], first["countId"], False
        row = await ctx.db.get(count_id)
        if row is not None and row["state"] != "ready":
            continue  # its backfill settles these
        deltas = await _deltas(ctx, count_id).take(FOLD_BATCH)
        for delta in deltas:
            await ctx.db.delete(delta["_id"])
        folded += len(deltas)
        if row is not None:  # else a stopped count's leftovers
            totals = await _totals(ctx, count_id)
            total = sum(delta["delta"] for delta in deltas)
            changes = {"base": totals["base"] + total, "updatedAt": now_ms()}
            await ctx.db.patch(totals["_id"], changes)
        if len(deltas) == FOLD_BATCH:
            await ctx.scheduler.run_after(0, internal.segment_counts.fold, {"from": count_id})
            return folded
    await ctx.scheduler.run_after(0, internal.segment_counts.fold, {"after": position})
    return folded


async def _next_delta(
    ctx: QueryCtx, position: str | None, inclusive: bool
) -> dict[str, Any] | None:
    """The first recorded change of the first count at or after (`inclusive`) or after
    `position` (by id; None: from the start)."""

    def start(q: Any) -> Any:
        if position is None:
            return q
        return q.gte("countId", position) if inclusive else q.gt("countId", position)

    found = await ctx.db.query("segmentCountDeltas").with_index("by_count", start).first()
    return None if found is None else dict(found)


@internal_mutation(args={})
async def resume_backfills(ctx: MutationCtx, args: dict[str, Any]) -> int:
    """Schedule the backfill again for counts that have not advanced for `STALLED_MS`
    (a scheduled mutation that kept conflicting with contact writes, or a lost job);
    returns how many. A batch applies at most once, so a second runner does no harm."""
    resumed = 0
    stale = now_ms() - STALLED_MS
    for row in await (
        ctx.db.query("segmentCounts").with_index("by_state", lambda q: q.eq("state", "counting"))
    ).take(FOLD_COUNTS):
        totals = await _totals(ctx, row["_id"])
        if totals["updatedAt"] < stale:
            await ctx.db.patch(totals["_id"], {"updatedAt": now_ms()})
            await ctx.scheduler.run_after(
                0, internal.segment_counts.backfill, {"countId": row["_id"]}
            )
            resumed += 1
    return resumed


@internal_mutation(args={"countId": v.id("segmentCounts")})
async def drop_deltas(ctx: MutationCtx, args: dict[str, Any]) -> None:
    """Delete the recorded changes of a count that was stopped, in batches."""
    rows = await _deltas(ctx, args["countId"]).take(DROP_BATCH)
    for delta in rows:
        await ctx.db.delete(delta["_id"])
    if len(rows) == DROP_BATCH:
        await ctx.scheduler.run_after(0, internal.segment_counts.drop_deltas, args)
