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
from owlat.runtime import Validator, internal_mutation, internal_query, mutation, query, v

Handler = Callable[[Any, Any], Awaitable[Any]]
Twins = tuple[Any, Any]


def _twins(public: Any, internal: Any, args: Mapping[str, Validator]) -> Callable[[Handler], Twins]:
    def wrap(handler: Handler) -> Twins:
        async def via_session(ctx: Any, arguments: Any) -> Any:
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


def session_query(args: Mapping[str, Validator]) -> Callable[[Handler], Twins]:
    return _twins(query, internal_query, args)


def session_mutation(args: Mapping[str, Validator]) -> Callable[[Handler], Twins]:
    return _twins(mutation, internal_mutation, args)
