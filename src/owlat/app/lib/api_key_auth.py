"""API-key authentication for REST HTTP actions (reference §3.1–3.2).

    caller = await authenticate_api_key(ctx, request)
    if isinstance(caller, Response):
        return caller                      # 401 / 429, with the exact bodies
    refusal = caller.require_scope("contacts:read")
    if refusal: return refusal             # 403
    ... return caller.respond(JSONResponse(...))   # adds the X-RateLimit-* headers

Errors are `{"error": {"category", "message"}}`. Every authenticated answer (403 and 429
included) carries `X-RateLimit-Limit: 10`, `X-RateLimit-Remaining` (9, or 0 on 429) and
`X-RateLimit-Reset` (unix seconds); 401s carry none.
"""

from __future__ import annotations

import dataclasses
import math
import re
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from owlat.app.lib.tokens import token_hash
from owlat.runtime import ActionCtx, JSONResponse, internal

KEY_FORMAT = re.compile(r"^lm_live_[a-zA-Z0-9]+$")
MISSING = "Missing or invalid Authorization header. Use: Authorization: Bearer <api_key>"
LIMIT = 10


def api_error(
    category: str, message: str, status: int, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        {"error": {"category": category, "message": message}}, status_code=status, headers=headers
    )


def rate_headers(remaining: int) -> dict[str, str]:
    reset = math.ceil((time.time() * 1000 + 1000) / 1000)
    return {
        "X-RateLimit-Limit": str(LIMIT),
        "X-RateLimit-Remaining": str(remaining),
        "X-RateLimit-Reset": str(reset),
    }


@dataclasses.dataclass(frozen=True)
class ApiKeyCaller:
    organization_id: str
    key_id: str
    scopes: tuple[str, ...]

    def require_scope(self, scope: str) -> Response | None:
        if scope in self.scopes:
            return None
        return api_error(
            "forbidden",
            f"This API key is missing the required scope: {scope}",
            403,
            rate_headers(LIMIT - 1),
        )

    def respond(self, response: Response) -> Response:
        response.headers.update(rate_headers(LIMIT - 1))
        return response


def bearer_key(header: str | None) -> str | None:
    """The key of `Bearer <key>` or of a bare single token; None for any other shape."""
    if not header:
        return None
    parts = header.strip().split()
    if len(parts) == 2 and parts[0].lower() == "bearer":
        return parts[1]
    if len(parts) == 1:
        return parts[0]
    return None


async def authenticate_api_key(ctx: ActionCtx, request: Request) -> ApiKeyCaller | Response:
    key_hash = presented_key_hash(request)
    if isinstance(key_hash, Response):
        return key_hash
    result = await ctx.run_mutation(internal.api_keys.authenticate, {"keyHash": key_hash})
    return caller_of(result)


def presented_key_hash(request: Request) -> str | Response:
    """The hash of the request's well-formed key, or its 401 (no token is taken)."""
    key = bearer_key(request.headers.get("authorization"))
    if key is None:
        return api_error("unauthenticated", MISSING, 401)
    if len(key) < 40 or not KEY_FORMAT.match(key):
        return api_error("unauthenticated", "Invalid API key format", 401)
    return token_hash(key)


def caller_of(result: dict[str, Any]) -> ApiKeyCaller | Response:
    """The caller a key check (`api_keys.check_key`) found, or its 401 / 429."""
    if result["status"] == "invalid":
        return api_error("unauthenticated", "Invalid API key", 401)
    if result["status"] == "rate_limited":
        return api_error(
            "rate_limited",
            "Rate limit exceeded. Maximum 10 requests per second.",
            429,
            {**rate_headers(0), "Retry-After": str(int(result["retryAfter"]))},
        )
    return ApiKeyCaller(result["organizationId"], result["keyId"], tuple(result["scopes"]))
