"""Finding the resumable jobs that stopped: rows whose job field (a `{..., updatedAt}`
object, indexed on `<field>.updatedAt`) has not advanced since a time."""

from __future__ import annotations

from typing import Any

from owlat.runtime import QueryCtx


async def stalled(
    ctx: QueryCtx, table: str, index: str, field: str, before: float, limit: int
) -> list[dict[str, Any]]:
    """Up to `limit` rows of `table` whose `field.updatedAt` is at most `before`, the
    longest stalled first."""
    path = f"{field}.updatedAt"
    rows = await (
        ctx.db.query(table)
        # rows without a job sort first (an absent field is below every number)
        .with_index(index, lambda q: q.gte(path, 0).lte(path, before))
        .take(limit)
    )
    return [dict(row) for row in rows]
