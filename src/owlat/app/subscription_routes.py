"""The public token endpoints of the site port (reference §4), as JSON.

    POST /unsub/{token}            RFC 8058 one-click: leave every list (action, no CORS)
    GET  /unsub/verify/{token}     whose link this is (outcome)
    GET  /prefs/verify/{token}     the organization's lists and the contact's (outcome)
    POST /prefs/update/{token}     apply {globalUnsubscribe?, topicUpdates?} (action)
    GET  /confirm/doi/verify?token=  the pending confirmation (action)
    POST /confirm/doi?token=       confirm double opt-in (action)

Common shell: OPTIONS → 204 with public CORS; other methods → 405; the token from the path
or `?token=` (missing → 400 "Missing token"); bodies over 100 KB → 400; then `admit`, the
cheapest check first: requests per client address counted in memory (300/min, the
instance's `public_requests`) → 429 with Retry-After; a signed (unsubscribe, preferences)
token's signature → its refusal, without any database work; a fixed-window limit per
client IP + token kept in the database (30/min, DOI 20/min) → 429 with Retry-After. So a
junk token costs no `rateLimits` row, and a flood of them from one address is refused in
memory. DOI tokens are random, not signed: only the two limits guard them. Modes: *action*
answers `{ok: true, data}` or the error envelope `{error: {category, message, data:
{reason}}}` with its status; *outcome* always answers 200, `{ok: true, data}` or
`{ok: false, reason}`. The work happens in `public_subscriptions.py`; the HTML pages
(`subscription_pages.py`) share this shell.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Awaitable, Callable
from typing import Any, Literal
from urllib.parse import unquote

from starlette.requests import Request
from starlette.responses import Response

from owlat.app.auth_routes.wire import client_ip
from owlat.app.lib.instance import current
from owlat.app.lib.tokens import token_hash
from owlat.app.public_subscriptions import Answer, check_updates, token_refusal, update_refusal
from owlat.runtime import (
    ROUTABLE_METHODS,
    ActionCtx,
    HttpAction,
    JSONResponse,
    http_action,
    internal,
)

MAX_BODY = 100 * 1024
WINDOW_MS = 60_000
Bucket = Literal["subscriptions", "doi"]
LIMITS: dict[str, int] = {"subscriptions": 30, "doi": 20}
CATEGORIES = {
    400: "invalid_input",
    403: "forbidden",
    404: "not_found",
    415: "invalid_input",
    429: "rate_limited",
}
RATE_LIMITED = "Rate limit exceeded. Please try again later."
Run = Callable[[ActionCtx, str, bytes], Awaitable[dict[str, Any]]]
# A signed token's refusal as the endpoint answers it, decided without the database.
Check = Callable[[str], Answer | None]


class Refused(Exception):
    """A request refused before any work: (status, message)."""

    def __init__(self, status: int, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.retry_after = status, message, retry_after


# -- the shell -------------------------------------------------------------------------------------


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse(
        body, status_code=status, headers={"cache-control": "no-store", **(headers or {})}
    )


def error_response(status: int, message: str, reason: str | None = None) -> Response:
    error: dict[str, Any] = {"category": CATEGORIES.get(status, "internal"), "message": message}
    if reason is not None:
        error["data"] = {"reason": reason}
    return json_response({"error": error}, status)


async def read_body(request: Request) -> bytes:
    """The body, at most 100 KB (else `Refused` 400 "Request body too large")."""
    declared = request.headers.get("content-length", "0")
    if declared.isdigit() and int(declared) > MAX_BODY:
        raise Refused(400, "Request body too large")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            raise Refused(400, "Request body too large")
    return body


async def admit(
    ctx: ActionCtx, request: Request, bucket: Bucket, check: Check | None, token: str
) -> Answer | None:
    """Let a request through to the database (see the module docstring): `Refused` 429 past
    a limit; `check`'s refusal of a signed token that is not ours (the answer, no database
    touched); else None."""
    address = client_ip(request)
    wait = current().public_requests.take(address)
    if wait is not None:
        raise Refused(429, RATE_LIMITED, retry_after=wait)
    refusal = None if check is None else check(token)
    if refusal is not None:
        return refusal
    wait = await ctx.run_mutation(
        internal.public_subscriptions.take,
        {
            "key": f"{bucket}:{address}:{token_hash(token)[:32]}",
            "limit": LIMITS[bucket],
            "windowMs": WINDOW_MS,
        },
    )
    if wait is not None:
        raise Refused(429, RATE_LIMITED, retry_after=wait)
    return None


def refusal_response(exc: Refused) -> Response:
    response = error_response(exc.status, exc.message)
    if exc.retry_after is not None:
        response.headers["retry-after"] = str(int(exc.retry_after))
    return response


def not_allowed(cors: bool) -> HttpAction:
    async def refuse(ctx: ActionCtx, request: Request) -> Response:
        headers = {"access-control-allow-origin": "*"} if cors else {}
        return json_response({"error": {"message": "Method not allowed"}}, 405, headers)

    return http_action(refuse)


def preflight(method: str) -> HttpAction:
    async def answer(ctx: ActionCtx, request: Request) -> Response:
        return Response(
            status_code=204,
            headers={
                "access-control-allow-origin": "*",
                "access-control-allow-methods": f"{method}, OPTIONS",
                "access-control-allow-headers": "Content-Type",
                "access-control-max-age": "86400",
            },
        )

    return http_action(answer)


# -- endpoints -------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Endpoint:
    route: str  # exact path, or a prefix (ending in "/") followed by the token
    method: str
    bucket: Bucket
    mode: Literal["action", "outcome"]
    run: Run
    check: Check | None  # None: a DOI token (random, not signed)
    cors: bool = True

    def token(self, request: Request) -> str:
        if self.route.endswith("/"):
            return unquote(request.url.path[len(self.route) :])
        return request.query_params.get("token", "")


def _handler(endpoint: Endpoint) -> HttpAction:
    async def handle(ctx: ActionCtx, request: Request) -> Response:
        headers = {"access-control-allow-origin": "*"} if endpoint.cors else {}
        try:
            token = endpoint.token(request)
            if not token:
                raise Refused(400, "Missing token")
            body = await read_body(request)
            answer = await admit(ctx, request, endpoint.bucket, endpoint.check, token)
            if answer is None:
                answer = await endpoint.run(ctx, token, body)
        except Refused as exc:
            response = refusal_response(exc)
        else:
            response = _render(endpoint, answer)
        response.headers.update(headers)
        return response

    handle.__name__ = handle.__qualname__ = f"{endpoint.method} {endpoint.route}"
    return http_action(handle)


def _render(endpoint: Endpoint, answer: dict[str, Any]) -> Response:
    if answer["ok"]:
        return json_response({"ok": True, "data": answer["data"]})
    if endpoint.mode == "outcome":
        return json_response({"ok": False, "reason": answer["reason"]})
    return error_response(answer["status"], answer["message"], answer["reason"])


def _with_token(kind: Literal["query", "mutation"], function: Any) -> Run:
    """A `Run` calling an internal function with just the token (the body is ignored:
    RFC 8058 one-click POSTs carry `List-Unsubscribe=One-Click`)."""

    async def run(ctx: ActionCtx, token: str, body: bytes) -> dict[str, Any]:
        call = ctx.run_query if kind == "query" else ctx.run_mutation
        return dict(await call(function, {"token": token}))

    return run


async def _update_prefs(ctx: ActionCtx, token: str, raw: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw) if raw.strip() else {}
    except ValueError:
        raise Refused(400, "Invalid JSON in request body") from None
    if not isinstance(body, dict):
        raise Refused(400, "The body must be a JSON object")
    global_unsubscribe, updates = body.get("globalUnsubscribe"), body.get("topicUpdates")
    problem = check_updates(global_unsubscribe, updates)
    if problem is not None:
        return problem
    args: dict[str, Any] = {"token": token}
    if global_unsubscribe is not None:
        args["globalUnsubscribe"] = global_unsubscribe
    if updates is not None:
        args["topicUpdates"] = [
            {"topicId": u["topicId"], "subscribed": u["subscribed"]} for u in updates
        ]
    return dict(await ctx.run_mutation(internal.public_subscriptions.update_preferences, args))


_PUBLIC = internal.public_subscriptions
_ONE_CLICK = _with_token("mutation", _PUBLIC.unsubscribe_all)
_UNSUBSCRIBE_DETAILS = _with_token("query", _PUBLIC.unsubscribe_details)
_PREFERENCES = _with_token("query", _PUBLIC.preferences)
_DOI_DETAILS = _with_token("query", _PUBLIC.doi_details)
_CONFIRM_DOI = _with_token("mutation", _PUBLIC.confirm_doi)
_UNSUB: Check = functools.partial(token_refusal, "unsubscribe")
_PREFS: Check = functools.partial(token_refusal, "preferences")

ENDPOINTS = (
    Endpoint("/unsub/", "POST", "subscriptions", "action", _ONE_CLICK, _UNSUB, cors=False),
    Endpoint("/unsub/verify/", "GET", "subscriptions", "outcome", _UNSUBSCRIBE_DETAILS, _UNSUB),
    Endpoint("/prefs/verify/", "GET", "subscriptions", "outcome", _PREFERENCES, _PREFS),
    Endpoint("/prefs/update/", "POST", "subscriptions", "action", _update_prefs, update_refusal),
    Endpoint("/confirm/doi/verify", "GET", "doi", "action", _DOI_DETAILS, None),
    Endpoint("/confirm/doi", "POST", "doi", "action", _CONFIRM_DOI, None),
)


def routes() -> list[tuple[str, str, HttpAction]]:
    """(path or prefix, method, handler) of every endpoint, with OPTIONS and 405s."""
    table: list[tuple[str, str, HttpAction]] = []
    for endpoint in ENDPOINTS:
        refuse = not_allowed(endpoint.cors)
        for method in ROUTABLE_METHODS:
            if method == endpoint.method:
                table.append((endpoint.route, method, _handler(endpoint)))
            elif method == "OPTIONS":
                table.append((endpoint.route, method, preflight(endpoint.method)))
            else:
                table.append((endpoint.route, method, refuse))
    return table
