"""The ASGI apps of a deployment: the client API and the site (HTTP actions).

    app = create_app(application, authenticator)             # client port only
    uvicorn.run(app, ws="websockets-sansio", ws_per_message_deflate=False)

The client app serves the HTTP function API, the sync WebSocket, file upload/download
(`/api/storage/...`) and the HTTP actions under `/http/...`. Its lifespan starts the
`Application` (opens the engine, syncs the schema) and closes it on shutdown, so a server
owns the application it serves.

**Both ports in one process**: `owlat dev`/`serve` run *one* uvicorn server listening on two
sockets, the client port (3210) and the site port (3211), with one ASGI app,
`create_server_app`, that sends requests arriving on the site port to `create_site_app` (the
HTTP actions at the root) and everything else, the lifespan included, to the client app.
One server means one event loop, one Application, one signal handler and one graceful
shutdown that drains both ports before the Application closes.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from owlat.runtime.application import Application
from owlat.runtime.auth import Authenticator
from owlat.runtime.server.data_browser import DataBrowser
from owlat.runtime.server.http_actions import HttpActions
from owlat.runtime.server.http_api import HttpApi
from owlat.runtime.server.middleware import ClientApiMiddleware, RequestIds
from owlat.runtime.server.operations import Operations
from owlat.runtime.server.outcome import json_response
from owlat.runtime.server.storage_api import StorageApi
from owlat.runtime.server.web_app import WebApp
from owlat.runtime.server.websocket import service_routes
from owlat.runtime.sync.worker import SyncService

_CODE_OF_STATUS = {404: "NotFound", 405: "MethodNotAllowed"}


def create_app(
    application: Application,
    authenticator: Authenticator,
    *,
    cors: bool = True,
    instance_name: str = "owlat",
    operations: Operations | None = None,
) -> Starlette:
    """The Starlette app serving `application` to clients (HTTP API, sync WebSocket, file
    storage when the application has one, HTTP actions under `/http/`, the data browser
    under `/_admin/` (data_browser.py), and the health and metrics endpoints of
    `operations`, by default with the admin key only).

    `cors=False` leaves out the CORS headers (for a deployment behind a proxy that sets
    its own); `instance_name` is what `/instance_name` answers.
    """
    operations = operations or Operations(application, authenticator)
    operations.sync = SyncService(application, authenticator)
    api = HttpApi(application, authenticator, instance_name=instance_name)
    storage = [] if application.storage is None else StorageApi(application).routes()
    actions = HttpActions(application, authenticator).client_routes()
    return Starlette(
        routes=[  # the router tries them in order: the function API, the busiest, first
            *api.routes(),
            *operations.routes(),
            *DataBrowser(application, authenticator).routes(),
            *storage,
            *actions,
            *service_routes(operations.sync),
        ],
        middleware=[Middleware(ClientApiMiddleware, cors=cors)],  # request ids included
        exception_handlers={HTTPException: _http_exception},
        lifespan=_lifespan(application),
    )


def _lifespan(
    application: Application,
) -> Callable[[Starlette], AbstractAsyncContextManager[None]]:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await application.start()
        try:
            yield
        finally:
            await application.close()

    return lifespan


async def _http_exception(request: Request, exc: Exception) -> Response:
    """Unknown paths and wrong methods, answered `{code, message}` like other refusals."""
    assert isinstance(exc, HTTPException)
    code = _CODE_OF_STATUS.get(exc.status_code, "BadRequest")
    response = json_response({"code": code, "message": exc.detail}, exc.status_code)
    response.headers.update(exc.headers or {})
    return response


def create_site_app(
    application: Application,
    authenticator: Authenticator,
    web: WebApp | None = None,
    operations: Operations | None = None,
) -> Starlette:
    """The HTTP actions at the root, for the site port, and the web app `web` beside them
    (web_app.py: routed paths win), after the health and metrics endpoints. It has no
    lifespan: it serves next to the client app (`create_server_app`), whose lifespan owns
    the Application."""
    operations = operations or Operations(application, authenticator)
    return Starlette(
        routes=[
            *operations.routes(),
            *HttpActions(application, authenticator).site_routes(web),
        ],
        middleware=[Middleware(RequestIds)],
    )


def create_server_app(
    application: Application,
    authenticator: Authenticator,
    *,
    site_port: int,
    cors: bool = True,
    instance_name: str = "owlat",
    web: WebApp | None = None,
    operations: Operations | None = None,
) -> ASGIApp:
    """One ASGI app for a server listening on the client port and on `site_port` (with the
    web app `web` at the root of the site port, if given), both with the health and
    metrics endpoints of `operations`."""
    operations = operations or Operations(application, authenticator)
    client = create_app(
        application, authenticator, cors=cors, instance_name=instance_name, operations=operations
    )
    site = create_site_app(application, authenticator, web, operations)
    return PortRouter(client, site, site_port)


class PortRouter:
    """Requests that arrived on `site_port` go to `site`; everything else, the lifespan
    included, goes to `client`."""

    def __init__(self, client: ASGIApp, site: ASGIApp, site_port: int) -> None:
        self.client = client
        self.site = site
        self.site_port = site_port

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        server = scope.get("server")
        on_site = scope["type"] != "lifespan" and server is not None and server[1] == self.site_port
        await (self.site if on_site else self.client)(scope, receive, send)


def listen_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to `host:port` (0: a free port), to hand to uvicorn's `serve`."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock
