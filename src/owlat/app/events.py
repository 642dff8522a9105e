"""Events of contacts (sent through `POST /api/v1/events`, see `rest_api/events.py`), as
the dashboard reads them: a contact's events, or the organization's events of one name.
Reads: any member.
"""

from __future__ import annotations

from typing import Any

from owlat.app.lib.audience import PAGINATION_OPTS, page_options
from owlat.app.lib.contacts import contact_rows_page
from owlat.app.lib.session_organization import get_team_id_from_session
from owlat.runtime import QueryCtx, query, v


@query(args={"contactId": v.string(), "paginationOpts": PAGINATION_OPTS})
async def list_for_contact(ctx: QueryCtx, args: dict[str, Any]) -> dict[str, Any]:
    """The contact's events, newest first (also for a soft-deleted contact)."""
    return await contact_rows_page(ctx, "events", args)


# events:list (shadows the builtin here)
@query(args={"eventName": v.optional(v.string()), "paginationOpts": PAGINATION_OPTS})
async def list(ctx: QueryCtx, args: dict[str, Any]) -> dict[str, Any]:
    """The organization's events named `eventName` (all events without it), newest first."""
    organization_id = await get_team_id_from_session(ctx)
    options = page_options(args["paginationOpts"])
    name = args.get("eventName")
    if name is None:
        events = ctx.db.query("events").with_index(
            "by_org", lambda q: q.eq("organizationId", organization_id)
        )
    else:
        events = ctx.db.query("events").with_index(
            "by_org_event",
            lambda q: q.eq("organizationId", organization_id).eq("eventName", name),
        )
    return dict(await events.order("desc").paginate(options))
