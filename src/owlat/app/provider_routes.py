"""`providerRoutes:*`: which providers send each message type (`lib/sending/routes.py`).

`list` (any member): the route of every message type, its own or the default one (marked
`isDefault`), and the health of each provider in it. `set` (`organization:manage`):
strategy and providers of a type, every provider configured (or the outbox). `reset`:
back to the default route.
"""

from __future__ import annotations

from typing import Any

from owlat.app.lib.email_providers.routing import MessageType
from owlat.app.lib.permissions import require_permission
from owlat.app.lib.sending.routes import (
    check_route,
    configured_kinds,
    default_route,
    health_rows,
    health_status,
    route_document,
    route_row,
)
from owlat.app.lib.session_organization import (
    get_mutation_context,
    get_team_id_from_session,
    now_ms,
)
from owlat.app.schema import MESSAGE_TYPE, PROVIDER_KIND, ROUTE_STRATEGY
from owlat.runtime import MutationCtx, QueryCtx, mutation, query, v


@query(args={})
async def list_(ctx: QueryCtx, args: dict[str, Any]) -> list[dict[str, Any]]:
    organization_id = await get_team_id_from_session(ctx)
    default = route_document(default_route(await configured_kinds(ctx, organization_id)))
    health = await health_rows(ctx, organization_id)
    now = now_ms()
    answer = []
    for message_type in MessageType:
        row = await route_row(ctx, organization_id, str(message_type))
        route = default if row is None else route_document_of(row)
        for target in route["providers"]:
            stored = health.get(target["provider"])
            target["health"] = "healthy" if stored is None else health_status(stored, now)
        answer.append({"messageType": str(message_type), "isDefault": row is None, **route})
    return answer


def route_document_of(row: dict[str, Any]) -> dict[str, Any]:
    return {"strategy": row["strategy"], "providers": [dict(t) for t in row["providers"]]}


@mutation(
    args={
        "messageType": MESSAGE_TYPE,
        "strategy": ROUTE_STRATEGY,
        "providers": v.array(
            v.object(
                {
                    "provider": PROVIDER_KIND,
                    "weight": v.optional(v.number()),
                    "enabled": v.optional(v.boolean()),
                }
            )
        ),
    }
)
async def set_(ctx: MutationCtx, args: dict[str, Any]) -> dict[str, Any]:
    context = await get_mutation_context(ctx)
    require_permission(context.role, "organization:manage")
    route = check_route(args, await configured_kinds(ctx, context.team_id))
    fields = {
        **route_document(route),
        "updatedBy": context.user_id,
        "updatedAt": now_ms(),
    }
    row = await route_row(ctx, context.team_id, args["messageType"])
    if row is None:
        await ctx.db.insert(
            "providerRoutes",
            {"organizationId": context.team_id, "messageType": args["messageType"], **fields},
        )
    else:
        await ctx.db.patch(row["_id"], fields)
    return {"messageType": args["messageType"], "isDefault": False, **route_document(route)}


@mutation(args={"messageType": MESSAGE_TYPE})
async def reset(ctx: MutationCtx, args: dict[str, Any]) -> None:
    """Back to the default route (no error when the type had none)."""
    context = await get_mutation_context(ctx)
    require_permission(context.role, "organization:manage")
    row = await route_row(ctx, context.team_id, args["messageType"])
    if row is not None:
        await ctx.db.delete(row["_id"])
