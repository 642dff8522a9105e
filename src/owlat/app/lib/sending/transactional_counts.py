"""A transactional email's send counters (reference §2.3 `sendCount`, and beyond upstream
its sends' outcomes), moved by the send state machine's own transitions only, so each send
counts once per counter whatever retries or repeated provider events come:

    sendCount            a transactional send recorded `queued` (`sends.enqueue_send`; an
                         Idempotency-Key replay records nothing, counts nothing)
    stats.sent, .failed  the send's `queued/sending → sent | failed` (`sends.py`)
    stats.delivered, .opened, .humanOpened, .clicked, .bounced, .hardBounced,
    .softBounced, .complained
                         the first delivery evidence, first open, first click, bounce
                         (soft then hard moves one from `softBounced` to `hardBounced`),
                         complaint (`feedback.py`, through `send_tables.SEND_TABLES`)

Only sends of kind `transactional` count: test sends and automation sends do not.

The counts live apart from the email, in `SHARDS` small `transactionalCounts` rows per
email (a send's shard follows from its id; the outcomes one delivery records go together to
the shard of the first: `count_outcomes`), summed when read (`counts_of`): a burst of sends
neither rewrites the email document (its content and HTML weigh tens of KB) nor wakes the
queries that read it (the editor's preview), and concurrent sends on PostgreSQL mostly touch
different rows instead of all conflicting on one.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from typing import Any

from owlat.runtime import MutationCtx, QueryCtx

COUNTERS = (
    "sent",
    "failed",
    "delivered",
    "opened",
    "humanOpened",
    "clicked",
    "bounced",
    "hardBounced",
    "softBounced",
    "complained",
)
QUEUED = "queued"  # the shard rows' key for `sendCount`
SHARDS = 8
TABLE = "transactionalCounts"


async def count_queued(ctx: MutationCtx, send_id: str, send: Mapping[str, Any]) -> None:
    """`sendCount` + 1 for the send just recorded as `send_id`."""
    await _bump(ctx, send_id, send, {QUEUED: 1})


async def count_outcome(
    ctx: MutationCtx, send: Mapping[str, Any], counter: str, delta: int = 1
) -> None:
    """Move the email's `stats[counter]` (one of `COUNTERS`) by `delta` (the send table
    counter of `transactionalSends`, `send_tables.py`)."""
    await _bump(ctx, str(send["_id"]), send, {counter: delta})


async def count_outcomes(ctx: MutationCtx, moved: Sequence[tuple[Mapping[str, Any], str]]) -> None:
    """`count_outcome(send, counter)` of each of `moved` (a delivery's recorded outcomes),
    one shard row read and written per email (the shard of its first send) instead of one
    per send: any shard may hold any send's count, they are summed when read."""
    by_email: dict[str, tuple[Mapping[str, Any], dict[str, int]]] = {}
    for send, counter in moved:
        if _counts(send):
            _, deltas = by_email.setdefault(send["transactionalEmailId"], (send, {}))
            deltas[counter] = deltas.get(counter, 0) + 1
    for first, deltas in by_email.values():
        await _bump(ctx, str(first["_id"]), first, deltas)


async def counts_of(ctx: QueryCtx, email_id: str) -> dict[str, Any]:
    """`{sendCount, stats}` of a transactional email: every counter, 0 when nothing moved it."""
    totals = dict.fromkeys((QUEUED, *COUNTERS), 0)
    rows = await (
        ctx.db.query(TABLE)
        .with_index("by_email", lambda q: q.eq("transactionalEmailId", email_id))
        .collect()
    )
    for row in rows:
        for key, value in row["counts"].items():
            totals[key] = totals.get(key, 0) + value
    queued = totals.pop(QUEUED)
    return {"sendCount": queued, "stats": totals}


async def _bump(
    ctx: MutationCtx, send_id: str, send: Mapping[str, Any], deltas: Mapping[str, int]
) -> None:
    if not _counts(send):
        return
    email_id = send["transactionalEmailId"]
    shard = zlib.crc32(send_id.encode()) % SHARDS
    row = await (
        ctx.db.query(TABLE)
        .with_index("by_email", lambda q: q.eq("transactionalEmailId", email_id).eq("shard", shard))
        .unique()
    )
    if row is None:
        counts = dict(deltas)
        await ctx.db.insert(
            TABLE,
            {
                "organizationId": send["organizationId"],
                "transactionalEmailId": email_id,
                "shard": shard,
                "counts": counts,
            },
        )
        return
    counts = dict(row["counts"])
    for key, delta in deltas.items():
        counts[key] = counts.get(key, 0) + delta
    await ctx.db.patch(row["_id"], {"counts": counts})


def _counts(send: Mapping[str, Any]) -> bool:
    """Whether `send` counts (module docstring: a transactional email's own sends only)."""
    return send.get("kind") == "transactional" and send.get("transactionalEmailId") is not None
