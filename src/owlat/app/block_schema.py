"""`blockSchema:get`: the block types, their fields and nesting rules the server checks
template content against (`lib/rendering/describe.py`), for the dashboard's block editor.
Any member of an organization may read it."""

from __future__ import annotations

from typing import Any

from owlat.app.lib.rendering.describe import describe_schema
from owlat.app.lib.session_organization import get_team_id_from_session
from owlat.runtime import QueryCtx, query

_SCHEMA = describe_schema()  # the schema is fixed: described once


@query(args={})
async def get(ctx: QueryCtx, args: dict[str, Any]) -> dict[str, Any]:
    await get_team_id_from_session(ctx)  # members only
    return _SCHEMA
