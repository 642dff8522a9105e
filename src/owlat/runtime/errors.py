"""The runtime's error tree, and the one table that maps error codes to HTTP statuses.

    OwlatError                      base; the class docstring is the default message
    ├── ConvexError(data)           raised by app code: `data` reaches the caller unredacted
    ├── UserError                   the caller must act (bad input, missing thing, no access)
    │   ├── InvalidValueError         not a Convex value (bad key, unsupported type, too big)
    │   ├── ValidationError           a value does not match its validator
    │   │   ├── ArgumentValidationError   function arguments (names the path and field)
    │   │   └── DocumentValidationError   a document does not match its table (names table, field)
    │   ├── InvalidIdError            malformed id, or an id of another table
    │   ├── DocumentNotFoundError     patch/replace/delete of a missing id
    │   ├── FunctionNotFoundError     "Could not find public function for '<path>'."
    │   ├── WrongFunctionKindError    "Trying to execute X as Query, but it is defined as Mutation."
    │   ├── AuthenticationError       bad, expired or unverifiable credentials
    │   ├── LimitExceededError        a transaction or value limit (reads, writes, sizes)
    │   └── PayloadTooLargeError      an upload over the limit its upload URL carries
    ├── DeveloperError (also RuntimeError)   the app developer misused the runtime
    │   ├── ReadOnlyError             a write attempted from a query
    │   ├── SchemaError               an invalid schema or an unknown table/index
    │   └── QueryBuildError           an invalid index range, `unique` with several results, ...
    └── OperatorError               the operator must act: storage failures, exhausted retries
        ├── EngineError               the storage engine failed (driver errors stop here)
        └── WriteConflictError        serialization conflict; the runtime retries it first

Each class carries a stable short `code` (what tests and the wire's `{code, message}` use);
`http_status` maps codes to statuses for protocol-level errors (function errors travel
inside a 200 `{"status": "error"}` body instead), and `websocket_close_code` maps them to
the close code of a sync socket they end.
"""

from __future__ import annotations

from typing import Any, ClassVar


class OwlatError(Exception):
    """An error in the Owlat runtime."""

    code: ClassVar[str] = "InternalServerError"

    def __init__(self, message: str | None = None) -> None:
        self.message = message if message is not None else (self.__doc__ or "").strip()
        super().__init__(self.message)


class ConvexError(OwlatError):
    """An application error whose `data` (any Convex value) reaches the caller unredacted."""

    code = "ConvexError"

    def __init__(self, data: Any = None, message: str | None = None) -> None:
        self.data = data
        if message is None:
            message = data if isinstance(data, str) else _short_repr(data)
        super().__init__(message)


def _short_repr(data: Any) -> str:
    text = repr(data)
    return text if len(text) <= 200 else text[:197] + "..."


class UserError(OwlatError):
    """The request cannot be served as it stands."""

    code = "BadRequest"


class InvalidValueError(UserError):
    """The value is not a valid Convex value."""

    code = "InvalidValue"


class ValidationError(UserError):
    """A value does not match its validator."""

    code = "ValidationError"


class ArgumentValidationError(ValidationError):
    """The function's arguments do not match its validator."""

    code = "ArgumentValidationError"


class DocumentValidationError(ValidationError):
    """The document does not match its table's schema."""

    code = "DocumentValidationError"


class InvalidIdError(UserError):
    """The id is malformed or belongs to another table."""

    code = "InvalidId"


class DocumentNotFoundError(UserError):
    """The document does not exist."""

    code = "DocumentNotFound"


class FunctionNotFoundError(UserError):
    """No public function exists at that path."""

    code = "FunctionNotFound"


class WrongFunctionKindError(UserError):
    """The function exists but is of another kind."""

    code = "WrongFunctionKind"


class AuthenticationError(UserError):
    """The credentials could not be verified."""

    code = "Unauthenticated"


class LimitExceededError(UserError):
    """A limit of the runtime was exceeded."""

    code = "LimitExceeded"


class PayloadTooLargeError(UserError):
    """The upload is larger than its upload URL allows; nothing was stored."""

    code = "PayloadTooLarge"


class DeveloperError(OwlatError, RuntimeError):
    """The runtime was used in a way it does not support."""

    code = "DeveloperError"


class ReadOnlyError(DeveloperError):
    """Queries are read-only: writes are only allowed in mutations."""

    code = "ReadOnly"


class SchemaError(DeveloperError):
    """The schema is invalid, or names an unknown table or index."""

    code = "SchemaError"


class QueryBuildError(DeveloperError):
    """The database query is not valid."""

    code = "InvalidQuery"


class OperatorError(OwlatError):
    """The server failed; an operator must look at it."""

    code = "InternalServerError"


class EngineError(OperatorError):
    """The storage engine failed."""

    code = "StorageError"


class WriteConflictError(OperatorError):
    """The transaction conflicted with a concurrent commit and was not applied."""

    code = "OptimisticConcurrencyControlFailure"


# One code → HTTP status table for errors that surface as protocol errors ({code, message}).
_HTTP_STATUS_BY_CODE: dict[str, int] = {
    "BadRequest": 400,
    "BadJsonBody": 400,
    "SnapshotUnavailable": 400,
    "InvalidValue": 400,
    "ValidationError": 400,
    "ArgumentValidationError": 400,
    "DocumentValidationError": 400,
    "InvalidId": 400,
    "InvalidClientVersion": 400,
    "ClientVersionUnsupported": 400,
    "LimitExceeded": 400,
    "DocumentNotFound": 404,
    "FunctionNotFound": 404,
    "NotFound": 404,
    "WrongFunctionKind": 400,
    "Unauthenticated": 401,
    "Forbidden": 403,
    "MethodNotAllowed": 405,
    "PayloadTooLarge": 413,
    "RateLimited": 429,
    "OptimisticConcurrencyControlFailure": 503,
    "StorageError": 500,
    "InternalServerError": 500,
}


def http_status(code: str) -> int:
    """The HTTP status of a protocol error with this code (500 when unknown)."""
    return _HTTP_STATUS_BY_CODE.get(code, 500)


# One code → WebSocket close code table for errors that end a sync socket (the close frame's
# reason is "<code>: <message>"; clients reconnect after every close).
_CLOSE_CODE_BY_CODE: dict[str, int] = {
    "BadClientMessage": 1008,  # policy violation: the client broke the protocol
    "ClientTimestampAhead": 1008,
    "Unauthenticated": 1000,  # sent after an AuthError message, which says why
    "TooManyConcurrentRequests": 1013,  # try again later
    "GoingAway": 1001,  # the server stops: reconnect (to another node)
    "InternalServerError": 1011,
}


def websocket_close_code(code: str) -> int:
    """The WebSocket close code for an error with this code (1011 when unknown)."""
    return _CLOSE_CODE_BY_CODE.get(code, 1011)
