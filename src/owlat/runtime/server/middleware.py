"""The ASGI middleware of the client API, one layer: tolerance of `//` in paths, and
permissive CORS (except for the HTTP actions under `/http/`, which answer CORS themselves as
on the site port). And `RequestIds`, on both ports: each request's id.

Every request passes here, so the common case is cheap: a path without `//` is left as is,
and a request without an `Origin` header skips Starlette's CORS machinery; its response only
gets the `Vary: Origin` that CORS would have added.
"""

from __future__ import annotations

import re
from typing import Final

from starlette.datastructures import MutableHeaders
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from owlat.runtime import logs

_SLASHES: Final = re.compile(r"//+")
_REQUEST_ID: Final = re.compile(rb"[A-Za-z0-9._-]{1,64}")

CORS_METHODS: Final = ("GET", "POST", "OPTIONS", "PATCH", "DELETE", "PUT")


class ClientApiMiddleware:
    """Route `//api/query` as `/api/query` (the npm client appends `/api/...` to the
    deployment URL as given, so a URL ending in `/` yields doubled slashes), then, with
    `cors`, answer CORS as Convex does: any origin and any request headers are mirrored back,
    credentials are allowed, and preflights are cached for a day. Each request gets its id
    as with `RequestIds` (one layer and one wrapped `send` for all three)."""

    def __init__(self, app: ASGIApp, *, cors: bool = True) -> None:
        self.app = app
        self._cors: ASGIApp | None = None
        if cors:
            self._cors = CORSMiddleware(
                app,
                allow_origins=["*"],
                allow_credentials=True,  # with "*", this makes Starlette mirror the Origin
                allow_methods=CORS_METHODS,
                allow_headers=["*"],
                allow_private_network=True,
                max_age=86400,
            )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind != "http" and kind != "websocket":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if "//" in path:
            path = _SLASHES.sub("/", path)
            scope = {**scope, "path": path}
        request_id = _request_id_of(scope)
        token = logs.current_request_id.set(request_id)
        try:
            if kind != "http":
                await self.app(scope, receive, send)
            elif self._cors is None or path.startswith("/http/"):
                await self.app(scope, receive, _with_headers(send, request_id, vary_origin=False))
            elif any(name == b"origin" for name, _ in scope["headers"]):
                await self._cors(scope, receive, _with_headers(send, request_id, vary_origin=False))
            else:
                await self.app(scope, receive, _with_headers(send, request_id, vary_origin=True))
        finally:
            logs.current_request_id.reset(token)


class RequestIds:
    """Each HTTP request (and sync socket) gets an id: the `X-Request-Id` a proxy sent
    (letters, digits, `._-`, up to 64), else a new one. Every log record and error message
    made while it is served names it (logs.py); HTTP responses carry it back."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind != "http" and kind != "websocket":
            await self.app(scope, receive, send)
            return
        request_id = _request_id_of(scope)
        token = logs.current_request_id.set(request_id)
        try:
            if kind == "http":
                send = _with_headers(send, request_id, vary_origin=False)
            await self.app(scope, receive, send)
        finally:
            logs.current_request_id.reset(token)


def _request_id_of(scope: Scope) -> str:
    """The request's `X-Request-Id` when it is a valid one, else a new id."""
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            return value.decode() if _REQUEST_ID.fullmatch(value) else logs.new_request_id()
    return logs.new_request_id()


def _with_headers(send: Send, request_id: str, *, vary_origin: bool) -> Send:
    """`send` adding `X-Request-Id` to the response and, with `vary_origin`, `Origin` to
    its `Vary`, as CORS does for a request without an `Origin` header (so that caches keep
    CORS and non-CORS answers apart)."""
    header = (b"x-request-id", request_id.encode())

    async def send_with_headers(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = message.get("headers", [])
            if vary_origin and any(name == b"vary" for name, _ in headers):
                mutable = MutableHeaders(scope=message)
                mutable["Vary"] = ", ".join([*mutable.getlist("Vary"), "Origin"])
                headers = message["headers"]
            elif vary_origin:
                headers = [*headers, (b"vary", b"Origin")]
            message["headers"] = [*headers, header]
        await send(message)

    return send_with_headers
