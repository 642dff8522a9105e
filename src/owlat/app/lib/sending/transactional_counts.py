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
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from owlat.runtime import MutationCtx

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


async def _email_of(ctx: MutationCtx, send: Mapping[str, Any]) -> dict[str, Any] | None:
    email_id = send.get("transactionalEmailId")
    if send.get("kind") != "transactional" or email_id is None:
        return None
    email = await ctx.db.get(email_id)
    return None if email is None else dict(email)


async def count_queued(ctx: MutationCtx, send: Mapping[str, Any]) -> None:
    """`sendCount` + 1 for a send just recorded."""
    email = await _email_of(ctx, send)
    if email is not None:
        await ctx.db.patch(email["_id"], {"sendCount": (email.get("sendCount") or 0) + 1})


async def count_outcome(
    ctx: MutationCtx, send: Mapping[str, Any], counter: str, delta: int = 1
) -> None:
    """Move the email's `stats[counter]` (one of `COUNTERS`) by `delta` (the send table
    counter of `transactionalSends`, `send_tables.py`)."""
    email = await _email_of(ctx, send)
    if email is None:
        return
    stats = dict(email.get("stats") or {})
    stats[counter] = stats.get(counter, 0) + delta
    await ctx.db.patch(email["_id"], {"stats": stats})
