"""Server-rendered pages where recipients land from their mail (reference §4 notes):

    GET /unsubscribe?token=   who and what; a button POSTs to the same path, which
                              unsubscribes from every list (a GET never changes anything:
                              mail scanners prefetch links)
    GET /preferences?token=   the organization's lists with checkboxes and a global
                              unsubscribe; the form POSTs to the same path, which applies
                              it and shows the page again
    GET /confirm?token=       the double opt-in confirmation; a button POSTs to confirm

Same shell as the JSON endpoints (token, body cap, `admit`: the per-address limit, a signed
token's signature before any database work, the limit per IP + token); every value shown is
HTML-escaped; pages are not cached, framed, or sent as referrers.
"""

from __future__ import annotations

import functools
import html
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs, quote

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from owlat.app.lib.subscription_tokens import Kind
from owlat.app.public_subscriptions import MAX_TOPIC_UPDATES, token_refusal
from owlat.app.subscription_routes import Bucket, Refused, admit, read_body
from owlat.runtime import ROUTABLE_METHODS, ActionCtx, HttpAction, http_action, internal

PUBLIC = internal.public_subscriptions
Page = Callable[[ActionCtx, str, str, dict[str, list[str]]], Awaitable[Response]]
HEADERS = {
    "cache-control": "no-store",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "content-security-policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
}
STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:36rem;margin:3rem auto;padding:0 1rem;"
    "color:#222}button{font-size:1rem;padding:.5rem 1.2rem}label{display:block;margin:.4rem 0}"
    ".muted{color:#666}"
)


def e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def page(title: str, body: str, status: int = 200) -> Response:
    document = (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{e(title)}</title><style>{STYLE}</style></head>"
        f"<body><h1>{e(title)}</h1>{body}</body></html>"
    )
    return HTMLResponse(document, status_code=status, headers=HEADERS)


def form(path: str, token: str, inner: str, button: str) -> str:
    return (
        f'<form method="post" action="{e(path)}?token={e(quote(token, safe=""))}">'
        f'<input type="hidden" name="token" value="{e(token)}">{inner}'
        f'<button type="submit">{e(button)}</button></form>'
    )


def invalid_link(what: str) -> Response:
    return page("Link not valid", f"<p>This {e(what)} link is invalid or has expired.</p>", 400)


# -- /unsubscribe ------------------------------------------------------------------------------


async def _unsubscribe(
    ctx: ActionCtx, method: str, token: str, fields: dict[str, list[str]]
) -> Response:
    if method == "POST":
        answer = await ctx.run_mutation(PUBLIC.unsubscribe_all, {"token": token})
        if not answer["ok"]:
            return invalid_link("unsubscribe")
        return page(
            "You are unsubscribed",
            "<p>You will not receive marketing email from us any more.</p>",
        )
    answer = await ctx.run_query(PUBLIC.unsubscribe_details, {"token": token})
    if not answer["ok"]:
        return invalid_link("unsubscribe")
    data = answer["data"]
    greeting = f"<p>Hi {e(data['firstName'])},</p>" if data.get("firstName") else ""
    question = (
        f"<p>Unsubscribe <strong>{e(data['email'])}</strong> from all email from "
        f"<strong>{e(data['organizationName'])}</strong>?</p>"
    )
    return page("Unsubscribe", greeting + question + form("/unsubscribe", token, "", "Unsubscribe"))


# -- /preferences ------------------------------------------------------------------------------


def _preferences_page(token: str, data: dict[str, Any], notice: str = "") -> Response:
    rows = []
    for topic in data["topics"]:
        checked = " checked" if topic["subscribed"] else ""
        note = (
            ' <span class="muted">(waiting for confirmation)</span>' if topic.get("pending") else ""
        )
        description = (
            f'<br><span class="muted">{e(topic["description"])}</span>'
            if topic.get("description")
            else ""
        )
        rows.append(
            f'<label><input type="checkbox" name="list" value="{e(topic["_id"])}"{checked}> '
            f"{e(topic['name'])}{note}{description}</label>"
        )
    everything = (
        '<label><input type="checkbox" name="unsubscribe_all" value="1"> '
        "Unsubscribe from all email</label>"
    )
    intro = (
        f"<p>Email preferences of <strong>{e(data['email'])}</strong> at {e(data['teamName'])}.</p>"
    )
    notice_html = f"<p><strong>{e(notice)}</strong></p>" if notice else ""
    inner = "".join(rows) + "<hr>" + everything
    return page(
        "Email preferences", notice_html + intro + form("/preferences", token, inner, "Save")
    )


