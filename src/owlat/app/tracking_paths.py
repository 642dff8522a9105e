"""The open pixel and click redirects answered before the site's HTTP-action stack.

Every mail's pixel and links come back here, so these two paths carry most of the site
port's requests; through the HTTP actions each one also went through Starlette's routing,
its error and exception middleware, a `Request` and a `Response` (in process, 35 µs of
CPU for a pixel that records nothing; 4 µs here). `site_paths.SitePaths` sends a
site-port `GET`/`HEAD` under `/t/o/` or `/t/c/` to `TrackingEndpoint`, a plain ASGI app.

The endpoint answers exactly what the HTTP actions answer (`tracking.open_answer`,
`click_answer`: the same per-address limit on the client address that uvicorn already
took from a trusted proxy's `X-Forwarded-For`, the same HMAC check, the same precomputed
answers), after the event's commit (`tracking.answered`); a `HEAD` gets the headers alone.
A failure to record is logged and answered 500 `Server Error` (the log line and the
answer's `X-Request-Id` name the request, as with an HTTP action's failure). The server
wraps the endpoint in the site's request ids (`owlat.cli._shared.lean_paths`), so its
answers carry `X-Request-Id` like every other.
"""

from __future__ import annotations

import logging

from starlette.types import Receive, Scope, Send

from owlat.app import tracking
from owlat.runtime import ActionCtx

logger = logging.getLogger("owlat.app.tracking")

_FAILED = tracking.make_answer(500, b"Server Error")


class TrackingEndpoint:
    """ASGI: `GET`/`HEAD` `/t/o/...` and `/t/c/...` (module docstring); `ctx` (anonymous)
    runs the recording."""

    def __init__(self, ctx: ActionCtx) -> None:
        self.ctx = ctx

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        client = scope.get("client")
        address = client[0] if client else "unknown"  # as `client_ip`
        if path.startswith(tracking.OPEN_PREFIX):
            user_agent = ""
            for name, value in scope["headers"]:
                if name == b"user-agent":
                    user_agent = value.decode("latin-1")
                    break
            answer = tracking.open_answer(path, user_agent, address)
        else:
            answer = tracking.click_answer(path, address)
        try:
            answer = await tracking.answered(self.ctx, answer)
        except Exception:
            logger.exception("recording the tracking event of %s %s failed", scope["method"], path)
            answer = _FAILED
        await send({"type": "http.response.start", "status": answer.status,
                    "headers": answer.headers})  # fmt: skip
        body = answer.body if scope["method"] == "GET" else b""
        await send({"type": "http.response.body", "body": body})
