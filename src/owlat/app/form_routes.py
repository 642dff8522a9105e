"""`POST /forms/<formId>` on the site port: a public sign-up form's submission (reference
§4, §7.7; the work is `form_endpoints.submit`).

A JSON object (values made strings: true → "true", numbers as written) or an
URL-encoded body (`application/x-www-form-urlencoded`, the last of repeated keys wins),
at most 100 KB; other bodies → 415. Requests per client address are counted in memory
first (the instance's `public_requests`), then 5 submissions per minute per address and
form in the database → 429 with Retry-After. Answers: 200 `{ok: true, data: {message,
confirmationRequired?}}`, or, when the form has a `redirectUrl`, 302 to exactly that URL
(`?confirmation=pending` added for a double opt-in); errors as the subscription
endpoints' envelope: 404 form_not_found, 403 form_inactive, 400 validation_error. CORS:
any origin (forms live on other sites); OPTIONS answers the preflight.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl, unquote

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from owlat.app.auth_routes.wire import client_ip
from owlat.app.lib.instance import current
from owlat.app.subscription_routes import (
    RATE_LIMITED,
    Refused,
    error_response,
    json_response,
    not_allowed,
    preflight,
    read_body,
    refusal_response,
)
from owlat.runtime import ROUTABLE_METHODS, ActionCtx, HttpAction, http_action, internal

ROUTE = "/forms/"


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    return json.dumps(value)


def parse(content_type: str, body: bytes) -> dict[str, str]:
    """The submitted fields as strings (module docstring), or `Refused`."""
    kind = content_type.split(";")[0].strip().lower()
    if kind == "application/json":
        try:
            parsed = json.loads(body) if body.strip() else {}
        except ValueError:
            raise Refused(400, "Invalid JSON in request body") from None
        if not isinstance(parsed, dict):
            raise Refused(400, "The body must be a JSON object")
        return {str(key): _text(value) for key, value in parsed.items()}
    if kind == "application/x-www-form-urlencoded":
        try:
            return dict(parse_qsl(body.decode(), keep_blank_values=True))
        except UnicodeDecodeError:
            raise Refused(400, "The body is not UTF-8") from None
    raise Refused(415, "Send the form as JSON or application/x-www-form-urlencoded")


def _redirect(url: str, pending: bool) -> str:
    if not pending:
        return url
    return url + ("&" if "?" in url else "?") + "confirmation=pending"


async def _submit(ctx: ActionCtx, request: Request) -> Response:
    cors = {"access-control-allow-origin": "*"}
    try:
        form_id = unquote(request.url.path[len(ROUTE) :])
        if not form_id or "/" in form_id:
            raise Refused(404, "Form not found")
        address = client_ip(request)
        wait = current().public_requests.take(address)
        if wait is not None:
            raise Refused(429, RATE_LIMITED, retry_after=wait)
        data = parse(request.headers.get("content-type", ""), await read_body(request))
        args = {"formId": form_id, "data": data, "ipAddress": address}
        if request.headers.get("user-agent"):
            args["userAgent"] = request.headers["user-agent"]
        answer = await ctx.run_mutation(internal.form_endpoints.submit, args)
        if answer["status"] == 429:
            raise Refused(429, RATE_LIMITED, retry_after=answer["retryAfter"])
    except Refused as exc:
        response = refusal_response(exc)
    else:
        if answer["status"] != 200:
            response = error_response(answer["status"], answer["message"], answer.get("reason"))
        elif "redirectUrl" in answer:
            target = _redirect(answer["redirectUrl"], bool(answer.get("confirmationRequired")))
            response = RedirectResponse(target, status_code=302)
        else:
            data_out: dict[str, Any] = {"message": answer["message"]}
            if answer.get("confirmationRequired"):
                data_out["confirmationRequired"] = True
            response = json_response({"ok": True, "data": data_out})
    response.headers.update(cors)
    return response


def routes() -> list[tuple[str, str, HttpAction]]:
    """(prefix, method, handler): POST submits, OPTIONS answers CORS, others 405."""
    submit, refuse = http_action(_submit), not_allowed(True)
    table: list[tuple[str, str, HttpAction]] = []
    for method in ROUTABLE_METHODS:
        if method == "POST":
            table.append((ROUTE, method, submit))
        elif method == "OPTIONS":
            table.append((ROUTE, method, preflight("POST")))
        else:
            table.append((ROUTE, method, refuse))
    return table
