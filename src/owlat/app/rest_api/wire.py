"""What every REST v1 endpoint shares (reference §1.4, §3.1–3.2).

    @endpoint("contacts:read")
    async def get_contact(ctx, request, caller) -> Response: ...

`endpoint` authenticates the API key (401/429 from `lib/api_key_auth.py`), checks the scope
before anything reads the body (403), turns an `ApiError` (or a `ConvexError` from the shared
contact code) into the error envelope `{"error": {"category", "message"}}`, any other
exception into 500 `Internal server error`, and adds the rate and CORS headers.
`keyed_endpoint` answers the same, for a handler that checks the key in the mutation of its
own work (one transaction instead of two).
"""

from __future__ import annotations

import datetime
import json
import logging
import math
import re
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import unquote_to_bytes, urlsplit

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from owlat.app.lib.api_key_auth import (
    ApiKeyCaller,
    api_error,
    authenticate_api_key,
    caller_of,
    presented_key_hash,
)
from owlat.app.lib.emails import normalize_email
from owlat.app.lib.errors import AppError, AppErrorKind
from owlat.app.lib.instance import current
from owlat.runtime import (
    ActionCtx,
    ConvexError,
    HttpAction,
    JSONResponse,
    http_action,
    internal,
)

logger = logging.getLogger(__name__)

ID_FORMAT = re.compile(r"^[A-Za-z0-9_-]{10,}$")
CATEGORIES = {
    400: "invalid_input",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    409: "already_exists",
    422: "invalid_state",
    429: "rate_limited",
    500: "internal",
}
ALLOWED_METHODS = "GET, POST, PUT, DELETE, OPTIONS"
ALLOWED_HEADERS = "Content-Type, Authorization"
MAX_BODY = 1_000_000  # bytes

Handler = Callable[[ActionCtx, Request, ApiKeyCaller], Awaitable[Response]]
KeyedHandler = Callable[[ActionCtx, Request, "KeyCheck"], Awaitable[Response]]


class ApiError(Exception):
    """A refusal answered as `{"error": {"category", "message", "data"?}}` with `status`:
    the category of the status unless given; `reason` goes into `data.reason`."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        reason: str | None = None,
        category: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.reason = reason
        self.category = category or CATEGORIES[status]

    def response(self) -> JSONResponse:
        if self.reason is None:
            return api_error(self.category, self.message, self.status)
        body = {"category": self.category, "message": self.message, "data": {"reason": self.reason}}
        return JSONResponse({"error": body}, status_code=self.status)


def data(body: Any, status: int = 200) -> JSONResponse:
    return JSONResponse({"data": body}, status_code=status)


def iso(ms: float) -> str:
    """Epoch milliseconds as ISO 8601 with milliseconds and `Z`."""
    moment = datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


# -- CORS ------------------------------------------------------------------------------------


def cors_headers(request: Request) -> dict[str, str]:
    """The private API's CORS headers: the request's Origin when trusted, else the site's."""
    settings = current()
    origin = request.headers.get("origin")
    if origin not in settings.origins():
        parts = urlsplit(settings.base_url)
        origin = f"{parts.scheme}://{parts.netloc}"
    return {
        "Access-Control-Allow-Origin": origin,
        "Access-Control-Allow-Methods": ALLOWED_METHODS,
        "Access-Control-Allow-Headers": ALLOWED_HEADERS,
        "Access-Control-Allow-Credentials": "true",
        "Vary": "Origin",
    }


def with_cors(request: Request, response: Response) -> Response:
    response.headers.update(cors_headers(request))
    return response


@http_action
async def preflight(ctx: ActionCtx, request: Request) -> Response:
    """OPTIONS on any v1 path: 204 with the CORS headers (no authentication)."""
    return Response(
        status_code=204, headers={**cors_headers(request), "Access-Control-Max-Age": "86400"}
    )


# -- endpoints -------------------------------------------------------------------------------


def _failure(error: Exception) -> Response:
    if isinstance(error, ClientDisconnect):
        raise error  # the runtime's concern: nobody is left to answer
    if isinstance(error, ApiError):
        return error.response()
    if isinstance(error, AppError) and error.kind is AppErrorKind.NOT_FOUND:
        return api_error("not_found", error.message, 404)
    if isinstance(error, ConvexError) and isinstance(error.data, str):
        return api_error("invalid_input", error.data, 400)
    logger.error("REST API handler failed", exc_info=error)
    return api_error("internal", "Internal server error", 500)


