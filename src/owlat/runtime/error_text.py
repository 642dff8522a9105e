"""How a failed function call is described to callers (HTTP API, sync sockets, the
scheduler's `failed` records): one text for every transport.

Dispatch errors (unknown function, wrong kind, invalid arguments) are shown as they are,
as Convex shows them; a `ConvexError` as `Uncaught ConvexError: <data>` (a string as is,
anything else as its JSON, like JavaScript's ConvexError); anything else as
`Uncaught Error: <message>`.
"""

from __future__ import annotations

from owlat.runtime.errors import (
    ArgumentValidationError,
    ConvexError,
    FunctionNotFoundError,
    OwlatError,
    WrongFunctionKindError,
)
from owlat.runtime.values import convex_to_json, dumps

# Errors raised before the function runs: their message is shown as is, like Convex's.
_DISPATCH_ERRORS = (FunctionNotFoundError, WrongFunctionKindError, ArgumentValidationError)


def describe_error(error: BaseException) -> str:
    """The line of an error message that says what went wrong (after `Server Error`)."""
    if isinstance(error, ConvexError):
        return f"Uncaught ConvexError: {convex_error_text(error)}"
    if isinstance(error, _DISPATCH_ERRORS):
        return error.message
    text = error.message if isinstance(error, OwlatError) else str(error)
    return f"Uncaught Error: {text or type(error).__name__}"


def convex_error_text(error: ConvexError) -> str:
    """The data as JavaScript's ConvexError shows it: a string as is, else its JSON."""
    if isinstance(error.data, str):
        return error.data
    try:
        return dumps(convex_to_json(error.data)).decode()
    except OwlatError:
        return error.message
