"""HTTP actions: `HttpRouter` and `http_action`, as Convex's `httpRouter()` / `httpAction`.

An app's `http.py` exposes `http = HttpRouter()` and adds routes:

    @http_action
    async def webhook(ctx: ActionCtx, request: Request) -> Response:
        body = await request.json()
        await ctx.run_mutation(internal.events.record, {"body": body})
        return JSONResponse({"ok": True})

    http.route(path="/api/v1/webhook", method="POST", handler=webhook)
    http.route(path_prefix="/files/", method="GET", handler=serve_file)

Requests and responses are **Starlette's** `Request` and `Response` types (any subclass:
`PlainTextResponse`, `StreamingResponse`, ...); answer JSON with `owlat.runtime.JSONResponse`
(responses.py), which writes numbers as JavaScript's `JSON.stringify` does (`120`, not
`120.0`). `ctx` is an action's ctx (`run_query`, `run_mutation`, `run_action`, `auth`,
`storage`, `scheduler`).

Routing rules:
* Methods are GET, POST, PUT, DELETE, OPTIONS and PATCH; a HEAD request runs the GET route
  and its response is sent without a body.
* A route has either an exact `path` (starting with `/`) or a `path_prefix` (starting and
  ending with `/`). Lookup tries the exact path first, then the longest matching prefix.
* Defining the same (path or prefix, method) twice is an error at definition time.
* The server (server/http_actions.py) answers an unrouted request 404
  `No HttpAction routed for <path>`, and a handler's exception 500.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Final

from owlat.runtime.errors import DeveloperError

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response

    from owlat.runtime.context import ActionCtx

ROUTABLE_METHODS: Final = ("GET", "POST", "PUT", "DELETE", "OPTIONS", "PATCH")

HttpHandler = Callable[["ActionCtx", "Request"], Awaitable["Response"]]


class HttpAction:
    """A handler wrapped by `http_action`: `async def handler(ctx, request) -> Response`."""

    __slots__ = ("handler",)

    def __init__(self, handler: HttpHandler) -> None:
        if not inspect.iscoroutinefunction(handler):
            raise DeveloperError(
                f"http_action() takes an async function (ctx, request) -> Response, got {handler!r}"
            )
        self.handler = handler

    async def __call__(self, ctx: ActionCtx, request: Request) -> Response:
        return await self.handler(ctx, request)

    def __repr__(self) -> str:
        return f"http_action({getattr(self.handler, '__qualname__', self.handler)!r})"


def http_action(handler: HttpHandler) -> HttpAction:
    """Make `async def handler(ctx, request) -> Response` routable (also a decorator)."""
    return HttpAction(handler)


@dataclasses.dataclass(frozen=True, slots=True)
class RouteMatch:
    """The route a request resolved to: its action, method, and `path` or `prefix*`."""

    action: HttpAction
    method: str
    route: str


class HttpRouter:
    """The HTTP routes of an app (see the module docstring for the rules)."""

    def __init__(self) -> None:
        self._exact: dict[tuple[str, str], HttpAction] = {}
        # method → [(prefix, action)], longest prefix first
        self._prefixes: dict[str, list[tuple[str, HttpAction]]] = {}

    def route(
        self,
        *,
        path: str | None = None,
        path_prefix: str | None = None,
        method: str,
        handler: HttpAction,
    ) -> None:
        """Route `method` requests for `path` (exact) or under `path_prefix` to `handler`."""
        verb = method.upper() if isinstance(method, str) else method
        if verb not in ROUTABLE_METHODS:
            allowed = ", ".join(ROUTABLE_METHODS)
            raise DeveloperError(
                f"HTTP method {method!r} cannot be routed: use one of {allowed} "
                "(HEAD requests run the GET route)"
            )
        if not isinstance(handler, HttpAction):
            raise DeveloperError(
                f"The handler of {verb} {path or path_prefix} must be wrapped with "
                f"http_action(...), got {handler!r}"
            )
        if (path is None) == (path_prefix is None):
            raise DeveloperError("http.route() takes exactly one of `path` and `path_prefix`")
        if path is not None:
            if not isinstance(path, str) or not path.startswith("/"):
                raise DeveloperError(f"Route path {path!r} must start with '/'")
            if (path, verb) in self._exact:
                raise DeveloperError(f"Route {verb} {path} is defined twice")
            self._exact[(path, verb)] = handler
            return
        assert path_prefix is not None
        if (
            not isinstance(path_prefix, str)
            or not path_prefix.startswith("/")
            or not path_prefix.endswith("/")
        ):
            raise DeveloperError(f"Route path_prefix {path_prefix!r} must start and end with '/'")
        prefixes = self._prefixes.setdefault(verb, [])
        if any(existing == path_prefix for existing, _ in prefixes):
            raise DeveloperError(f"Route {verb} {path_prefix}* is defined twice")
        prefixes.append((path_prefix, handler))
        prefixes.sort(key=lambda entry: len(entry[0]), reverse=True)

    def lookup(self, path: str, method: str) -> RouteMatch | None:
        """The route of a request: exact path first, then the longest matching prefix."""
        verb = "GET" if method.upper() == "HEAD" else method.upper()
        action = self._exact.get((path, verb))
        if action is not None:
            return RouteMatch(action, verb, path)
        for prefix, prefixed in self._prefixes.get(verb, ()):
            if path.startswith(prefix):
                return RouteMatch(prefixed, verb, prefix + "*")
        return None
