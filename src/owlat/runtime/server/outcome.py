"""What the HTTP function API answers (reference §1 and §4.9).

A function call's outcome is HTTP 200 with a `UdfResponse` body, whatever happened inside:

    {"status": "success", "value": <value>, "logLines": ["[LOG] ..."]}
    {"status": "error", "errorMessage": "[Request ID: <id>] Server Error\\n<what>",
     "errorData": <value, ConvexError only>, "logLines": [...]}

where `<what>` is `Uncaught ConvexError: <message>` for a `ConvexError` (its data travels
unredacted as `errorData`), the runtime's own sentence for a call refused before the
function ran (unknown path, wrong kind, invalid arguments), and `Uncaught Error: <message>`
for anything else the function raised.

A request refused before any function is called (malformed body, bad credentials, an
unsupported client) is a protocol error instead: a `RequestError`, answered with the status
`errors.http_status(code)` and the body `{"code": ..., "message": ...}`.

Values are written in the request's `ValueFormat`: encoded (`convex_encoded_json`, alias
`convex_json`: invertible, what the official clients ask for) or clean (`json`, alias
`convex_clean_json`: int64 as a decimal string, bytes as base64).
"""

from __future__ import annotations

import enum
import logging
from typing import Any

from starlette.responses import Response

from owlat.runtime import logs
from owlat.runtime.calls import FunctionOutcome
from owlat.runtime.error_text import describe_error
from owlat.runtime.errors import (
    ConvexError,
    DeveloperError,
    OwlatError,
    http_status,
)
from owlat.runtime.types import JSONValue, Value
from owlat.runtime.values import convex_to_clean_json, convex_to_json, dumps

logger = logging.getLogger("owlat.server")


class RequestError(Exception):
    """A request refused before any function runs: answered `{code, message}` with the
    HTTP status of `code` (see `errors.http_status`)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def status(self) -> int:
        return http_status(self.code)


class ValueFormat(enum.Enum):
    """How values are written in responses."""

    ENCODED = "convex_encoded_json"
    CLEAN = "json"

    @classmethod
    def parse(cls, name: object, default: ValueFormat) -> ValueFormat:
        """The format a request names (`None`: `default`); raises `RequestError`."""
        if name is None:
            return default
        if name in ("convex_encoded_json", "convex_json"):
            return cls.ENCODED
        if name in ("json", "convex_clean_json"):
            return cls.CLEAN
        raise RequestError(
            "BadJsonBody",
            f"Unsupported format {name!r}: use convex_encoded_json (or convex_json) or "
            "json (or convex_clean_json)",
        )

    def encode(self, value: Value) -> JSONValue:
        return convex_to_json(value) if self is ValueFormat.ENCODED else convex_to_clean_json(value)


def new_request_id() -> str:
    """The id that ties an error message to the server's log: the request's (logs.py)."""
    return logs.request_id()


def success_body(result: FunctionOutcome, value_format: ValueFormat) -> dict[str, Any]:
    return {
        "status": "success",
        "value": value_format.encode(result.value),
        "logLines": list(result.log_lines),
    }


def error_body(
    error: Exception,
    log_lines: tuple[str, ...],
    value_format: ValueFormat,
    request_id: str,
    path: str,
) -> dict[str, Any]:
    """The `UdfResponse` of a failed call (`log_lines`: what it logged). Errors the developer
    must look at (a Python exception from the function, a misuse of the runtime) are logged
    with their traceback."""
    if not isinstance(error, OwlatError) or isinstance(error, DeveloperError):
        logger.error("[Request ID: %s] %s failed", request_id, path, exc_info=error)
    body: dict[str, Any] = {
        "status": "error",
        "errorMessage": f"[Request ID: {request_id}] Server Error\n{describe_error(error)}",
        "logLines": list(log_lines),
    }
    if isinstance(error, ConvexError):
        body["errorData"] = value_format.encode(error.data)
    return body


def json_response(body: JSONValue, status: int = 200) -> Response:
    return Response(dumps(body), status_code=status, media_type="application/json")


def protocol_error_response(code: str, message: str) -> Response:
    """`{code, message}` with the HTTP status of `code`."""
    return json_response({"code": code, "message": message}, http_status(code))
