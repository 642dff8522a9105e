"""What every `/api/auth` endpoint shares: JSON bodies, `{code, message}` errors, the
signed session cookie, the Origin check and the caller's session.

Cookie: `better-auth.session_token=<token>.<base64 HMAC-SHA256(token, secret)>`
(URL-encoded; `__Secure-` prefixed on https), `Max-Age=604800; Path=/; HttpOnly;
SameSite=Lax`. Only SHA-256(token) is stored.

Known device: `owlat.known_device=device:<user id>.<base64 HMAC>`, set for 400 days (the
most browsers keep a cookie) when a password is proven, so that a sign-in from the device
is not slowed when strangers hammer the account (`auth.sign_in_gate`). It names the last
user who signed in there; it grants nothing but that.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote, unquote

from starlette.requests import Request
from starlette.responses import Response

from owlat.app.lib.errors import AppError, AuthFailure
from owlat.app.lib.instance import current
from owlat.app.lib.tokens import random_token, sign, token_hash, unsign
from owlat.runtime import ActionCtx, HttpAction, JSONResponse, http_action, internal

COOKIE = "better-auth.session_token"
DEVICE_COOKIE = "owlat.known_device"
DEVICE_MAX_AGE = 400 * 24 * 3600
_CALLER_ERRORS = frozenset(
    {"ArgumentValidationError", "ValidationError", "InvalidValue", "InvalidId"}
)
MAX_AGE = 604800
Handler = Callable[[ActionCtx, Request], Awaitable[Response]]


def cookie_name(name: str = COOKIE) -> str:
    return ("__Secure-" if current().base_url.startswith("https://") else "") + name


def iso(ms: float | None) -> str | None:
    if ms is None:
        return None
    moment = datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def user_json(user: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": user["_id"],
        "name": user["name"],
        "email": user["email"],
        "emailVerified": user["emailVerified"],
        "image": user.get("image"),
        "createdAt": iso(user["createdAt"]),
        "updatedAt": iso(user["updatedAt"]),
    }


def session_json(session: dict[str, Any], token: str | None) -> dict[str, Any]:
    return {
        "id": session["_id"],
        "token": token if token is not None else session["_id"],
        "userId": session["userId"],
        "expiresAt": iso(session["expiresAt"]),
        "createdAt": iso(session["createdAt"]),
        "updatedAt": iso(session["updatedAt"]),
        "ipAddress": session.get("ipAddress"),
        "userAgent": session.get("userAgent"),
        "activeOrganizationId": session.get("activeOrganizationId"),
    }


def error(code: str, message: str, status: int) -> JSONResponse:
    return JSONResponse({"code": code, "message": message}, status_code=status)


def failure(exc: AppError) -> JSONResponse:
    return error(exc.error_code, exc.message, exc.status)


def ok(body: Any, status: int = 200) -> Response:
    """`body` (a bare `null` too: BetterAuth's get-session answers it), never cached."""
    return JSONResponse(body, status_code=status, headers={"cache-control": "no-store"})


class BadRequest(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


async def json_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        raise BadRequest("Invalid JSON body") from None
    if not isinstance(body, dict):
        raise BadRequest("The body must be a JSON object")
    return body


def field(body: dict[str, Any], name: str, *, required: bool = True) -> Any:
    value = body.get(name)
    if value is None and required:
        raise BadRequest(f"{name} is required")
    if value is not None and not isinstance(value, str):
        raise BadRequest(f"{name} must be a string")
    return value


# -- cookies -------------------------------------------------------------------------------


def new_session_token() -> tuple[str, str]:
    """A new session token and its stored hash."""
    token = random_token(32)
    return token, token_hash(token)


def _set_cookie(response: Response, name: str, value: str, max_age: int | None) -> None:
    signed = quote(sign(value, current().secret), safe="")
    parts = [f"{cookie_name(name)}={signed}", "Path=/", "HttpOnly", "SameSite=Lax"]
    if max_age is not None:
        parts.insert(1, f"Max-Age={max_age}")
    if current().base_url.startswith("https://"):
        parts.append("Secure")
    response.headers.append("set-cookie", "; ".join(parts))


def _signed_cookie(request: Request, name: str) -> str | None:
    raw = request.cookies.get(cookie_name(name))
    if not raw:
        return None
    return unsign(unquote(raw), current().secret)


def set_session_cookie(response: Response, token: str, *, remember: bool = True) -> None:
    _set_cookie(response, COOKIE, token, MAX_AGE if remember else None)


def set_device_cookie(response: Response, user_id: str) -> None:
    """Mark the caller's device as one that proved the password of `user_id`."""
    _set_cookie(response, DEVICE_COOKIE, f"device:{user_id}", DEVICE_MAX_AGE)


def device_user_id(request: Request) -> str | None:
    """The user whose password the caller's device last proved (its signed cookie)."""
    value = _signed_cookie(request, DEVICE_COOKIE)
    prefix, _, user_id = (value or "").partition(":")
    return user_id if prefix == "device" and user_id else None


def clear_session_cookie(response: Response) -> None:
    response.headers.append(
        "set-cookie", f"{cookie_name()}=; Max-Age=0; Path=/; HttpOnly; SameSite=Lax"
    )


def cookie_token(request: Request) -> str | None:
    """The session token of the request's cookie when its signature is valid."""
    return _signed_cookie(request, COOKIE)


async def current_session(
    ctx: ActionCtx, request: Request
) -> tuple[dict[str, Any], dict[str, Any], str] | None:
    """(session, user, token) of the request's cookie, or None."""
    token = cookie_token(request)
    if token is None:
        return None
    found = await ctx.run_query(internal.auth.session_by_token, {"tokenHash": token_hash(token)})
    if found is None:
        return None
    return found["session"], found["user"], token


def client_ip(request: Request) -> str:
    """The peer address, or the X-Forwarded-For client that uvicorn put in its place when
    the peer is a trusted proxy (OWLAT_TRUSTED_PROXIES, empty by default)."""
    return request.client.host if request.client is not None else "unknown"


# -- origin check and the endpoint wrapper -------------------------------------------------


def _origin_refusal(request: Request) -> Response | None:
    """BetterAuth's CSRF rule: a POST carrying a cookie or a `sec-fetch-*` header needs a
    trusted `Origin`."""
    if request.method != "POST":
        return None
    carries = "cookie" in request.headers or any(
        h.startswith("sec-fetch-") for h in request.headers
    )
    if not carries:
        return None
    origin = request.headers.get("origin") or request.headers.get("referer")
    if not origin or origin == "null":
        return error("MISSING_OR_NULL_ORIGIN", "Missing or null Origin", 403)
    scheme, _, rest = origin.partition("://")
    if f"{scheme}://{rest.split('/', 1)[0]}".lower() not in current().origins():
        return error("INVALID_ORIGIN", "Invalid origin", 403)
    return None


def cors_headers(request: Request) -> dict[str, str]:
    origin = request.headers.get("origin")
    if not origin or origin.lower() not in current().origins():
        return {}
    return {
        "access-control-allow-origin": origin,
        "access-control-allow-credentials": "true",
        "access-control-expose-headers": "set-auth-jwt",
        "vary": "Origin",
    }


def endpoint(handler: Handler) -> HttpAction:
    """An `/api/auth` HTTP action: Origin check, `{code, message}` errors, CORS headers."""

    async def run(ctx: ActionCtx, request: Request) -> Response:
        refusal = _origin_refusal(request)
        if refusal is not None:
            return refusal
        try:
            response = await handler(ctx, request)
        except AppError as exc:
            response = failure(exc)
        except BadRequest as exc:
            response = error("BAD_REQUEST", exc.message, 400)
        except Exception as exc:
            if getattr(exc, "code", None) not in _CALLER_ERRORS:
                raise
            # arguments refused by a function's validators: the caller's mistake
            response = error("BAD_REQUEST", str(exc).split("\n", 1)[0], 400)
        response.headers.update(cors_headers(request))
        return response

    run.__name__ = run.__qualname__ = handler.__name__
    return http_action(run)


@http_action
async def preflight(ctx: ActionCtx, request: Request) -> Response:
    headers = cors_headers(request)
    if headers:
        headers.update(
            {
                "access-control-allow-methods": "GET, POST, OPTIONS",
                "access-control-allow-headers": "Content-Type, Authorization",
                "access-control-max-age": "86400",
            }
        )
    return Response(status_code=204, headers=headers)


def require_session(
    found: tuple[dict[str, Any], dict[str, Any], str] | None,
) -> tuple[dict[str, Any], dict[str, Any], str]:
    if found is None:
        raise AuthFailure("UNAUTHORIZED", "Unauthorized")
    return found
