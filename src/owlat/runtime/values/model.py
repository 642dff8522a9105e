"""Convex values in Python: the value model and its rules.

The value model. The runtime holds a Convex value as a plain Python object:

    Convex    Python                                   `type_name`
    null      None                                     "null"
    boolean   bool                                     "boolean"
    float64   float                                    "float64"
    int64     Int64 (an `int` subclass, types.py)      "int64"
    string    str, valid Unicode (no lone surrogate)   "string"
    bytes     bytes                                    "bytes"
    array     list, at most 8192 items                 "array"
    object    dict[str, ...], at most 1024 fields      "object"

A plain `int` is a Convex *number*, as in JavaScript and in the official Python client: it
becomes a float when the float is exactly the same number, and is refused otherwise (wrap it in
`Int64`, or pass a float). `UNDEFINED` is absence: an object field set to it is dropped, like a
JavaScript field set to `undefined`; anywhere else it is refused. Object keys are printable
ASCII (code points 32-126), at most 1024 characters, and never start with `$` (reserved for
the encodings of `json.py`). Containers nest at most 64 deep.

`normalize_value` turns what app code passes in (tuples, bytearrays, ints, ...) into that
canonical form and checks every rule. It always builds fresh containers, so app code that
mutates its input afterwards cannot reach a value the runtime holds. The walkers do not build
path strings on the way down: a problem raises `Fault`, and each container adds its own
segment (`.field`, `[3]`) while the fault unwinds, so a valid value pays nothing for paths.

`Fault` and the checks below are shared with `json.py` and `validators.py` (this package's
own modules); outside the package, use the names `owlat.runtime.values` exports.
"""

from __future__ import annotations

import json
import math
from typing import Any, Final

from owlat.runtime.errors import InvalidValueError
from owlat.runtime.types import UNDEFINED, Int64, Value

MAX_ARRAY_LENGTH: Final = 8192
MAX_OBJECT_FIELDS: Final = 1024
MAX_FIELD_NAME_LENGTH: Final = 1024
MAX_NESTING: Final = 64  # containers inside containers: `[[1.0]]` nests 2 deep

INT64_MIN: Final = -(2**63)
INT64_MAX: Final = 2**63 - 1

TOO_DEEP: Final = f"value is nested more than {MAX_NESTING} levels deep"


