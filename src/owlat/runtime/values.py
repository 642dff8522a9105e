"""Convex values in Python: the value model, its rules, and its two JSON encodings.

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
the encoding below). Containers nest at most 64 deep.

`normalize_value` turns what app code passes in (tuples, bytearrays, ints, ...) into that
canonical form and checks every rule. It always builds fresh containers, so app code that
mutates its input afterwards cannot reach a value the runtime holds. The walkers do not build
path strings on the way down: a problem raises `_Fault`, and each container adds its own
segment (`.field`, `[3]`) while the fault unwinds, so a valid value pays nothing for paths.

Encoded JSON (`convex_to_json` / `json_to_convex`, reference §3) is what the wire carries and
is invertible: finite floats other than -0.0 are JSON numbers (always written with a decimal
point or exponent: the Rust client rejects `42` where it expects a float); NaN, ±Infinity and
-0.0 are `{"$float": base64(8-byte little-endian IEEE 754)}`; int64 is
`{"$integer": base64(8-byte little-endian two's complement)}`; bytes are `{"$bytes": base64}`.
Every JSON number decodes to float64: only `$integer` makes an int64.

Clean JSON (`convex_to_clean_json`) is Convex's lossy export format for people and tools:
int64 as a decimal string, bytes as a base64 string, non-finite floats as "NaN"/"Infinity".

The validators (`v.string()`, `v.object({...})`, ...) live in `_validators.py` and are part of
this module's public surface.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import struct
from typing import Any, Final

import orjson

from owlat.runtime.errors import InvalidValueError
from owlat.runtime.types import UNDEFINED, Int64, JSONValue, Value

__all__ = [
    "MAX_ARRAY_LENGTH",
    "MAX_FIELD_NAME_LENGTH",
    "MAX_NESTING",
    "MAX_OBJECT_FIELDS",
    "AnyValidator",
    "ArrayValidator",
    "BooleanValidator",
    "BytesValidator",
    "FloatValidator",
    "IdResolver",
    "IdValidator",
    "Int64Validator",
    "LiteralValidator",
    "NullValidator",
    "ObjectValidator",
    "OptionalValidator",
    "RecordValidator",
    "StringValidator",
    "UnionValidator",
    "Validator",
    "convex_to_clean_json",
    "convex_to_json",
    "dumps",
    "encode_stored",
    "json_to_convex",
    "loads",
    "normalize_value",
    "type_name",
    "v",
    "value_size",
]

MAX_ARRAY_LENGTH: Final = 8192
MAX_OBJECT_FIELDS: Final = 1024
MAX_FIELD_NAME_LENGTH: Final = 1024
MAX_NESTING: Final = 64  # containers inside containers: `[[1.0]]` nests 2 deep

INT64_MIN: Final = -(2**63)
INT64_MAX: Final = 2**63 - 1

_TOO_DEEP: Final = f"value is nested more than {MAX_NESTING} levels deep"
_pack_f64 = struct.Struct("<d").pack
_unpack_f64 = struct.Struct("<d").unpack
_pack_i64 = struct.Struct("<q").pack
_unpack_i64 = struct.Struct("<q").unpack
_b64encode = base64.b64encode
_copysign = math.copysign


class _Fault(Exception):
    """A problem found inside a value; containers add their path segment as it unwinds.

    Private: the public functions turn it into `InvalidValueError`, validators into
    `ValidationError`. Subclasses in `_validators` render their own (Convex-shaped) messages.
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


def _invalid(fault: _Fault, base: str) -> InvalidValueError:
    return InvalidValueError(fault.render(fault.path(base)))


# --- checks shared with the validators ---------------------------------------------------


def _quote(text: str) -> str:
    """`text` as a JSON string literal, for messages: control characters and lone surrogates
    are escaped (so the message stays readable and encodable), other text is kept as is."""
    return json.dumps(text, ensure_ascii=not text.isprintable())


