"""Rows one call reads again and again, read once per call.

An import batch subscribes hundreds of contacts in one mutation, and every membership or
contact write fires triggers that look up the organization's active automations and
webhooks. `rows_once` keeps such a lookup in `ctx.state` for the rest of the call (its
read set holds the first read, so reactivity and write conflicts are as before), and the
triggers on the looked-up tables call `forget`, so a write to them later in the same call
is seen by the next lookup.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from owlat.runtime import Change, MutationCtx, QueryCtx

_KEY = "call_cache.rows"

Rows = list[dict[str, Any]]


async def rows_once(
    ctx: QueryCtx, table: str, key: tuple[str, ...], load: Callable[[], Awaitable[Rows]]
) -> Rows:
    """`load()`'s rows of `table` for `key`, read once per call."""
    cache: dict[tuple[str, ...], Rows] = ctx.state.setdefault(_KEY, {})
    if (table, *key) not in cache:
        cache[(table, *key)] = await load()
    return cache[(table, *key)]


async def forget(ctx: MutationCtx, change: Change) -> None:
    """A trigger: the cached lookups of the written table are read again."""
    cache: dict[tuple[str, ...], Rows] = ctx.state.get(_KEY, {})
    for key in [key for key in cache if key[0] == change.table]:
        del cache[key]
