"""A campaign's public "view in browser" archive on the site port (reference §4, §11.2.5;
what it shows: `lib/campaigns/content.py`).

    GET /archive?token=<token>[&s=<signed send>]   the page: the message's HTML under the
                        preview pages' Content-Security-Policy (`share_routes.PAGE_CSP`:
                        no script, no form, no framing); a 404 page when the campaign has
                        no archive
    GET /archive/<token>[?s=<signed send>]         JSON, upstream's wire: `{ok: true, data:
                        {html, subject, sentAt, organizationName}}` (`Cache-Control: public,
                        max-age=3600`, `no-store` when personalized for a recipient); 404
                        `archive_not_found` (the error envelope, reason in `data.reason`)

Both sit behind the public token shell of `subscription_routes.py` (per address, then 30
requests a minute per IP + token); other methods get 405, the JSON endpoint answers CORS
preflights. Viewing records no open and follows no tracked link.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from owlat.app.lib.campaigns.content import ARCHIVE_PATH
from owlat.app.share_routes import PAGE_HEADERS, get_routes, refused_page
from owlat.app.subscription_pages import page
from owlat.app.subscription_routes import (
    Refused,
    admit,
    error_response,
    json_response,
    refusal_response,
)
from owlat.runtime import ActionCtx, HttpAction, internal

PAGE = ARCHIVE_PATH.rstrip("/")
NOT_FOUND = "Archive not found"


async def _resolve(ctx: ActionCtx, request: Request, token: str) -> dict[str, Any] | None:
    """The archive (`content.archive_page`), after the shell's checks (`Refused`)."""
    if not token:
        raise Refused(400, "Missing token")
    await admit(ctx, request, "subscriptions", None, token)
    send = request.query_params.get("s")
    found = await ctx.run_query(
        internal.campaign_sends.archive, {"token": token, **({"send": send} if send else {})}
    )
    return None if found is None else dict(found)


async def _json(ctx: ActionCtx, request: Request) -> Response:
    token = unquote(request.url.path[len(ARCHIVE_PATH) :])
    try:
        answer = await _resolve(ctx, request, token)
    except Refused as exc:
        response = refusal_response(exc)
    else:
        if answer is None:
            response = error_response(404, NOT_FOUND, "archive_not_found")
        else:
            cache = "no-store" if request.query_params.get("s") else "public, max-age=3600"
            response = json_response({"ok": True, "data": answer}, headers={"cache-control": cache})
    response.headers["access-control-allow-origin"] = "*"
    return response


async def _page(ctx: ActionCtx, request: Request) -> Response:
    try:
        answer = await _resolve(ctx, request, request.query_params.get("token") or "")
    except Refused as exc:
        return refused_page(exc)
    if answer is None:
        return page(NOT_FOUND, "<p>This email has no web version, or the link is wrong.</p>", 404)
    return HTMLResponse(answer["html"], headers=PAGE_HEADERS)


def routes() -> list[tuple[str, str, HttpAction]]:
    """(route, method, handler) of both endpoints, with OPTIONS and 405s; a route ending
    in "/" is a prefix."""
    return get_routes(((ARCHIVE_PATH, _json, True), (PAGE, _page, False)))
