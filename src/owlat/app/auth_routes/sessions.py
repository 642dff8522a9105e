"""Sessions and tokens: get-session (with `set-auth-jwt`), list/revoke sessions, the JWT
endpoint and the JWKS (BetterAuth's session endpoints and `jwt` plugin).

Only hashes of session tokens are stored, so `list-sessions` cannot hand out other
sessions' tokens: its `token` field holds the session id, which `revoke-session` accepts
as well as a real token.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from owlat.app.auth import SESSION_MAX_AGE_MS, SESSION_REFRESH_AFTER_MS
from owlat.app.auth_routes.wire import (
    current_session,
    endpoint,
    field,
    json_body,
    ok,
    require_session,
    session_json,
    set_session_cookie,
    user_json,
)
from owlat.app.lib import signing_key
from owlat.app.lib.instance import current
from owlat.app.lib.session_organization import now_ms
from owlat.app.lib.tokens import token_hash
from owlat.runtime import ActionCtx, internal


def issue_jwt(session: dict[str, Any], user: dict[str, Any]) -> str:
    instance = current()
    return signing_key.issue_token(
        instance.data_dir, instance.base_url, user["_id"], session["_id"], user_json(user)
    )


@endpoint
async def get_session(ctx: ActionCtx, request: Request) -> Response:
    found = await current_session(ctx, request)
    if found is None:
        return ok(None)
    session, user, token = found
    due = session["expiresAt"] - now_ms() <= SESSION_MAX_AGE_MS - SESSION_REFRESH_AFTER_MS
    refreshed = due and await ctx.run_mutation(
        internal.auth.refresh_session, {"sessionId": session["_id"]}
    )
    if refreshed:
        found = await current_session(ctx, request)
        assert found is not None
        session = found[0]
    response = ok({"session": session_json(session, token), "user": user_json(user)})
    if refreshed:
        set_session_cookie(response, token)
    response.headers["set-auth-jwt"] = issue_jwt(session, user)
    response.headers["access-control-expose-headers"] = "set-auth-jwt"
    return response


@endpoint
async def token(ctx: ActionCtx, request: Request) -> Response:
    session, user, _ = require_session(await current_session(ctx, request))
    return ok({"token": issue_jwt(session, user)})


@endpoint
async def jwks(ctx: ActionCtx, request: Request) -> Response:
    return ok(signing_key.jwks(current().data_dir))


@endpoint
async def list_sessions(ctx: ActionCtx, request: Request) -> Response:
    session, user, token = require_session(await current_session(ctx, request))
    sessions = await ctx.run_query(internal.auth.list_sessions, {"userId": user["_id"]})
    return ok([session_json(s, token if s["_id"] == session["_id"] else None) for s in sessions])


@endpoint
async def revoke_session(ctx: ActionCtx, request: Request) -> Response:
    _, user, _ = require_session(await current_session(ctx, request))
    target = field(await json_body(request), "token")
    sessions = await ctx.run_query(internal.auth.list_sessions, {"userId": user["_id"]})
    hashed = token_hash(target)
    for candidate in sessions:
        if candidate["_id"] == target or candidate["tokenHash"] == hashed:
            await ctx.run_mutation(
                internal.auth.delete_session, {"userId": user["_id"], "sessionId": candidate["_id"]}
            )
    return ok({"status": True})


@endpoint
async def revoke_sessions(ctx: ActionCtx, request: Request) -> Response:
    _, user, _ = require_session(await current_session(ctx, request))
    await ctx.run_mutation(internal.auth.revoke_sessions, {"userId": user["_id"]})
    return ok({"status": True})


@endpoint
async def revoke_other_sessions(ctx: ActionCtx, request: Request) -> Response:
    session, user, _ = require_session(await current_session(ctx, request))
    await ctx.run_mutation(
        internal.auth.revoke_sessions, {"userId": user["_id"], "keepSessionId": session["_id"]}
    )
    return ok({"status": True})
