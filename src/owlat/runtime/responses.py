"""JSON bodies of HTTP actions, written as JavaScript's `JSON.stringify` writes them.

An HTTP action on Convex answers `Response.json(value)`: a number is a float64, written
without a fraction when it is an integer below 10^21 (`120`, not `120.0`; `-0` as `0`), and
NaN and ±Infinity become `null`. Python's `json` writes every float with a fraction, which
typed clients refuse where a document says integer (Go's `encoding/json` into an `int`,
serde into a `u64`). `JSONResponse` is Starlette's, with `JSON.stringify`'s numbers; other
values are written as Starlette writes them (compact, UTF-8).

Only plain JSON bodies follow this rule: the Convex wire protocol (HTTP function API, sync
socket) keeps Convex's encoding (`values.py`), which always writes a float with a fraction.
"""

from __future__ import annotations

import json
import math
from typing import Any, Final

from starlette import responses

__all__ = ["JSONResponse", "javascript_json"]

# From here on JavaScript writes an exponent (`1e+21`), as Python does for such a float.
_EXPONENT_FROM: Final = 1e21


def javascript_json(value: Any) -> bytes:
    """`value` as UTF-8 JSON text with `JSON.stringify`'s numbers (see the module docstring)."""
    return json.dumps(
        _javascript_numbers(value), ensure_ascii=False, allow_nan=False, separators=(",", ":")
    ).encode("utf-8")


def _javascript_numbers(value: Any) -> Any:
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        if value.is_integer() and -_EXPONENT_FROM < value < _EXPONENT_FROM:
            return int(value)
        return value
    if isinstance(value, dict):
        return {key: _javascript_numbers(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_javascript_numbers(item) for item in value]
    return value


class JSONResponse(responses.JSONResponse):
    """Starlette's `JSONResponse` writing numbers as `JSON.stringify` does (`120`, not
    `120.0`): what an HTTP action answers JSON with."""

    def render(self, content: Any) -> bytes:
        return javascript_json(content)
