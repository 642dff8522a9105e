"""The Convex HTTP function API (reference §1): thin handlers over `Application`.

    GET       /                      health check
    GET       /instance_name         the deployment's name
    GET       /instance_version      the server's version
    GET|POST  /api/query             a public query at the latest snapshot
    POST      /api/mutation          a public mutation
    POST      /api/action            a public action
    POST      /api/function          any function of any kind         (admin key only)
    POST      /api/run/{a/b/fn}      `a/b:fn`, any kind; clean JSON unless `format` says
    POST      /api/query_ts          {"ts": <base64 LE u64>}, the latest snapshot
    POST      /api/query_at_ts       a query at a `ts` from /api/query_ts (see below)
    POST      /api/query_batch       several queries at one snapshot

Every request first passes the `Convex-Client` check and authentication (no header:
anonymous; `Bearer <jwt>`: a user; `Convex <admin key>`: an admin, who may also call
internal functions). Function outcomes are HTTP 200 bodies, refused requests `{code,
message}` protocol errors (`outcome` describes both).

`/api/query_at_ts` serves only the latest snapshot: Owlat keeps no old versions of
documents, so a `ts` older than the latest commit gets a 400 `SnapshotUnavailable`.
"""

from __future__ import annotations

import functools
import importlib.metadata
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from owlat.runtime.application import Application, Snapshot
from owlat.runtime.auth import Authenticator, Caller
from owlat.runtime.errors import AuthenticationError, OperatorError, WriteConflictError
from owlat.runtime.functions import FunctionKind
from owlat.runtime.server._client_version import parse_client_version
from owlat.runtime.server._requests import (
    FunctionCall,
    decode_ts,
    encode_ts,
    function_call,
    header,
    object_list,
    parse_json,
    read_json_object,
)
from owlat.runtime.server.outcome import (
    RequestError,
    ValueFormat,
    error_body,
    json_response,
    new_request_id,
    protocol_error_response,
    success_body,
)

logger = logging.getLogger("owlat.server")

_Handler = Callable[["HttpApi", Request], Awaitable[Response]]


def _answering_protocol_errors(handler: _Handler) -> _Handler:
    """Turn a refused request into its `{code, message}` response."""

    @functools.wraps(handler)
    async def endpoint(api: HttpApi, request: Request) -> Response:
        try:
            return await handler(api, request)
        except (RequestError, AuthenticationError) as error:
            return protocol_error_response(error.code, error.message)
        except OperatorError as error:
            request_id = new_request_id()
            logger.error("[Request ID: %s] %s failed", request_id, request.url.path, exc_info=error)
            message = (
                error.message
                if isinstance(error, WriteConflictError)
                else f"[Request ID: {request_id}] The server could not complete the request."
            )
            return protocol_error_response(error.code, message)

    return endpoint


