"""Reading HTTP API requests: a bounded JSON body, a function call's fields, timestamps.

Everything here raises `RequestError` (a protocol error) for input it cannot read;
whether the function exists or accepts the arguments is the runtime's business.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import struct
from collections.abc import Mapping
from typing import Any, Final

from starlette.requests import ClientDisconnect, Request

from owlat.runtime.errors import InvalidValueError
from owlat.runtime.server.outcome import RequestError, ValueFormat
from owlat.runtime.types import JSONValue
from owlat.runtime.values import json_to_convex, loads

# The public API's request body limit: 16 MiB of arguments plus room for the envelope.
MAX_BODY_BYTES: Final = 16 * 1024 * 1024 + 2000

_TS: Final = struct.Struct("<Q")


@dataclasses.dataclass(frozen=True, slots=True)
class FunctionCall:
    """What a request asks to run: a path, decoded arguments, and the response format."""

    path: str
    args: Any
    value_format: ValueFormat


def header(request: Request, name: bytes) -> str | None:
    """The request header `name` (lowercase), found without building Starlette's `Headers`."""
    for key, value in request.scope["headers"]:
        if key == name:
            text: str = value.decode("latin-1")
            return text
    return None


async def read_json_object(request: Request) -> dict[str, Any]:
    """The request body as a JSON object (`{}` when empty), at most `MAX_BODY_BYTES`.

    Read straight from the ASGI `receive` channel (the body is read once)."""
    declared = header(request, b"content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise _too_large()
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise _too_large()
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    raw = chunks[0] if len(chunks) == 1 else b"".join(chunks)
    if not raw.strip():
        return {}
    return _object(parse_json(raw, "The request body"), "The request body")


def parse_json(text: bytes | str, what: str) -> JSONValue:
    try:
        return loads(text)
    except InvalidValueError as error:
        raise RequestError("BadJsonBody", f"{what} is not valid JSON: {error.message}") from None


def function_call(
    body: Mapping[str, Any], default_format: ValueFormat, *, path: str | None = None
) -> FunctionCall:
    """The call a request body describes: `{"path", "args", "format"}` (`path` may come
    from the URL instead)."""
    if path is None:
        path = body.get("path")
        if not isinstance(path, str) or not path:
            raise RequestError(
                "BadJsonBody",
                'The request needs a `path` string naming the function, e.g. "messages:list"',
            )
    return FunctionCall(
        path, decode_args(body.get("args")), ValueFormat.parse(body.get("format"), default_format)
    )


def decode_args(raw: JSONValue) -> Any:
    """Arguments as sent: an object, or (the npm client's form) an array holding one."""
    if isinstance(raw, list):
        if len(raw) != 1:
            raise RequestError(
                "BadJsonBody",
                f"`args` must be an object or an array holding one object, not an array of "
                f"{len(raw)} elements",
            )
        raw = raw[0]
    try:
        return json_to_convex(raw)
    except InvalidValueError as error:
        raise RequestError(error.code, f"`args` is not a Convex value: {error.message}") from None


def object_list(body: Mapping[str, Any], field: str) -> list[dict[str, Any]]:
    """`body[field]` as a list of JSON objects."""
    items = body.get(field)
    if not isinstance(items, list):
        raise RequestError("BadJsonBody", f"The request needs a `{field}` list")
    return [_object(item, f"Each entry of `{field}`") for item in items]


def encode_ts(ts: int) -> str:
    """A timestamp as the wire writes it: base64 of the little-endian u64."""
    return base64.b64encode(_TS.pack(ts)).decode("ascii")


def decode_ts(text: object) -> int:
    if isinstance(text, str):
        try:
            data = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            data = b""
        if len(data) == _TS.size:
            value: int = _TS.unpack(data)[0]
            return value
    raise RequestError(
        "BadJsonBody", f"`ts` must be base64 of an 8-byte little-endian integer, got {text!r}"
    )


def _object(value: JSONValue, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise RequestError("BadJsonBody", f"{what} must be a JSON object")
    return value


def _too_large() -> RequestError:
    return RequestError(
        "PayloadTooLarge", f"The request body is larger than the limit of {MAX_BODY_BYTES} bytes"
    )
