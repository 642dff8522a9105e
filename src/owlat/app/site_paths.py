"""The site port's busiest requests, answered before its Starlette stack.

Each request to the site port otherwise passes the port router, Starlette's error and
exception middleware, its router (the health and metrics routes, then the catch-all route
of the HTTP actions) and the request-id middleware before its handler runs. `SitePaths`
takes two kinds of request straight to a plain ASGI app, wrapped in the same request ids
by the server (`owlat.cli._shared.lean_paths`):

    GET/HEAD /t/o/..., /t/c/...     open pixels and click redirects (`tracking_paths.py`)
    POST /api/v1/transactional      the HTTP action of the route table (`rest_api/`),
                                    answered by the server's HTTP actions as the
                                    catch-all route answers it (`intake`)

Everything else, the lifespan and the client port included, goes to `app`.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from owlat.app import tracking
from owlat.app.rest_api.routes import V1

INTAKE_PATH = V1 + "/transactional"


class SitePaths:
    """Site-port (`site_port`) requests of the module docstring's table go to `tracking`
    or `intake`; every other request to `app`."""

    def __init__(self, app: ASGIApp, tracking_app: ASGIApp, intake: ASGIApp, site_port: int):
        self.app = app
        self.tracking = tracking_app
        self.intake = intake
        self.site_port = site_port

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            server = scope.get("server")
            if server is not None and server[1] == self.site_port:
                path: str = scope["path"]
                method: str = scope["method"]
                if path == INTAKE_PATH and method == "POST":
                    await self.intake(scope, receive, send)
                    return
                if (
                    path.startswith(tracking.OPEN_PREFIX) or path.startswith(tracking.CLICK_PREFIX)
                ) and method in ("GET", "HEAD"):
                    await self.tracking(scope, receive, send)
                    return
        await self.app(scope, receive, send)