class HttpApi:
    """The HTTP function API of one application."""

    def __init__(
        self, application: Application, authenticator: Authenticator, *, instance_name: str
    ) -> None:
        self.application = application
        self.authenticator = authenticator
        self.instance_name = instance_name

    def routes(self) -> list[BaseRoute]:
        return [  # the router tries routes in order: the busiest first
            Route("/api/query", self.query, methods=["GET", "POST"]),
            Route("/api/mutation", self.mutation, methods=["POST"]),
            Route("/api/action", self.action, methods=["POST"]),
            Route("/", self.health, methods=["GET"]),
            Route("/instance_name", self.name, methods=["GET"]),
            Route("/instance_version", self.version, methods=["GET"]),
            Route("/api/function", self.function, methods=["POST"]),
            Route("/api/run/{path:path}", self.run, methods=["POST"]),
            Route("/api/query_ts", self.query_ts, methods=["POST"]),
            Route("/api/query_at_ts", self.query_at_ts, methods=["POST"]),
            Route("/api/query_batch", self.query_batch, methods=["POST"]),
        ]

    # -- health --------------------------------------------------------------------------

    async def health(self, request: Request) -> Response:
        return PlainTextResponse("This Owlat deployment is running.")

    async def name(self, request: Request) -> Response:
        return PlainTextResponse(self.instance_name)

    async def version(self, request: Request) -> Response:
        try:
            version = importlib.metadata.version("owlat")
        except importlib.metadata.PackageNotFoundError:
            version = "unknown"
        return PlainTextResponse(version)

    # -- one function --------------------------------------------------------------------

    @_answering_protocol_errors
    async def query(self, request: Request) -> Response:
        if request.method == "GET":
            params = request.query_params
            args = params.get("args")
            body = {
                "path": params.get("path"),
                "args": None if args is None else parse_json(args, "The `args` parameter"),
                "format": params.get("format"),
            }
            return await self._call(request, body, FunctionKind.QUERY)
        return await self._call(request, await read_json_object(request), FunctionKind.QUERY)

    @_answering_protocol_errors
    async def mutation(self, request: Request) -> Response:
        return await self._call(request, await read_json_object(request), FunctionKind.MUTATION)

    @_answering_protocol_errors
    async def action(self, request: Request) -> Response:
        return await self._call(request, await read_json_object(request), FunctionKind.ACTION)

    @_answering_protocol_errors
    async def function(self, request: Request) -> Response:
        caller, default_format = await self._caller(request)
        if not caller.admin:
            raise RequestError(
                "Forbidden", "/api/function needs the admin key: `Authorization: Convex <key>`"
            )
        body = await read_json_object(request)
        if body.get("componentPath"):
            raise RequestError("BadJsonBody", "Owlat has no components: omit `componentPath`")
        call = function_call(body, default_format)
        return json_response(await self._run(call, None, caller))

    @_answering_protocol_errors
    async def run(self, request: Request) -> Response:
        segments = request.path_params["path"].strip("/").split("/")
        if len(segments) < 2 or not all(segments):
            raise RequestError(
                "NotFound",
                f"/api/run/{request.path_params['path']} names no function: use "
                "/api/run/<module path>/<function>, e.g. /api/run/messages/list",
            )
        path = "/".join(segments[:-1]) + ":" + segments[-1]
        caller, _ = await self._caller(request)
        call = function_call(await read_json_object(request), ValueFormat.CLEAN, path=path)
        return json_response(await self._run(call, None, caller))

    async def _call(self, request: Request, body: dict[str, Any], kind: FunctionKind) -> Response:
        caller, default_format = await self._caller(request)
        call = function_call(body, default_format)
        return json_response(await self._run(call, kind, caller))

    # -- snapshots -----------------------------------------------------------------------

    @_answering_protocol_errors
    async def query_ts(self, request: Request) -> Response:
        await self._caller(request)
        async with self.application.snapshot() as snapshot:
            return json_response({"ts": encode_ts(snapshot.ts)})

    @_answering_protocol_errors
    async def query_at_ts(self, request: Request) -> Response:
        caller, default_format = await self._caller(request)
        body = await read_json_object(request)
        ts = decode_ts(body.get("ts"))
        call = function_call(body, default_format)
        async with self.application.snapshot() as snapshot:
            if ts != snapshot.ts:
                raise RequestError("SnapshotUnavailable", _unavailable(ts, snapshot.ts))
            return json_response(await self._run(call, FunctionKind.QUERY, caller, snapshot))

    @_answering_protocol_errors
    async def query_batch(self, request: Request) -> Response:
        caller, default_format = await self._caller(request)
        body = await read_json_object(request)
        calls = [function_call(entry, default_format) for entry in object_list(body, "queries")]
        async with self.application.snapshot() as snapshot:
            results = [
                await self._run(call, FunctionKind.QUERY, caller, snapshot) for call in calls
            ]
        return json_response({"results": results})

    # -- the seam ------------------------------------------------------------------------

    async def _caller(self, request: Request) -> tuple[Caller, ValueFormat]:
        """Who calls (raises on bad credentials), and the response format they expect
        when the request names none."""
        client = parse_client_version(header(request, b"convex-client"))
        caller = await self.authenticator.authenticate_header(header(request, b"authorization"))
        default = ValueFormat.ENCODED if client.wants_encoded_by_default else ValueFormat.CLEAN
        return caller, default

    async def _run(
        self,
        call: FunctionCall,
        kind: FunctionKind | None,
        caller: Caller,
        snapshot: Snapshot | None = None,
    ) -> dict[str, Any]:
        """Run one call; its outcome as a `UdfResponse` body (operator errors propagate)."""
        if snapshot is None:
            outcome = await self.application.execute(
                kind, call.path, call.args, identity=caller.identity, internal=caller.admin
            )
        else:
            outcome = await snapshot.execute_query(
                call.path, call.args, identity=caller.identity, internal=caller.admin
            )
        if isinstance(outcome.error, OperatorError):
            raise outcome.error
        if outcome.error is not None:
            return error_body(
                outcome.error, outcome.log_lines, call.value_format, new_request_id(), call.path
            )
        return success_body(outcome, call.value_format)


def _unavailable(ts: int, latest: int) -> str:
    if ts > latest:
        return f"ts {encode_ts(ts)} is newer than the latest snapshot ({encode_ts(latest)})"
    return (
        f"Cannot run a query at ts {encode_ts(ts)}: Owlat keeps only the latest snapshot "
        f"({encode_ts(latest)}) and the data has changed since. Get a new ts from "
        "/api/query_ts and retry."
    )