class Fault(Exception):
    """A problem found inside a value; containers add their path segment as it unwinds.

    Private: the public functions turn it into `InvalidValueError`, validators into
    `ValidationError`. Subclasses in `validators.py` render their own (Convex-shaped) messages.
    """

    def __init__(self, message: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.segments: list[str] = []  # innermost first

    def path(self, base: str = "") -> str:
        return base + "".join(reversed(self.segments))

    def render(self, path: str) -> str:
        where = f" at {path}" if path else ""
        return f"Invalid value{where}: {self.message}"


def invalid(fault: Fault, base: str) -> InvalidValueError:
    return InvalidValueError(fault.render(fault.path(base)))


# --- checks shared with the validators ---------------------------------------------------


def quote(text: str) -> str:
    """`text` as a JSON string literal, for messages: control characters and lone surrogates
    are escaped (so the message stays readable and encodable), other text is kept as is."""
    return json.dumps(text, ensure_ascii=not text.isprintable())


def check_unicode(text: str) -> None:
    """Refuse lone surrogates (Python allows them in `str`; UTF-8 and Convex do not)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        char = text[exc.start]
        raise Fault(
            f"string contains the lone surrogate U+{ord(char):04X} at index {exc.start}; "
            "strings must be valid Unicode"
        ) from None


def checked_key(key: object) -> str:
    """Return `key` as a plain `str` if it is a valid object field name, else raise `Fault`.

    The fast test lives inline in the walkers; this is the slow path that explains.
    """
    if not isinstance(key, str):
        raise Fault(f"object keys must be strings, not {type(key).__name__} ({short(repr(key))})")
    key = str.__str__(key)  # a str subclass (StrEnum, ...) becomes a plain str
    if len(key) > MAX_FIELD_NAME_LENGTH:
        raise Fault(
            f"field name {quote(key[:40] + '...')} is longer than {MAX_FIELD_NAME_LENGTH} "
            "characters"
        )
    if key.startswith("$"):
        raise Fault(f"field name {quote(key)} starts with '$', which is reserved")
    for char in key:
        if not " " <= char <= "~":
            raise Fault(
                f"field name {quote(key)} has the invalid character {char!a}: field names "
                "can only contain printable ASCII characters (code points 32-126)"
            )
    return key


def short(text: str, limit: int = 100) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def int_text(value: int, limit: int = 40) -> str:
    """An int for a message (`str()` refuses ints of more than 4300 digits)."""
    if value.bit_length() > 4 * limit:
        return f"{'-' if value < 0 else ''}<{value.bit_length()}-bit int>"
    return short(str(int(value)), limit)


def int_to_float(value: int) -> float:
    """A plain int as a Convex number: exact, or refused."""
    try:
        result = float(value)
    except OverflowError:
        result = math.inf
    if result != value:
        raise Fault(
            f"the int {int_text(value)} cannot be represented exactly as a Convex number "
            "(float64); wrap it in Int64(...) to store a 64-bit integer, or pass a float"
        )
    return result


def check_int64(value: int) -> None:
    if not INT64_MIN <= value <= INT64_MAX:
        raise Fault(f"Int64 {int_text(value)} is outside the int64 range [-2**63, 2**63 - 1]")


# --- normalize_value -----------------------------------------------------------------------


def normalize_value(value: object, path: str = "") -> Value:
    """Turn Python input into a canonical Convex value, checking every rule of the model.

    Ints become floats (exactly, or an error), tuples lists, bytearray/memoryview bytes;
    object fields set to `UNDEFINED` are dropped. Raises `InvalidValueError` naming the path
    (`path` is prefixed to it, e.g. `.args`).
    """
    try:  # an object, the usual value (a function's arguments, a document), without a frame
        return _normalize_dict(value, 0) if type(value) is dict else normalize_at(value, 0)
    except Fault as fault:
        raise invalid(fault, path) from None


def normalize_at(value: Any, depth: int) -> Value:
    t = type(value)
    if t is str:
        if not value.isascii():
            check_unicode(value)
        return value
    if t is float or t is bool or value is None:
        return value
    if t is dict:
        return _normalize_dict(value, depth)
    if t is list or t is tuple:
        return _normalize_list(value, depth)
    if t is int:
        return int_to_float(value)
    if t is Int64:
        check_int64(value)
        return value
    if t is bytes:
        return value
    return _normalize_other(value, depth)


# Field names (exact `str`) that passed the fast test below: the same few names come back in
# every document, and a set lookup costs less than the five tests. Bounded: emptied when full.
_VALID_KEYS: set[str] = set()
_VALID_KEYS_MAX = 4096


def _normalize_dict(value: dict[Any, Any], depth: int) -> dict[str, Value]:
    if depth >= MAX_NESTING:
        raise Fault(TOO_DEEP)
    depth += 1
    out: dict[str, Value] = {}
    valid = _VALID_KEYS
    for key, item in value.items():
        if item is UNDEFINED:
            continue
        if type(key) is not str or key not in valid:
            if (
                type(key) is str
                and key.isascii()
                and key.isprintable()
                and not key.startswith("$")
                and len(key) <= MAX_FIELD_NAME_LENGTH
            ):
                if len(valid) >= _VALID_KEYS_MAX:
                    valid.clear()
                valid.add(key)
            else:
                key = checked_key(key)
        try:
            t = type(item)
            if t is str:
                if not item.isascii():
                    check_unicode(item)
                out[key] = item
            elif t is float or t is bool or item is None:
                out[key] = item
            else:
                out[key] = normalize_at(item, depth)
        except Fault as fault:
            fault.segments.append("." + key)
            raise
    if len(out) > MAX_OBJECT_FIELDS:
        raise Fault(f"object has {len(out)} fields, more than the maximum of {MAX_OBJECT_FIELDS}")
    return out


def _normalize_list(value: list[Any] | tuple[Any, ...], depth: int) -> list[Value]:
    if depth >= MAX_NESTING:
        raise Fault(TOO_DEEP)
    if len(value) > MAX_ARRAY_LENGTH:
        raise Fault(f"array has {len(value)} elements, more than the maximum of {MAX_ARRAY_LENGTH}")
    depth += 1
    out: list[Value] = []
    append = out.append
    for index, item in enumerate(value):
        try:
            t = type(item)
            if t is str:
                if not item.isascii():
                    check_unicode(item)
                append(item)
            elif t is float or t is bool or item is None:
                append(item)
            else:
                append(normalize_at(item, depth))
        except Fault as fault:
            fault.segments.append(f"[{index}]")
            raise
    return out


def _normalize_other(value: object, depth: int) -> Value:
    """Subclasses of the supported types, and everything that is refused."""
    if isinstance(value, str):
        return normalize_at(str.__str__(value), depth)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, Int64):
        return normalize_at(Int64(value), depth)
    if isinstance(value, int):  # IntEnum and friends: a number, like a plain int
        return int_to_float(int(value))
    if isinstance(value, dict):
        return _normalize_dict(value, depth)
    if isinstance(value, (list, tuple)):
        return _normalize_list(value, depth)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if value is UNDEFINED:
        raise Fault(
            "UNDEFINED is not a Convex value; it is only allowed as an object field's value, "
            "where it means the field is absent"
        )
    raise Fault(
        f"unsupported type {type(value).__name__}: Convex values are None, bool, float, int, "
        "Int64, str, bytes, list and dict"
    )


# --- size and type names -------------------------------------------------------------------


def value_size(value: Value) -> int:
    """Approximate serialized size in bytes, counted like Convex's `Size` trait: 1 byte for
    null/boolean, 9 for numbers, contents + 2 for strings and bytes, 2 delimiters per array
    or object plus each field's name + 1. Used for the document and argument size limits."""
    t = type(value)
    if t is str:
        return (len(value) if value.isascii() else len(value.encode("utf-8", "surrogatepass"))) + 2
    if t is float or t is Int64 or t is int:
        return 9
    if t is bool or value is None:
        return 1
    if t is dict:
        size = 2
        for key, item in value.items():
            size += len(key) + 1 + value_size(item)
        return size
    if t is list or t is tuple:
        size = 2
        for item in value:
            size += value_size(item)
        return size
    if isinstance(value, (bytes, bytearray, memoryview)):
        return len(value) + 2
    return value_size(normalize_value(value))


def type_name(value: Value) -> str:
    """The Convex type name of a value: "string", "float64", "int64", "boolean", ... .

    A plain int is a "float64" (it is a number); `UNDEFINED` is "undefined". Anything else
    raises `InvalidValueError`.
    """
    t = type(value)
    if t is str:
        return "string"
    if t is float:
        return "float64"
    if t is bool:
        return "boolean"
    if value is None:
        return "null"
    if isinstance(value, Int64):
        return "int64"
    if isinstance(value, (int, float)):
        return "float64"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, (list, tuple)):
        return "array"
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "bytes"
    if value is UNDEFINED:
        return "undefined"
    raise InvalidValueError(f"Invalid value: unsupported type {type(value).__name__}")