def _check_unicode(text: str) -> None:
    """Refuse lone surrogates (Python allows them in `str`; UTF-8 and Convex do not)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        char = text[exc.start]
        raise _Fault(
            f"string contains the lone surrogate U+{ord(char):04X} at index {exc.start}; "
            "strings must be valid Unicode"
        ) from None


def _checked_key(key: object) -> str:
    """Return `key` as a plain `str` if it is a valid object field name, else raise `_Fault`.

    The fast test lives inline in the walkers; this is the slow path that explains.
    """
    if not isinstance(key, str):
        raise _Fault(f"object keys must be strings, not {type(key).__name__} ({_short(repr(key))})")
    key = str.__str__(key)  # a str subclass (StrEnum, ...) becomes a plain str
    if len(key) > MAX_FIELD_NAME_LENGTH:
        raise _Fault(
            f"field name {_quote(key[:40] + '...')} is longer than {MAX_FIELD_NAME_LENGTH} "
            "characters"
        )
    if key.startswith("$"):
        raise _Fault(f"field name {_quote(key)} starts with '$', which is reserved")
    for char in key:
        if not " " <= char <= "~":
            raise _Fault(
                f"field name {_quote(key)} has the invalid character {char!a}: field names "
                "can only contain printable ASCII characters (code points 32-126)"
            )
    return key


def _short(text: str, limit: int = 100) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _int_text(value: int, limit: int = 40) -> str:
    """An int for a message (`str()` refuses ints of more than 4300 digits)."""
    if value.bit_length() > 4 * limit:
        return f"{'-' if value < 0 else ''}<{value.bit_length()}-bit int>"
    return _short(str(int(value)), limit)


def _int_to_float(value: int) -> float:
    """A plain int as a Convex number: exact, or refused."""
    try:
        result = float(value)
    except OverflowError:
        result = math.inf
    if result != value:
        raise _Fault(
            f"the int {_int_text(value)} cannot be represented exactly as a Convex number "
            "(float64); wrap it in Int64(...) to store a 64-bit integer, or pass a float"
        )
    return result


def _check_int64(value: int) -> None:
    if not INT64_MIN <= value <= INT64_MAX:
        raise _Fault(f"Int64 {_int_text(value)} is outside the int64 range [-2**63, 2**63 - 1]")


# --- normalize_value -----------------------------------------------------------------------


def normalize_value(value: object, path: str = "") -> Value:
    """Turn Python input into a canonical Convex value, checking every rule of the model.

    Ints become floats (exactly, or an error), tuples lists, bytearray/memoryview bytes;
    object fields set to `UNDEFINED` are dropped. Raises `InvalidValueError` naming the path
    (`path` is prefixed to it, e.g. `.args`).
    """
    try:
        return _normalize(value, 0)
    except _Fault as fault:
        raise _invalid(fault, path) from None


def _normalize(value: Any, depth: int) -> Value:
    t = type(value)
    if t is str:
        if not value.isascii():
            _check_unicode(value)
        return value
    if t is float or t is bool or value is None:
        return value
    if t is dict:
        return _normalize_dict(value, depth)
    if t is list or t is tuple:
        return _normalize_list(value, depth)
    if t is int:
        return _int_to_float(value)
    if t is Int64:
        _check_int64(value)
        return value
    if t is bytes:
        return value
    return _normalize_other(value, depth)


def _normalize_dict(value: dict[Any, Any], depth: int) -> dict[str, Value]:
    if depth >= MAX_NESTING:
        raise _Fault(_TOO_DEEP)
    depth += 1
    out: dict[str, Value] = {}
    for key, item in value.items():
        if item is UNDEFINED:
            continue
        if not (
            type(key) is str
            and key.isascii()
            and key.isprintable()
            and not key.startswith("$")
            and len(key) <= MAX_FIELD_NAME_LENGTH
        ):
            key = _checked_key(key)
        try:
            t = type(item)
            if t is str:
                if not item.isascii():
                    _check_unicode(item)
                out[key] = item
            elif t is float or t is bool or item is None:
                out[key] = item
            else:
                out[key] = _normalize(item, depth)
        except _Fault as fault:
            fault.segments.append("." + key)
            raise
    if len(out) > MAX_OBJECT_FIELDS:
        raise _Fault(f"object has {len(out)} fields, more than the maximum of {MAX_OBJECT_FIELDS}")
    return out


def _normalize_list(value: list[Any] | tuple[Any, ...], depth: int) -> list[Value]:
    if depth >= MAX_NESTING:
        raise _Fault(_TOO_DEEP)
    if len(value) > MAX_ARRAY_LENGTH:
        raise _Fault(
            f"array has {len(value)} elements, more than the maximum of {MAX_ARRAY_LENGTH}"
        )
    depth += 1
    out: list[Value] = []
    append = out.append
    for index, item in enumerate(value):
        try:
            t = type(item)
            if t is str:
                if not item.isascii():
                    _check_unicode(item)
                append(item)
            elif t is float or t is bool or item is None:
                append(item)
            else:
                append(_normalize(item, depth))
        except _Fault as fault:
            fault.segments.append(f"[{index}]")
            raise
    return out


def _normalize_other(value: object, depth: int) -> Value:
    """Subclasses of the supported types, and everything that is refused."""
    if isinstance(value, str):
        return _normalize(str.__str__(value), depth)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, Int64):
        return _normalize(Int64(value), depth)
    if isinstance(value, int):  # IntEnum and friends: a number, like a plain int
        return _int_to_float(int(value))
    if isinstance(value, dict):
        return _normalize_dict(value, depth)
    if isinstance(value, (list, tuple)):
        return _normalize_list(value, depth)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if value is UNDEFINED:
        raise _Fault(
            "UNDEFINED is not a Convex value; it is only allowed as an object field's value, "
            "where it means the field is absent"
        )
    raise _Fault(
        f"unsupported type {type(value).__name__}: Convex values are None, bool, float, int, "
        "Int64, str, bytes, list and dict"
    )


# --- encoded JSON --------------------------------------------------------------------------


def convex_to_json(value: Value) -> JSONValue:
    """Encode a Convex value as Convex's invertible JSON (see the module docstring)."""
    try:
        return _to_json(value)
    except _Fault as fault:
        raise _invalid(fault, "") from None


