"""Contact search by prefix through index ranges, not a scan of the organization.

A search (already lower case) walks three index ranges one after the other: email prefix
(`by_org_email`), then full-name prefix (`by_org_name_key`, "first last"), then last-name
prefix (`by_org_last_name_key`). A contact appears once: the name ranges leave out contacts
an earlier range already matched. Order: email matches by email, then name matches by
name. The cursor is `<range>|<the runtime's cursor in that range>` (empty: the range's
start), so pages continue exactly where the last one ended; `endCursor` (reactive pages)
is honoured the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from owlat.app.lib.errors import invalid
from owlat.runtime import END_CURSOR, QueryCtx

_TOP = "\U0010ffff"
_RANGES = (
    ("by_org_email", "email"),
    ("by_org_name_key", "nameKey"),
    ("by_org_last_name_key", "lastNameKey"),
)
_DONE = f"{len(_RANGES)}|"


def _parse(cursor: str | None) -> tuple[int, str | None]:
    if cursor is None:
        return 0, None
    phase, separator, inner = cursor.partition("|")
    if not separator or not phase.isdigit() or int(phase) > len(_RANGES):
        raise invalid("INVALID_CURSOR", f"Invalid pagination cursor {cursor!r}")
    return int(phase), inner or None


def _range(ctx: QueryCtx, organization_id: str, search: str, phase: int) -> Any:
    index, field = _RANGES[phase]
    upper = search + _TOP

    def not_in(name: str) -> Callable[[Any], Any]:
        """Leaves out the contacts the range of `name` (an earlier one) matched."""
        return lambda q: q.not_(q.and_(q.gte(q.field(name), search), q.lt(q.field(name), upper)))

    query = (
        ctx.db.query("contacts")
        .with_index(
            index,
            lambda q: q.eq("organizationId", organization_id).gte(field, search).lt(field, upper),
        )
        # live only: an absent field sorts before null
        .filter(lambda q: q.lt(q.field("deletedAt"), None))
    )
    for _, name in _RANGES[:phase]:
        query = query.filter(not_in(name))
    return query


async def search_page(
    ctx: QueryCtx, organization_id: str, search: str, options: dict[str, Any]
) -> dict[str, Any]:
    """One page `{page, isDone, continueCursor}` of live contacts matching `search`."""
    phase, inner = _parse(options.get("cursor"))
    end_cursor = options.get("endCursor")
    if end_cursor is not None:
        return await _until(ctx, organization_id, search, phase, inner, end_cursor)
    remaining = int(options["numItems"])
    page: list[Any] = []
    while phase < len(_RANGES):
        result = await _range(ctx, organization_id, search, phase).paginate(
            {"numItems": remaining, "cursor": inner}
        )
        page.extend(result["page"])
        remaining -= len(result["page"])
        if not result["isDone"]:
            return {
                "page": page,
                "isDone": False,
                "continueCursor": f"{phase}|{result['continueCursor']}",
            }
        phase, inner = phase + 1, None
        if remaining <= 0 and phase < len(_RANGES):
            return {"page": page, "isDone": False, "continueCursor": f"{phase}|"}
    return {"page": page, "isDone": True, "continueCursor": _DONE}


async def _until(
    ctx: QueryCtx, organization_id: str, search: str, phase: int, inner: str | None, end_cursor: str
) -> dict[str, Any]:
    """The page from the cursor up to `end_cursor`, whatever its size now."""
    end_phase, end_inner = _parse(end_cursor)
    page: list[Any] = []
    for current in range(phase, min(end_phase, len(_RANGES) - 1) + 1):
        if current == end_phase and end_inner is None:
            break  # the end is the start of this range
        end = end_inner if current == end_phase else END_CURSOR
        result = await _range(ctx, organization_id, search, current).paginate(
            {"numItems": 1, "cursor": inner if current == phase else None, "endCursor": end}
        )
        page.extend(result["page"])
    return {"page": page, "isDone": end_phase >= len(_RANGES), "continueCursor": end_cursor}
