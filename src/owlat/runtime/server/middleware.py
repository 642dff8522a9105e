"""ASGI middleware of the client API: permissive CORS (except for the HTTP actions under
`/http/`, which answer CORS themselves as on the site port), and tolerance of `//` in paths."""

from __future__ import annotations

import re
from typing import Final

from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

_SLASHES: Final = re.compile(r"//+")

CORS_METHODS: Final = ("GET", "POST", "OPTIONS", "PATCH", "DELETE", "PUT")


def cors_middleware() -> Middleware:
    """CORS as Convex serves it: any origin and any request headers are mirrored back,
    credentials are allowed, and preflights are cached for a day."""
    return Middleware(
        _ClientApiCorsMiddleware,
        allow_origins=["*"],
        allow_credentials=True,  # with "*", this makes Starlette mirror the Origin
        allow_methods=CORS_METHODS,
        allow_headers=["*"],
        allow_private_network=True,
        max_age=86400,
    )


class _ClientApiCorsMiddleware(CORSMiddleware):
    """CORS for everything but `/http/...`: HTTP actions route their own OPTIONS."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/http/"):
            await self.app(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


class CollapseSlashesMiddleware:
    """Route `//api/query` as `/api/query`: the npm client appends `/api/...` to the
    deployment URL as given, so a URL ending in `/` yields doubled slashes."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket") and "//" in scope["path"]:
            scope = {**scope, "path": _SLASHES.sub("/", scope["path"])}
        await self.app(scope, receive, send)
