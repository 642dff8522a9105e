"""The data browser: an admin-only page and its JSON endpoints, under `/_admin/` on the
client port. It knows tables, indexes, documents, scheduled jobs, crons, functions and
their logs, nothing of what an app does with them.

    GET  /_admin/                  the page (static files in `data_browser_static/`)
    GET  /_admin/api/tables        [{name, system, count, indexes: [{name, fields}]}]
    GET  /_admin/api/documents     ?table=T [&index=I &eq=<JSON array>] [&cursor=C] [&limit=N]
                                   one page of T, newest first along the index (default
                                   by_creation_time); `eq` gives values for a prefix of
                                   the index's fields: {page, isDone, continueCursor}
    GET  /_admin/api/document      ?id=ID: {table, document}
    GET  /_admin/api/scheduled     [?cursor=C] [&limit=N]: {jobs: page of
                                   `_scheduled_functions` newest first, crons: [...]}
    POST /_admin/api/run           {path, args}: the function run as admin; its outcome as
                                   /api/function answers it (status, value/errorMessage,
                                   logLines)
    GET  /_admin/api/logs          [?after=SEQ] [&limit=N]: recent function log lines

Every endpoint answers 401 without `Authorization: Convex <admin key>`; the page asks for
the key and keeps it in the tab's sessionStorage. Values are Convex's JSON (`$integer`,
`$bytes`). Pages hold at most MAX_PAGE documents. The page's Content-Security-Policy allows
only its own script and stylesheet.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Route

from owlat.runtime import logs
from owlat.runtime.application import Application
from owlat.runtime.auth import Authenticator
from owlat.runtime.database.api import DatabaseReader
from owlat.runtime.database.query import IndexRange
from owlat.runtime.database.transaction import Transaction
from owlat.runtime.errors import InvalidValueError, OperatorError
from owlat.runtime.server._requests import read_json_object
from owlat.runtime.server.outcome import (
    RequestError,
    ValueFormat,
    error_body,
    json_response,
    new_request_id,
    success_body,
)
from owlat.runtime.system_tables import CRON_JOBS, SCHEDULED_FUNCTIONS
from owlat.runtime.values.json import convex_to_json, json_to_convex, loads

STATIC = Path(__file__).with_name("data_browser_static")
DEFAULT_PAGE = 25
MAX_PAGE = 100
MAX_CRONS = 200
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_PAGE_HEADERS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}
_FILES = {
    "/_admin/": "index.html",
    "/_admin/browser.js": "browser.js",
    "/_admin/browser.css": "browser.css",
    "/_admin/favicon.svg": "favicon.svg",
}

_Handler = Callable[["DataBrowser", Request], Awaitable[Response]]


class _Refused(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        self.status, self.code, self.message = status, code, message


def _bad(message: str) -> _Refused:
    return _Refused(400, "BadRequest", message)


def _admin_only(handler: _Handler) -> _Handler:
    """Refuse requests without the admin key (401); answer refusals as `{code, message}`."""

    @functools.wraps(handler)
    async def endpoint(browser: DataBrowser, request: Request) -> Response:
        scheme, _, key = request.headers.get("authorization", "").strip().partition(" ")
        if scheme != "Convex" or not browser.authenticator.check_admin_key(key.strip()):
            return json_response(
                {
                    "code": "Unauthenticated",
                    "message": "The data browser needs the admin key: "
                    "`Authorization: Convex <admin key>`",
                },
                401,
            )
        try:
            response = await handler(browser, request)
        except _Refused as refused:
            response = json_response(
                {"code": refused.code, "message": refused.message}, refused.status
            )
        except RequestError as error:
            response = json_response({"code": error.code, "message": error.message}, 400)
        response.headers["cache-control"] = "no-store"
        return response

    return endpoint


class DataBrowser:
    """The `/_admin/` page and endpoints of one Application (see the module docstring)."""

    def __init__(self, application: Application, authenticator: Authenticator) -> None:
        self.application = application
        self.authenticator = authenticator

    def routes(self) -> list[BaseRoute]:
        return [
            *(Route(path, self.static, methods=["GET", "HEAD"]) for path in _FILES),
            Route("/_admin/api/tables", self.tables, methods=["GET"]),
            Route("/_admin/api/documents", self.documents, methods=["GET"]),
            Route("/_admin/api/document", self.document, methods=["GET"]),
            Route("/_admin/api/scheduled", self.scheduled, methods=["GET"]),
            Route("/_admin/api/run", self.run, methods=["POST"]),
            Route("/_admin/api/logs", self.logs, methods=["GET"]),
        ]

    async def static(self, request: Request) -> Response:
        return FileResponse(STATIC / _FILES[request.url.path], headers=_PAGE_HEADERS)

    @_admin_only
    async def tables(self, request: Request) -> Response:
        async def read(txn: Transaction) -> list[dict[str, Any]]:
            listed = []
            for name, table in sorted(txn.catalog.by_name.items()):
                count = await _reader(txn, name).query(name).count()
                indexes = [
                    {"name": index, "fields": list(fields)}
                    for index, fields in table.definition.all_indexes().items()
                ]
                listed.append(
                    {"name": name, "system": table.is_system, "count": count, "indexes": indexes}
                )
            return listed

        return json_response(await self.application.run_system_read(read))

    @_admin_only
    async def documents(self, request: Request) -> Response:
        params = request.query_params
        table = _required(params, "table")
        index = params.get("index") or "by_creation_time"
        eq = _json_list(params["eq"], "eq") if "eq" in params else []
        options = {"numItems": _limit(params, DEFAULT_PAGE), "cursor": params.get("cursor")}

        async def read(txn: Transaction) -> dict[str, Any]:
            tables = txn.catalog.by_name
            if table not in tables:
                raise _Refused(404, "NotFound", f"No table {table!r}")
            declared = tables[table].definition.all_indexes()
            if index not in declared:
                raise _bad(
                    f"Table {table!r} has no index {index!r} (its indexes: {list(declared)})"
                )
            fields = declared[index]
            if len(eq) > len(fields):
                raise _bad(
                    f"Index {index!r} has {len(fields)} field(s) {list(fields)}; "
                    f"eq gives {len(eq)} values"
                )

            def prefix(q: IndexRange) -> IndexRange:
                for field, value in zip(fields, eq, strict=False):
                    q = q.eq(field, value)
                return q

            query = _reader(txn, table).query(table).with_index(index, prefix).order("desc")
            try:
                page = await query.paginate(options)
            except OperatorError:
                raise
            except Exception as error:  # a cursor of another query, a value of no type
                raise _bad(str(error)) from error
            page["page"] = [convex_to_json(document) for document in page["page"]]
            return page

        return json_response(await self.application.run_system_read(read))

    @_admin_only
    async def document(self, request: Request) -> Response:
        document_id = _required(request.query_params, "id")

        async def read(txn: Transaction) -> dict[str, Any]:
            table = txn.catalog.table_of_id(document_id)
            if table is None:
                raise _bad(f"{document_id!r} is not an id of any table")
            document = await _reader(txn, table.name).get(document_id)
            if document is None:
                raise _Refused(404, "NotFound", f"No document {document_id!r} in {table.name!r}")
            return {"table": table.name, "document": convex_to_json(document)}

        return json_response(await self.application.run_system_read(read))

    @_admin_only
    async def scheduled(self, request: Request) -> Response:
        options = {
            "numItems": _limit(request.query_params, DEFAULT_PAGE),
            "cursor": request.query_params.get("cursor"),
        }

        async def read(txn: Transaction) -> dict[str, Any]:
            system = DatabaseReader(txn, system=True)
            try:
                jobs = await system.query(SCHEDULED_FUNCTIONS).order("desc").paginate(options)
            except OperatorError:
                raise
            except Exception as error:
                raise _bad(str(error)) from error
            crons = await system.query(CRON_JOBS).take(MAX_CRONS)
            jobs["page"] = [convex_to_json(job) for job in jobs["page"]]
            return {**jobs, "crons": [convex_to_json(cron) for cron in crons]}

        return json_response(await self.application.run_system_read(read))

    @_admin_only
    async def run(self, request: Request) -> Response:
        body = await read_json_object(request)
        path = body.get("path")
        if not isinstance(path, str) or not path:
            raise _bad('"path" must name a function, e.g. "messages:list"')
        raw_args = body.get("args", {})
        if not isinstance(raw_args, dict):
            raise _bad(f'"args" must be a JSON object, got {raw_args!r}')
        try:
            args = json_to_convex(raw_args)
        except InvalidValueError as error:
            raise _bad(f'"args": {error}') from error
        outcome = await self.application.execute(None, path, args, identity=None, internal=True)
        if outcome.error is not None:
            return json_response(
                error_body(
                    outcome.error, outcome.log_lines, ValueFormat.ENCODED, new_request_id(), path
                )
            )
        return json_response(success_body(outcome, ValueFormat.ENCODED))

    @_admin_only
    async def logs(self, request: Request) -> Response:
        after = _whole(request.query_params, "after", 0, 0, None)
        limit = _whole(request.query_params, "limit", MAX_PAGE, 1, logs.RECENT_LINES)
        return json_response({"lines": logs.recent.after(after, limit)})


def _reader(txn: Transaction, table: str) -> DatabaseReader:
    return DatabaseReader(txn, system=table.startswith("_"))


def _required(params: Any, name: str) -> str:
    value = params.get(name)
    if not value:
        raise _bad(f"?{name}= is required")
    return str(value)


def _whole(params: Any, name: str, default: int, low: int, high: int | None) -> int:
    text = params.get(name)
    if text is None:
        return default
    if not text.isdigit() or int(text) < low or (high is not None and int(text) > high):
        bounds = f"from {low}" + ("" if high is None else f" to {high}")
        raise _bad(f"?{name}= must be a whole number {bounds}, got {text!r}")
    return int(text)


def _limit(params: Any, default: int) -> int:
    return _whole(params, "limit", default, 1, MAX_PAGE)


def _json_list(text: str, name: str) -> list[Any]:
    try:
        values = loads(text)
    except InvalidValueError as error:
        raise _bad(f"?{name}= is not JSON: {error}") from error
    if not isinstance(values, list):
        raise _bad(f"?{name}= must be a JSON array of values, got {text!r}")
    try:
        return [json_to_convex(value) for value in values]
    except InvalidValueError as error:
        raise _bad(f"?{name}=: {error}") from error
