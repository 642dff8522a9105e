"""Rate limits kept in the `rateLimits` table (so every server node shares them).

- `window_count`: a fixed-window counter (sign-in attempts per IP, failures per account).
- `take_token`: a token bucket (API keys: refill `rate`/s up to `capacity`).
Both run inside the caller's mutation.
"""

from __future__ import annotations

import math
from typing import Any

from owlat.app.lib.session_organization import now_ms
from owlat.runtime import MutationCtx, QueryCtx


async def _row(ctx: QueryCtx, key: str) -> dict[str, Any] | None:
    row = await ctx.db.query("rateLimits").with_index("by_key", lambda q: q.eq("key", key)).unique()
    return None if row is None else dict(row)


async def window_count(
    ctx: MutationCtx, key: str, window_ms: float, add: int = 1
) -> tuple[int, float]:
    """Add `add` to the counter of `key` in its current window; (count, window end)."""
    now = now_ms()
    row = await _row(ctx, key)
    if row is None or now - row["since"] >= window_ms:
        if row is not None:
            await ctx.db.delete(row["_id"])
        if add == 0:
            return 0, now + window_ms
        await ctx.db.insert("rateLimits", {"key": key, "value": float(add), "since": now})
        return add, now + window_ms
    count = int(row["value"]) + add
    if add:
        await ctx.db.patch(row["_id"], {"value": float(count)})
    return count, row["since"] + window_ms


async def clear(ctx: MutationCtx, key: str) -> None:
    row = await _row(ctx, key)
    if row is not None:
        await ctx.db.delete(row["_id"])


async def take_token(ctx: MutationCtx, key: str, rate: float, capacity: float) -> float | None:
    """Take one token from the bucket of `key`: None when taken, else seconds to wait."""
    now = now_ms()
    row = await _row(ctx, key)
    tokens = (
        capacity
        if row is None
        else min(capacity, row["value"] + (now - row["since"]) * rate / 1000)
    )
    if tokens < 1:
        return math.ceil((1 - tokens) / rate)
    if row is None:
        await ctx.db.insert("rateLimits", {"key": key, "value": tokens - 1, "since": now})
    else:
        await ctx.db.patch(row["_id"], {"value": tokens - 1, "since": now})
    return None
