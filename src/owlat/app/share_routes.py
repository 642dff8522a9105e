"""Share links on the site port (reference §4; links are made by `share_links.py`).

    GET /share/{token}     JSON, upstream's wire: `{ok: true, data: {html, subject,
                           previewText?, organizationName, expiresAt}}`; an unknown or
                           revoked link 404 `share_link_not_found`, an expired one 404
                           `expired` (the error envelope, reason in `data.reason`)
    GET /preview/{token}   the snapshot itself, as a page: the email's HTML under a
                           Content-Security-Policy that runs no script at all (`PAGE_CSP`:
                           no script source, a sandbox without scripts, no forms, no
                           framing); a 404 page for a link that is not valid

Both sit behind the public token shell of `subscription_routes.py`: the per-address limit
counted in memory, then 30 requests a minute per IP + token; other methods get 405, and
the JSON endpoint answers CORS preflights. Nothing is cached, framed or sent as referrer.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any
from urllib.parse import unquote

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from owlat.app.subscription_pages import e, page
from owlat.app.subscription_routes import (
    Refused,
    admit,
    error_response,
    json_response,
    not_allowed,
    preflight,
    refusal_response,
)
from owlat.runtime import ROUTABLE_METHODS, ActionCtx, HttpAction, http_action, internal

JSON_PREFIX = "/share/"
PAGE_PREFIX = "/preview/"
PAGE_CSP = (
    "default-src 'none'; img-src https: http: data:; style-src 'unsafe-inline'; "
    "font-src https: data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'; "
    "sandbox allow-popups allow-popups-to-escape-sandbox"
)
PAGE_HEADERS = {
    "content-security-policy": PAGE_CSP,
    "cache-control": "no-store",
    "referrer-policy": "no-referrer",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "x-robots-tag": "noindex",
}


async def _resolve(ctx: ActionCtx, request: Request, prefix: str) -> dict[str, Any]:
    """The link's answer (`share_links.resolve`), after the shell's checks (`Refused`)."""
    token = unquote(request.url.path[len(prefix) :])
    if not token:
        raise Refused(400, "Missing token")
    await admit(ctx, request, "subscriptions", None, token)
    return dict(await ctx.run_query(internal.share_links.resolve, {"token": token}))


async def _json(ctx: ActionCtx, request: Request) -> Response:
    try:
        answer = await _resolve(ctx, request, JSON_PREFIX)
    except Refused as exc:
        response = refusal_response(exc)
    else:
        if answer["ok"]:
            response = json_response({"ok": True, "data": answer["data"]})
        else:
            response = error_response(answer["status"], answer["message"], answer["reason"])
    response.headers["access-control-allow-origin"] = "*"
    return response


def refused_page(exc: Refused) -> Response:
    """The page answering a request the shell refused."""
    response = page("Request refused", f"<p>{e(exc.message)}</p>", exc.status)
    if exc.retry_after is not None:
        response.headers["retry-after"] = str(int(exc.retry_after))
    return response


async def _page(ctx: ActionCtx, request: Request) -> Response:
    try:
        answer = await _resolve(ctx, request, PAGE_PREFIX)
    except Refused as exc:
        return refused_page(exc)
    if not answer["ok"]:
        return page("Link not valid", "<p>This preview link is invalid or has expired.</p>", 404)
    return HTMLResponse(answer["data"]["html"], headers=PAGE_HEADERS)


def routes() -> list[tuple[str, str, HttpAction]]:
    """(prefix, method, handler) of both endpoints, with OPTIONS and 405s."""
    return get_routes(((JSON_PREFIX, _json, True), (PAGE_PREFIX, _page, False)))


def get_routes(
    endpoints: Iterable[tuple[str, Callable[[ActionCtx, Request], Awaitable[Response]], bool]],
) -> list[tuple[str, str, HttpAction]]:
    """(route, method, handler) of GET endpoints (route, handler, answers CORS), with
    OPTIONS (CORS ones) and 405s."""
    table: list[tuple[str, str, HttpAction]] = []
    for prefix, handler, cors in endpoints:
        refuse = not_allowed(cors)
        for method in ROUTABLE_METHODS:
            if method == "GET":
                table.append((prefix, method, http_action(handler)))
            elif method == "OPTIONS" and cors:
                table.append((prefix, method, preflight("GET")))
            else:
                table.append((prefix, method, refuse))
    return table
