"""HTTP actions over ASGI: the app's `HttpRouter` (http_router.py) answering requests.

The same endpoint serves the site port (the path is the request's path) and `/http/...` on
the client port (the path is what follows `/http`).

* **Who calls.** An `Authorization: Bearer <JWT>` that the deployment trusts becomes
  `ctx.auth`'s identity. Any other header (an API key, a webhook signature) leaves the
  handler anonymous rather than refusing the request: the handler reads it itself.
* **Answers.** The handler's Starlette `Response`; for HEAD, the GET route's response
  without its body. No route: the site's web app, if it has one and serves the path
  (web_app.py), else 404 `No HttpAction routed for <path>`. A handler that raises,
  or returns something other than a `Response`: 500 with
  `[Request ID: <id>] Server Error` and what went wrong, logged with the traceback. A
  client that went away while the handler read its body (`ClientDisconnect`, also when the
  server cut it off for sending too slowly) is nobody's error: nothing is logged.
* **No CORS headers are added**: HTTP actions answer preflights with their own OPTIONS
  routes, as on Convex.
"""

from __future__ import annotations

import logging
import re

from starlette.requests import ClientDisconnect, Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from owlat.runtime.application import Application
from owlat.runtime.auth import Auth, Authenticator, UserIdentity
from owlat.runtime.context import ActionCtx
from owlat.runtime.error_text import describe_error
from owlat.runtime.errors import AuthenticationError, DeveloperError
from owlat.runtime.http_router import ROUTABLE_METHODS, HttpRouter
from owlat.runtime.server.outcome import new_request_id
from owlat.runtime.server.web_app import WebApp

logger = logging.getLogger("owlat.server")

CLIENT_PORT_PREFIX = "/http"


class HttpActions:
    """The HTTP actions of one application."""

    def __init__(self, application: Application, authenticator: Authenticator) -> None:
        router = application.package.http
        if router is not None and not isinstance(router, HttpRouter):
            raise DeveloperError(
                f"`http` in {application.package.name}/http.py must be an HttpRouter, "
                f"got {type(router).__name__}"
            )
        self.router = router
        self.application = application
        self.authenticator = authenticator

    def site_routes(self, web: WebApp | None = None) -> list[BaseRoute]:
        """Every path of the site port; `web` answers GETs no HTTP action is routed for."""
        return [self._every_path("", web)]

    def client_routes(self) -> list[BaseRoute]:
        """`/http/...` on the client port."""
        return [self._every_path(CLIENT_PORT_PREFIX, None)]

    def site_endpoint(self) -> ASGIApp:
        """A plain ASGI app answering a site-port request as `site_routes` does (without
        the web app), minus Starlette's routing and middleware: for a server that sends
        its busiest paths there first (owlat.app's lean paths, `owlat.cli._shared`)."""

        async def endpoint(scope: Scope, receive: Receive, send: Send) -> None:
            response = await self.answer(Request(scope, receive), scope["path"])
            await response(scope, receive, send)

        return endpoint

    async def answer(self, request: Request, path: str, web: WebApp | None = None) -> Response:
        """`handle`'s response; for HEAD, without its body."""
        response = await self.handle(request, path, web)
        if request.method == "HEAD":
            return _WithoutBody(response)
        return response

    def _every_path(self, prefix: str, web: WebApp | None) -> Route:
        async def endpoint(request: Request) -> Response:
            return await self.answer(request, "/" + request.path_params["path"], web)

        route = Route(prefix + "/{path:path}", endpoint, methods=list(ROUTABLE_METHODS))
        # Starlette's `path` convertor is `.*`: without DOTALL a decoded %0A in the path
        # would miss the route and get Starlette's own 404 instead of the router's answer.
        route.path_regex = re.compile(route.path_regex.pattern, re.DOTALL)
        return route

    async def handle(self, request: Request, path: str, web: WebApp | None = None) -> Response:
        match = None if self.router is None else self.router.lookup(path, request.method)
        if match is None:
            page = None if web is None else web.response(request, path)
            if page is not None:
                return page
            return PlainTextResponse(f"No HttpAction routed for {path}", status_code=404)
        ctx = ActionCtx(self.application, Auth(await self._identity(request)))
        try:
            response = await match.action(ctx, request)
            if not isinstance(response, Response):
                raise DeveloperError(
                    f"The HTTP action for {match.method} {match.route} returned "
                    f"{type(response).__name__}; it must return a Starlette Response "
                    "(e.g. JSONResponse, PlainTextResponse)"
                )
        except ClientDisconnect:
            return Response(status_code=400)  # nobody is left to read it
        except Exception as error:
            request_id = new_request_id()
            logger.error(
                "[Request ID: %s] HTTP action %s %s failed",
                request_id,
                request.method,
                path,
                exc_info=error,
            )
            text = f"[Request ID: {request_id}] Server Error\n{describe_error(error)}"
            return PlainTextResponse(text, status_code=500)
        return response

    async def _identity(self, request: Request) -> UserIdentity | None:
        try:
            caller = await self.authenticator.authenticate_header(
                request.headers.get("authorization")
            )
        except AuthenticationError:
            return None
        return caller.identity


class _WithoutBody(Response):
    """Another response's status and headers, with its body left out (HEAD)."""

    def __init__(self, response: Response) -> None:
        self._response = response

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def headers_only(message: Message) -> None:
            if message["type"] == "http.response.start":
                await send(message)
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                await send({"type": "http.response.body", "body": b"", "more_body": False})

        await self._response(scope, receive, headers_only)