def _to_json(value: Value) -> JSONValue:
    t = type(value)
    if t is str or t is bool or value is None:
        return value
    if t is float:
        if value - value == 0.0 and (value != 0.0 or _copysign(1.0, value) > 0.0):
            return value  # finite and not -0.0: a plain JSON number
        return {"$float": _b64encode(_pack_f64(value)).decode("ascii")}
    if t is dict:
        return {key: _to_json(item) for key, item in value.items() if item is not UNDEFINED}
    if t is list:
        return [_to_json(item) for item in value]
    if t is Int64:
        _check_int64(value)
        return {"$integer": _b64encode(_pack_i64(value)).decode("ascii")}
    if t is int:
        return _to_json(_int_to_float(value))
    if t is bytes:
        return {"$bytes": _b64encode(value).decode("ascii")}
    return _to_json(_normalize(value, 0))  # tuples, bytearrays, subclasses; or refused


def json_to_convex(obj: JSONValue) -> Value:
    """Decode Convex's encoded JSON (as parsed by `loads`) into a checked Convex value."""
    try:
        return _from_json(obj, 0)
    except _Fault as fault:
        raise _invalid(fault, "") from None


def _from_json(obj: JSONValue, depth: int) -> Value:
    t = type(obj)
    if t is str:
        if not obj.isascii():
            _check_unicode(obj)
        return obj
    if t is float or t is bool or obj is None:
        return obj
    if t is dict:
        if len(obj) == 1:
            ((key, item),) = obj.items()
            if type(key) is str and key.startswith("$"):
                return _decode_special(key, item)
        return _from_json_dict(obj, depth)
    if t is list:
        return _from_json_list(obj, depth)
    if t is int:  # every JSON number is a float64; huge ones round to the nearest float
        try:
            return float(obj)
        except OverflowError:
            raise _Fault(f"the JSON number {_int_text(obj)} is too large") from None
    raise _Fault(f"unsupported JSON type {t.__name__}")


def _from_json_dict(obj: dict[Any, Any], depth: int) -> dict[str, Value]:
    if depth >= MAX_NESTING:
        raise _Fault(_TOO_DEEP)
    if len(obj) > MAX_OBJECT_FIELDS:
        raise _Fault(f"object has {len(obj)} fields, more than the maximum of {MAX_OBJECT_FIELDS}")
    depth += 1
    out: dict[str, Value] = {}
    for key, item in obj.items():
        if not (
            type(key) is str
            and key.isascii()
            and key.isprintable()
            and not key.startswith("$")
            and len(key) <= MAX_FIELD_NAME_LENGTH
        ):
            key = _checked_key(key)
        try:
            t = type(item)
            if t is str:
                if not item.isascii():
                    _check_unicode(item)
                out[key] = item
            elif t is float or t is bool or item is None:
                out[key] = item
            else:
                out[key] = _from_json(item, depth)
        except _Fault as fault:
            fault.segments.append("." + key)
            raise
    return out


def _from_json_list(obj: list[Any], depth: int) -> list[Value]:
    if depth >= MAX_NESTING:
        raise _Fault(_TOO_DEEP)
    if len(obj) > MAX_ARRAY_LENGTH:
        raise _Fault(f"array has {len(obj)} elements, more than the maximum of {MAX_ARRAY_LENGTH}")
    depth += 1
    out: list[Value] = []
    append = out.append
    for index, item in enumerate(obj):
        try:
            t = type(item)
            if t is str:
                if not item.isascii():
                    _check_unicode(item)
                append(item)
            elif t is float or t is bool or item is None:
                append(item)
            else:
                append(_from_json(item, depth))
        except _Fault as fault:
            fault.segments.append(f"[{index}]")
            raise
    return out