async def _preferences(
    ctx: ActionCtx, method: str, token: str, fields: dict[str, list[str]]
) -> Response:
    answer = await ctx.run_query(PUBLIC.preferences, {"token": token})
    if not answer["ok"]:
        return invalid_link("preferences")
    if method == "GET":
        return _preferences_page(token, answer["data"])
    checked = set(fields.get("list", []))
    updates = [
        {"topicId": topic["_id"], "subscribed": topic["_id"] in checked}
        for topic in answer["data"]["topics"]
        if topic["subscribed"] != (topic["_id"] in checked)
    ]
    if fields.get("unsubscribe_all"):
        batches: list[dict[str, Any]] = [{"globalUnsubscribe": True}]
    else:
        batches = [
            {"topicUpdates": updates[i : i + MAX_TOPIC_UPDATES]}
            for i in range(0, len(updates), MAX_TOPIC_UPDATES)
        ]
    for batch in batches:
        result = await ctx.run_mutation(PUBLIC.update_preferences, {"token": token, **batch})
        if not result["ok"]:
            return page("Not saved", f"<p>{e(result['message'])}</p>", result["status"])
    fresh = await ctx.run_query(PUBLIC.preferences, {"token": token})
    return _preferences_page(token, fresh["data"], "Your preferences were saved.")


# -- /confirm ----------------------------------------------------------------------------------


async def _confirm(
    ctx: ActionCtx, method: str, token: str, fields: dict[str, list[str]]
) -> Response:
    if method == "POST":
        answer = await ctx.run_mutation(PUBLIC.confirm_doi, {"token": token})
        if not answer["ok"]:
            return page("Not confirmed", f"<p>{e(answer['message'])}.</p>", 400)
        return page("Subscription confirmed", f"<p>{e(answer['data']['message'])}</p>")
    answer = await ctx.run_query(PUBLIC.doi_details, {"token": token})
    if not answer["ok"]:
        return invalid_link("confirmation")
    data = answer["data"]
    if data.get("alreadyConfirmed"):
        return page("Subscription confirmed", "<p>Your subscription was already confirmed.</p>")
    text = (
        f"<p>Confirm that <strong>{e(data['contactEmail'])}</strong> wants to receive email "
        f"from <strong>{e(data['teamName'])}</strong>.</p>"
    )
    return page("Confirm your subscription", text + form("/confirm", token, "", "Confirm"))


# -- the shell ---------------------------------------------------------------------------------


def _page_handler(bucket: Bucket, kind: Kind | None, render: Page) -> HttpAction:
    """`render` behind the shell; a `kind` page refuses a token not signed as `kind` before
    any database work (`kind` None: the DOI page, whose tokens are not signed)."""
    check = None if kind is None else functools.partial(token_refusal, kind)
    what = kind or "confirmation"

    async def handle(ctx: ActionCtx, request: Request) -> Response:
        try:
            body = await read_body(request)
            fields = parse_qs(body.decode("utf-8", "replace")) if request.method == "POST" else {}
            token = request.query_params.get("token") or (fields.get("token") or [""])[0]
            if not token:
                raise Refused(400, "Missing token")
            refusal = await admit(ctx, request, bucket, check, token)
        except Refused as exc:
            response = page("Request refused", f"<p>{e(exc.message)}</p>", exc.status)
            if exc.retry_after is not None:
                response.headers["retry-after"] = str(int(exc.retry_after))
            return response
        if refusal is not None:
            return invalid_link(what)
        return await render(ctx, request.method, token, fields)

    return http_action(handle)


async def _not_allowed(ctx: ActionCtx, request: Request) -> Response:
    return page("Method not allowed", "<p>Use the link from your email.</p>", 405)


PAGES: tuple[tuple[str, Bucket, Kind | None, Page], ...] = (
    ("/unsubscribe", "subscriptions", "unsubscribe", _unsubscribe),
    ("/preferences", "subscriptions", "preferences", _preferences),
    ("/confirm", "doi", None, _confirm),
)


def routes() -> list[tuple[str, str, HttpAction]]:
    """(path, method, handler): GET and POST render, other methods answer 405."""
    refuse = http_action(_not_allowed)
    table = []
    for path, bucket, kind, render in PAGES:
        handler = _page_handler(bucket, kind, render)
        for method in ROUTABLE_METHODS:
            table.append((path, method, handler if method in ("GET", "POST") else refuse))
    return table
