"""Convex values as JSON: the wire's encoded JSON, the stored form, clean JSON, JSON text.

Encoded JSON (`convex_to_json` / `json_to_convex`, reference §3) is what the wire carries and
is invertible: finite floats other than -0.0 are JSON numbers (always written with a decimal
point or exponent: the Rust client rejects `42` where it expects a float); NaN, ±Infinity and
-0.0 are `{"$float": base64(8-byte little-endian IEEE 754)}`; int64 is
`{"$integer": base64(8-byte little-endian two's complement)}`; bytes are `{"$bytes": base64}`.
Every JSON number decodes to float64: only `$integer` makes an int64.

Clean JSON (`convex_to_clean_json`) is Convex's lossy export format for people and tools:
int64 as a decimal string, bytes as a base64 string, non-finite floats as "NaN"/"Infinity".

Export JSON (`convex_to_export_json` / `export_json_to_convex`) is Convex's lossless format of
snapshot exports (`ValueFormat::ConvexExportJSON`): int64 is a JSON integer (no decimal
point), a finite float a number with a decimal point or exponent (`-0.0` included), non-finite
floats and bytes keep their `{"$float"}` / `{"$bytes"}` objects.
"""

from __future__ import annotations

import base64
import binascii
import math
import struct
from typing import Any

import orjson

from owlat.runtime.errors import InvalidValueError
from owlat.runtime.types import UNDEFINED, Int64, JSONValue, Value
from owlat.runtime.values.model import (
    MAX_ARRAY_LENGTH,
    MAX_FIELD_NAME_LENGTH,
    MAX_NESTING,
    MAX_OBJECT_FIELDS,
    TOO_DEEP,
    Fault,
    check_int64,
    check_unicode,
    checked_key,
    int_text,
    int_to_float,
    invalid,
    normalize_at,
    normalize_value,
    quote,
    short,
)

_pack_f64 = struct.Struct("<d").pack
_unpack_f64 = struct.Struct("<d").unpack
_pack_i64 = struct.Struct("<q").pack
_unpack_i64 = struct.Struct("<q").unpack
_b64encode = base64.b64encode
_copysign = math.copysign

# --- encoded JSON --------------------------------------------------------------------------


def convex_to_json(value: Value) -> JSONValue:
    """Encode a Convex value as Convex's invertible JSON (see the module docstring)."""
    try:
        return _to_json(value)
    except Fault as fault:
        raise invalid(fault, "") from None


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
        check_int64(value)
        return {"$integer": _b64encode(_pack_i64(value)).decode("ascii")}
    if t is int:
        return _to_json(int_to_float(value))
    if t is bytes:
        return {"$bytes": _b64encode(value).decode("ascii")}
    return _to_json(normalize_at(value, 0))  # tuples, bytearrays, subclasses; or refused


def json_to_convex(obj: JSONValue) -> Value:
    """Decode Convex's encoded JSON (as parsed by `loads`) into a checked Convex value."""
    try:
        return _from_json(obj, 0)
    except Fault as fault:
        raise invalid(fault, "") from None


def _from_json(obj: JSONValue, depth: int) -> Value:
    t = type(obj)
    if t is str:
        if not obj.isascii():
            check_unicode(obj)
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
            raise Fault(f"the JSON number {int_text(obj)} is too large") from None
    raise Fault(f"unsupported JSON type {t.__name__}")


def _from_json_dict(obj: dict[Any, Any], depth: int) -> dict[str, Value]:
    if depth >= MAX_NESTING:
        raise Fault(TOO_DEEP)
    if len(obj) > MAX_OBJECT_FIELDS:
        raise Fault(f"object has {len(obj)} fields, more than the maximum of {MAX_OBJECT_FIELDS}")
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
                out[key] = _from_json(item, depth)
        except Fault as fault:
            fault.segments.append("." + key)
            raise
    return out


def _from_json_list(obj: list[Any], depth: int) -> list[Value]:
    if depth >= MAX_NESTING:
        raise Fault(TOO_DEEP)
    if len(obj) > MAX_ARRAY_LENGTH:
        raise Fault(f"array has {len(obj)} elements, more than the maximum of {MAX_ARRAY_LENGTH}")
    depth += 1
    out: list[Value] = []
    append = out.append
    for index, item in enumerate(obj):
        try:
            t = type(item)
            if t is str:
                if not item.isascii():
                    check_unicode(item)
                append(item)
            elif t is float or t is bool or item is None:
                append(item)
            else:
                append(_from_json(item, depth))
        except Fault as fault:
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
            raise Fault(f"$float {number!r} is an ordinary number and must be a JSON number")
        return number
    raise Fault(f"field name {quote(key)} starts with '$', which is reserved")


def _decode_base64(key: str, item: JSONValue, length: int | None) -> bytes:
    """Strict standard base64: padded, canonical (re-encodes to the same text), exact length."""
    if type(item) is not str:
        raise Fault(f"{key} must be a base64 string, not {type(item).__name__}")
    try:
        data = base64.b64decode(item, validate=True)
    except (binascii.Error, ValueError):
        raise Fault(f"{key} is not valid base64: {quote(short(item, 40))}") from None
    if _b64encode(data).decode("ascii") != item:
        raise Fault(f"{key} is not canonical base64: {quote(short(item, 40))}")
    if length is not None and len(data) != length:
        raise Fault(f"{key} must encode exactly {length} bytes, not {len(data)}")
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
    so orjson returns floats for them. (`data.find`, not `in`: `bytes.__contains__` first
    tries its argument as an integer and raises and clears a TypeError every call.)"""
    parsed = orjson.loads(data)
    return parsed if data.find(b'{"$') < 0 else json_to_convex(parsed)


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


# --- export JSON ---------------------------------------------------------------------------


def convex_to_export_json(value: Value) -> JSONValue:
    """Encode a Convex value as Convex's snapshot export JSON (see the module docstring)."""
    try:
        return _to_export(value)
    except Fault as fault:
        raise invalid(fault, "") from None


def _to_export(value: Value) -> JSONValue:
    t = type(value)
    if t is str or t is bool or value is None:
        return value
    if t is float:
        return value if value - value == 0.0 else _to_json(value)
    if t is dict:
        return {key: _to_export(item) for key, item in value.items() if item is not UNDEFINED}
    if t is list:
        return [_to_export(item) for item in value]
    if t is Int64:
        check_int64(value)
        return int(value)
    if t is bytes:
        return _to_json(value)
    return _to_export(normalize_value(value))  # ints, tuples, subclasses; or refused


def export_json_to_convex(obj: JSONValue) -> Value:
    """Decode snapshot export JSON (as parsed by `loads`) into a checked Convex value: JSON
    integers become int64, the rest is read as encoded JSON."""
    return json_to_convex(_integers_encoded(obj))


def _integers_encoded(obj: Any) -> Any:
    t = type(obj)
    if t is int:
        if not -(2**63) <= obj < 2**63:
            raise InvalidValueError(f"The integer {int_text(obj)} does not fit in an int64")
        return {"$integer": _b64encode(_pack_i64(obj)).decode("ascii")}
    if t is dict:
        return {key: _integers_encoded(item) for key, item in obj.items()}
    if t is list:
        return [_integers_encoded(item) for item in obj]
    return obj


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