def _decode_special(key: str, item: JSONValue) -> Value:
    if key == "$integer":
        return Int64(_unpack_i64(_decode_base64(key, item, 8))[0])
    if key == "$bytes":
        return _decode_base64(key, item, None)
    if key == "$float":
        number: float = _unpack_f64(_decode_base64(key, item, 8))[0]
        if number - number == 0.0 and (number != 0.0 or _copysign(1.0, number) > 0.0):
            raise _Fault(f"$float {number!r} is an ordinary number and must be a JSON number")
        return number
    raise _Fault(f"field name {_quote(key)} starts with '$', which is reserved")


def _decode_base64(key: str, item: JSONValue, length: int | None) -> bytes:
    """Strict standard base64: padded, canonical (re-encodes to the same text), exact length."""
    if type(item) is not str:
        raise _Fault(f"{key} must be a base64 string, not {type(item).__name__}")
    try:
        data = base64.b64decode(item, validate=True)
    except (binascii.Error, ValueError):
        raise _Fault(f"{key} is not valid base64: {_quote(_short(item, 40))}") from None
    if _b64encode(data).decode("ascii") != item:
        raise _Fault(f"{key} is not canonical base64: {_quote(_short(item, 40))}")
    if length is not None and len(data) != length:
        raise _Fault(f"{key} must encode exactly {length} bytes, not {len(data)}")
    return data


# --- clean JSON ----------------------------------------------------------------------------


def encode_stored(value: Value) -> bytes:
    """`dumps(convex_to_json(value))`, the form documents are stored in; a value made of JSON
    types only (str, bool, None, finite floats but -0.0, dicts and lists of them: most
    documents) is serialized as it is, without building its encoded-JSON copy first."""
    if (type(value) is dict or type(value) is list) and _json_native(value):
        return dumps(value)
    return dumps(convex_to_json(value))


def _json_native(value: dict[str, Value] | list[Value]) -> bool:
    """Whether `convex_to_json(value)` would equal `value`."""
    item: Any
    for item in value.values() if type(value) is dict else value:
        t = type(item)
        if t is str or t is bool or item is None:
            continue
        if t is float:
            if item - item == 0.0 and (item != 0.0 or _copysign(1.0, item) > 0.0):
                continue
            return False
        if (t is dict or t is list) and _json_native(item):
            continue
        return False
    return True


def decode_stored(data: bytes) -> Value:
    """Decode a value the runtime itself encoded (`dumps(convex_to_json(v))`): trusted, so
    keys are not re-checked, and the walk for `$integer`/`$bytes`/`$float` objects is skipped
    when the text has none. A `"` inside a JSON string is always escaped, so the bytes
    `{"$` can only start such an object; floats are written with a fraction or exponent,
    so orjson returns floats for them."""
    parsed = orjson.loads(data)
    return parsed if b'{"$' not in data else json_to_convex(parsed)


def convex_to_clean_json(value: Value) -> JSONValue:
    """Convex's lossy "json" export: int64 → decimal string, bytes → base64 string,
    NaN/±Infinity → "NaN"/"Infinity"/"-Infinity"; everything else as is."""
    t = type(value)
    if t is str or t is bool or value is None:
        return value
    if t is float:
        if value - value == 0.0:
            return value
        return "NaN" if value != value else ("Infinity" if value > 0 else "-Infinity")
    if t is dict:
        return {
            key: convex_to_clean_json(item) for key, item in value.items() if item is not UNDEFINED
        }
    if t is list:
        return [convex_to_clean_json(item) for item in value]
    if t is Int64:
        return str(int(value))
    if t is bytes:
        return _b64encode(value).decode("ascii")
    return convex_to_clean_json(normalize_value(value))  # ints, tuples, subclasses; or refused


# --- JSON text -----------------------------------------------------------------------------


def dumps(value: JSONValue, *, sort_keys: bool = False) -> bytes:
    """Serialize JSON (orjson): floats keep their decimal point (`42.0`); compact UTF-8."""
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS if sort_keys else None)
    except orjson.JSONEncodeError as exc:
        raise InvalidValueError(f"Cannot encode as JSON: {exc}") from None


def loads(data: bytes | str) -> JSONValue:
    """Parse JSON text (orjson); raises `InvalidValueError("Malformed JSON: ...")`."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise InvalidValueError(f"Malformed JSON: {exc}") from None


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


# The validators build on the helpers above, so they are imported last. Import them from here:
# `_validators` is private and cannot be imported on its own before this module.
from owlat.runtime._validators import (  # noqa: E402
    AnyValidator,
    ArrayValidator,
    BooleanValidator,
    BytesValidator,
    FloatValidator,
    IdResolver,
    IdValidator,
    Int64Validator,
    LiteralValidator,
    NullValidator,
    ObjectValidator,
    OptionalValidator,
    RecordValidator,
    StringValidator,
    UnionValidator,
    Validator,
    v,
)