def endpoint(scope: str) -> Callable[[Handler], HttpAction]:
    """An authenticated v1 endpoint needing `scope` (see the module docstring)."""

    def wrap(handler: Handler) -> HttpAction:
        async def run(ctx: ActionCtx, request: Request) -> Response:
            try:
                caller = await authenticate_api_key(ctx, request)
            except Exception as error:
                return with_cors(request, _failure(error))
            if isinstance(caller, Response):
                return with_cors(request, caller)
            refusal = caller.require_scope(scope)
            if refusal is not None:
                return with_cors(request, refusal)
            try:
                response = await handler(ctx, request, caller)
            except Exception as error:
                response = _failure(error)
            return with_cors(request, caller.respond(response))

        run.__qualname__ = handler.__qualname__
        run.__module__ = handler.__module__
        return http_action(run)

    return wrap


class Refused(Exception):
    """A key refused (401, 429) or without the scope (403): answered with `response`."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


class KeyCheck:
    """The request's well-formed API key, for a `keyed_endpoint` to check in its own
    mutation (`api_keys.check_key`, which takes a token from the key's bucket) and hand
    the result to `accepted`; or alone, first, with `caller`."""

    def __init__(self, key_hash: str, scope: str) -> None:
        self.key_hash = key_hash
        self.scope = scope
        self.found: ApiKeyCaller | None = None  # once a committed check accepted the key

    async def caller(self, ctx: ActionCtx) -> ApiKeyCaller:
        """The key checked in a mutation of its own, as `endpoint` does."""
        result = await ctx.run_mutation(internal.api_keys.authenticate, {"keyHash": self.key_hash})
        return self.accepted(result)

    def accepted(self, result: dict[str, Any]) -> ApiKeyCaller:
        """The caller of a committed check's result when it has the scope; else raises
        `Refused` with its answer."""
        caller = caller_of(result)
        if isinstance(caller, Response):
            raise Refused(caller)
        refusal = caller.require_scope(self.scope)
        if refusal is not None:
            raise Refused(refusal)
        self.found = caller
        return caller


def keyed_endpoint(scope: str) -> Callable[[KeyedHandler], HttpAction]:
    """`endpoint`, for a handler that checks the key itself (`KeyCheck`) in the mutation
    that does its work. Answers as `endpoint` would, in the same order: when the handler
    fails before a committed check accepted the key (a malformed body, or its mutation
    failed and rolled the check back), the key is checked alone first and its refusal wins,
    and a token is taken from its bucket exactly once either way."""

    def wrap(handler: KeyedHandler) -> HttpAction:
        async def run(ctx: ActionCtx, request: Request) -> Response:
            key_hash = presented_key_hash(request)
            if isinstance(key_hash, Response):
                return with_cors(request, key_hash)
            check = KeyCheck(key_hash, scope)
            try:
                try:
                    response = await handler(ctx, request, check)
                except Exception as error:
                    if isinstance(error, Refused) or check.found is not None:
                        raise
                    await check.caller(ctx)
                    raise
            except Refused as refused:
                return with_cors(request, refused.response)
            except Exception as error:
                response = _failure(error)
                if check.found is None:  # the key's own check failed
                    return with_cors(request, response)
            if check.found is None:
                raise RuntimeError(f"{handler.__qualname__} answered without checking its key")
            return with_cors(request, check.found.respond(response))

        run.__qualname__ = handler.__qualname__
        run.__module__ = handler.__module__
        return http_action(run)

    return wrap


def unauthenticated(handler: Callable[[ActionCtx, Request], Awaitable[Response]]) -> HttpAction:
    """A v1 endpoint without an API key (health, the OpenAPI document, fallbacks)."""

    async def run(ctx: ActionCtx, request: Request) -> Response:
        try:
            response = await handler(ctx, request)
        except Exception as error:
            response = _failure(error)
        return with_cors(request, response)

    run.__qualname__ = handler.__qualname__
    run.__module__ = handler.__module__
    return http_action(run)


# -- request parts ---------------------------------------------------------------------------


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _plain(raw: bytes) -> bool:
    """Whether a body that parsed holds no lone surrogate and can be written back without
    nesting too deep, seen from its bytes: ASCII without NULs (not UTF-16/32, which
    `json.loads` detects by them; UTF-8 is decoded with surrogatepass), without `\\u`
    escapes, fewer than 256 `{` and `[` in all."""
    return (
        raw.isascii()
        and b"\x00" not in raw
        and b"\\u" not in raw
        and raw.count(b"{") + raw.count(b"[") < 256
    )


async def json_object(request: Request, max_bytes: int = MAX_BODY) -> dict[str, Any]:
    """The body as a JSON object, or 400 `Invalid JSON in request body`; a body over
    `max_bytes` is refused as it streams."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise ApiError(400, f"Request body must be at most {max_bytes} bytes")
        chunks.append(chunk)
    raw = b"".join(chunks)
    try:
        body = json.loads(raw, parse_constant=_reject_constant)
        if not _plain(raw):
            # lone surrogates ("\\ud800") are JSON but not text a document can hold
            json.dumps(body, ensure_ascii=False).encode()
    except (ValueError, RecursionError):
        raise ApiError(400, "Invalid JSON in request body") from None
    if not isinstance(body, dict):
        raise ApiError(400, "Request body must be a JSON object")
    return body


_PERCENT = re.compile(r"^(?:[^%]|%[0-9A-Fa-f]{2})*$")


def path_segments(request: Request, prefix: str) -> list[str | None]:
    """The raw path after `prefix` split at `/`, each segment percent-decoded as UTF-8
    (None for a segment whose encoding is malformed)."""
    raw_path = request.scope.get("raw_path")
    raw = raw_path.decode("latin-1") if raw_path else request.url.path
    raw = raw[raw.find(prefix) + len(prefix) :] if prefix in raw else ""
    segments: list[str | None] = []
    for segment in raw.split("/"):
        try:
            if not _PERCENT.match(segment):
                raise ValueError(segment)
            segments.append(unquote_to_bytes(segment).decode("utf-8"))
        except ValueError:  # UnicodeDecodeError included
            segments.append(None)
    return segments


def email_or_id(value: str, message: str) -> dict[str, str]:
    """`{"email": normalized}` when `value` is an address, `{"id": value}` when it looks like
    an id, else 400 `message`."""
    try:
        return {"email": normalize_email(value)}
    except AppError:
        pass
    if ID_FORMAT.match(value):
        return {"id": value}
    raise ApiError(400, message)


def checked_email(body: dict[str, Any], name: str, label: str) -> str:
    """`body[name]` as a normalized address: `<label> is required`, `<label> must be a
    string`, `Invalid email format`."""
    value = body.get(name)
    if value is None:
        raise ApiError(400, f"{label} is required")
    if not isinstance(value, str):
        raise ApiError(400, f"{label} must be a string")
    try:
        return normalize_email(value)
    except AppError:
        raise ApiError(400, "Invalid email format") from None


MAX_JSON_DEPTH = 16
MAX_JSON_ITEMS = 1000
FIELD_NAME = re.compile(r"^[ -#%-~][ -~]{0,99}$")  # printable ASCII, not starting with $


def json_value(value: Any, label: str, depth: int = 0) -> Any:
    """A JSON value a document can hold (objects and lists of primitives, nested at most
    `MAX_JSON_DEPTH` deep, at most `MAX_JSON_ITEMS` entries each), or 400 naming `label`."""
    if isinstance(value, dict | list) and depth >= MAX_JSON_DEPTH:
        raise ApiError(400, f"{label} nests deeper than {MAX_JSON_DEPTH} levels")
    if isinstance(value, dict | list) and len(value) > MAX_JSON_ITEMS:
        raise ApiError(400, f"{label} has more than {MAX_JSON_ITEMS} entries")
    if isinstance(value, list):
        return [json_value(item, f"{label}[{i}]", depth + 1) for i, item in enumerate(value)]
    if isinstance(value, dict):
        cleaned = {}
        for key, item in value.items():
            if not FIELD_NAME.match(key):
                raise ApiError(
                    400,
                    f"{label} keys must be 1 to 100 printable ASCII characters and not "
                    "start with $",
                )
            cleaned[key] = json_value(item, f"{label}.{key}", depth + 1)
        return cleaned
    return primitive(value, label)


def primitive(value: Any, label: str) -> str | float | bool | None:
    """A flat JSON primitive a document can hold, or 400 naming `label`."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int | float):
        try:
            number = float(value)
        except OverflowError:
            number = math.inf
        if not math.isfinite(number) or (isinstance(value, int) and number != value):
            raise ApiError(400, f"{label} must be a number a 64-bit float holds exactly")
        return number
    raise ApiError(400, f"{label} must be a string, number, boolean or null")
