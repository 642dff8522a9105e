"""Session-scoped functions with an internal twin for the `/api/auth` endpoints.

    create, create_via_session = session_mutation(args={...})(_create)

gives the public `organizations:create` (the session comes from the caller's JWT) and the
internal `organizations:createViaSession`, which takes the same arguments plus `sessionId`
(the HTTP endpoint read it from the session cookie). Both run the same handler; the
session helpers (`session_organization.py`) find the session either way.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from owlat.app.lib.session_organization import SESSION_ID
from owlat.runtime import (
    MutationCtx,
    QueryCtx,
    Validator,
    internal_mutation,
    internal_query,
    mutation,
    query,
    v,
)

QueryHandler = Callable[[QueryCtx, dict[str, Any]], Awaitable[Any]]
MutationHandler = Callable[[MutationCtx, dict[str, Any]], Awaitable[Any]]
Twins = tuple[Any, Any]  # (the public function, its internal `…ViaSession` twin)


def _twins(
    public: Any, internal: Any, args: Mapping[str, Validator]
) -> Callable[[Callable[[Any, dict[str, Any]], Awaitable[Any]]], Twins]:
    def wrap(handler: Callable[[Any, dict[str, Any]], Awaitable[Any]]) -> Twins:
        async def via_session(ctx: QueryCtx, arguments: dict[str, Any]) -> Any:
            arguments = dict(arguments)
            ctx.state[SESSION_ID] = arguments.pop("sessionId")
            return await handler(ctx, arguments)

        via_session.__module__ = handler.__module__
        via_session.__qualname__ = handler.__qualname__ + "_via_session"
        return (
            public(args=dict(args))(handler),
            internal(args={**args, "sessionId": v.string()})(via_session),
        )

    return wrap


def session_query(args: Mapping[str, Validator]) -> Callable[[QueryHandler], Twins]:
    return _twins(query, internal_query, args)


def session_mutation(args: Mapping[str, Validator]) -> Callable[[MutationHandler], Twins]:
    return _twins(mutation, internal_mutation, args)
