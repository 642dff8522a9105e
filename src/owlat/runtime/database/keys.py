"""Index keys: an order-preserving byte encoding of Convex values.

The order (Convex's `Ord for ConvexValue`, `crates/value/src/sorting.rs`):

    undefined (a missing field) < null < int64 < float64 < boolean < string < bytes
        < array < object

* int64 by value; every int64 sorts before every float64.
* float64 by IEEE 754 total order: -NaN < -inf < ... < -0.0 < 0.0 < ... < inf < NaN
  (NaNs further ordered by payload).
* false < true; strings by their UTF-8 bytes (the same as by code points); bytes bytewise.
* arrays element by element, a proper prefix first; objects field by field in field-name
  order (Convex objects are sorted maps), comparing name then value, a proper prefix first.

The encoding (Convex's sort keys, after FoundationDB's tuple layer), so that comparing the
bytes (memcmp: Python `bytes`, SQLite BLOB, PostgreSQL bytea) gives the order above. Every
value starts with a tag byte whose order is the type order:

    0x01 undefined          0x03 null
    0x04..0x0C int64        tag 0x08 alone is 0; 0x08 +/- k means a positive/negative number
                            of 2**(k-1) big-endian two's-complement bytes (1, 2, 4 or 8), so a
                            wider magnitude sorts further from zero
    0x0D float64            8 big-endian bytes of the IEEE bits: all inverted when the sign
                            bit is set, otherwise only the sign bit set
    0x0E false, 0x0F true
    0x10 string, 0x11 bytes the raw bytes with each 0x00 written as 0x00 0xFF, then 0x00
    0x12 array              each element's encoding, then 0x00
    0x15 object             for each field in name order: the name escaped as a string (an
                            empty name is 0x00 0xFF), the value's encoding; then 0x00

0x00 ends a string or a compound and sorts below every tag, which is why shorter sorts first;
an escaped 0x00 0xFF sorts above every terminator and tag. Field names must not contain
0x00 (Convex allows only printable ASCII), otherwise "" and "\\x00..." would misorder.

Each encoding is self-delimiting (a decoder knows where it ends), so the concatenation
`encode_key(values)` orders like the tuple of values, element by element. It is *not*
strictly prefix-free: "ab" (10 61 62 00) is a prefix of "ab\\x00c" (10 61 62 00 FF 63 00), and
{} (15 00) of {"": null} (15 00 FF 03 00). In every such case the longer encoding continues
with 0xFF, and in a key the byte after a complete value is a tag (0x01..0x15) or nothing.
Hence for range bounds:

* the keys whose leading values equal `values` are exactly those in
  [encode_key(values), key_upper_bound(values)), where key_upper_bound appends 0xFF;
* `prefix_successor(encode_key(values))` is a looser bound that also admits values that
  extend the last one by an escaped 0x00 (Convex's own `Interval::prefix` has that quirk).

Python values: None, bool, float, `Int64`, str, bytes, list, dict, and `UNDEFINED`. A plain
`int` is a float64 (as in JavaScript) and must be exactly representable as one.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Final

from owlat.runtime.errors import InvalidValueError
from owlat.runtime.types import UNDEFINED, Int64, Value

__all__ = [
    "compare_values",
    "decode_key",
    "decode_value",
    "encode_key",
    "encode_value",
    "key_upper_bound",
    "prefix_successor",
]

INT64_MIN: Final = -(2**63)
INT64_MAX: Final = 2**63 - 1

_F64: Final = struct.Struct(">d")
_I64: Final = struct.Struct(">q")
_TAG_I8: Final = struct.Struct(">Bb")
_TAG_I16: Final = struct.Struct(">Bh")
_TAG_I32: Final = struct.Struct(">Bi")
_TAG_I64: Final = struct.Struct(">Bq")
_INT_READERS: Final = {
    1: struct.Struct(">b"),
    2: struct.Struct(">h"),
    4: struct.Struct(">i"),
    8: _I64,
}
_INVERT: Final = bytes(255 - i for i in range(256))
# Float tag followed by the first byte with its sign bit set, for non-negative floats.
_FLOAT_HEAD: Final = tuple(bytes((0x0D, b | 0x80)) for b in range(256))


def encode_value(value: Value) -> bytes:
    """The order-preserving encoding of one value (`UNDEFINED` for a missing field)."""
    kind = type(value)
    if kind is str:
        try:
            return b"\x10%s\x00" % value.encode().replace(b"\x00", b"\x00\xff")
        except UnicodeEncodeError as error:
            raise InvalidValueError(f"String {value!r} is not valid Unicode") from error
    if kind is float:
        bits = _F64.pack(value)
        if bits[0] & 0x80:
            return b"\x0d" + bits.translate(_INVERT)
        return _FLOAT_HEAD[bits[0]] + bits[1:]
    if kind is Int64:
        return _encode_int64(value)
    if kind is bool:
        return b"\x0f" if value else b"\x0e"
    if value is None:
        return b"\x03"
    if kind is list:
        return b"\x12%s\x00" % b"".join([encode_value(item) for item in value])
    if kind is dict:
        return _encode_object(value)
    if kind is bytes:
        return b"\x11%s\x00" % value.replace(b"\x00", b"\x00\xff")
    if value is UNDEFINED:
        return b"\x01"
    return encode_value(_normalize(value))


def encode_key(values: Sequence[Value]) -> bytes:
    """The concatenated encodings of `values`; orders like the tuple of values."""
    return b"".join([encode_value(value) for value in values])


def _encode_int64(n: int) -> bytes:
    if n > 0:
        if n <= 0x7F:
            return _TAG_I8.pack(0x09, n)
        if n <= 0x7FFF:
            return _TAG_I16.pack(0x0A, n)
        if n <= 0x7FFF_FFFF:
            return _TAG_I32.pack(0x0B, n)
        if n <= INT64_MAX:
            return _TAG_I64.pack(0x0C, n)
    elif n < 0:
        if n >= -0x80:
            return _TAG_I8.pack(0x07, n)
        if n >= -0x8000:
            return _TAG_I16.pack(0x06, n)
        if n >= -0x8000_0000:
            return _TAG_I32.pack(0x05, n)
        if n >= INT64_MIN:
            return _TAG_I64.pack(0x04, n)
    else:
        return b"\x08"
    raise InvalidValueError(f"Int64({int(n)}) is out of the int64 range")


def _encode_object(value: dict[str, Value]) -> bytes:
    parts = [b"\x15"]
    for name in _sorted_names(value):
        if name:
            parts.append(b"%s\x00" % name.encode().replace(b"\x00", b"\x00\xff"))
        else:
            parts.append(b"\x00\xff")  # as Convex: "" must differ from the end of the object
        parts.append(encode_value(value[name]))
    parts.append(b"\x00")
    return b"".join(parts)


def _sorted_names(value: dict[str, Value]) -> list[str]:
    names = sorted(value) if all(type(name) is str for name in value) else None
    if names is None:
        for name in value:
            if not isinstance(name, str):
                raise InvalidValueError(f"Object field name {name!r} is not a string")
        names = sorted(value)
    return names


def _normalize(value: Value) -> Value:
    """Map subclasses and plain ints onto the canonical Python types; reject the rest."""
    if isinstance(value, Int64):
        return Int64(int(value))
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            as_float = float(value)
        except OverflowError:
            as_float = float("nan")
        if as_float != value:
            raise InvalidValueError(f"Integer {value} is not exactly representable as a float64")
        return as_float
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, float):
        return float.__float__(value)
    if isinstance(value, bytes):
        return bytes(value)
    if isinstance(value, list):
        return list(value)
    if isinstance(value, dict):
        return dict(value)
    raise InvalidValueError(f"{type(value).__name__} is not a Convex value: {value!r}")


# --- The reference order, written directly on Python values ---------------------------------

_RANK_UNDEFINED, _RANK_NULL, _RANK_INT64, _RANK_FLOAT64, _RANK_BOOLEAN = 0, 1, 2, 3, 4
_RANK_STRING, _RANK_BYTES, _RANK_ARRAY, _RANK_OBJECT = 5, 6, 7, 8


def _rank(value: Value) -> tuple[int, Value]:
    """(type rank, value in canonical Python form)."""
    kind = type(value)
    if kind is str:
        return _RANK_STRING, value
    if kind is float:
        return _RANK_FLOAT64, value
    if kind is Int64:
        if not INT64_MIN <= value <= INT64_MAX:
            raise InvalidValueError(f"Int64({int(value)}) is out of the int64 range")
        return _RANK_INT64, value
    if kind is bool:
        return _RANK_BOOLEAN, value
    if value is None:
        return _RANK_NULL, None
    if kind is list:
        return _RANK_ARRAY, value
    if kind is dict:
        return _RANK_OBJECT, value
    if kind is bytes:
        return _RANK_BYTES, value
    if value is UNDEFINED:
        return _RANK_UNDEFINED, value
    return _rank(_normalize(value))


def _float_order_key(x: float) -> int:
    """IEEE 754 totalOrder as an integer (Rust's `f64::total_cmp`)."""
    bits: int = _I64.unpack(_F64.pack(x))[0]
    return bits ^ 0x7FFF_FFFF_FFFF_FFFF if bits < 0 else bits


def _sign(less: bool, greater: bool) -> int:
    return -1 if less else (1 if greater else 0)


def compare_values(a: Value, b: Value) -> int:
    """-1, 0 or 1 as `a` sorts before, with, or after `b` in Convex's order."""
    rank_a, a = _rank(a)
    rank_b, b = _rank(b)
    if rank_a != rank_b:
        return -1 if rank_a < rank_b else 1
    if rank_a in (_RANK_STRING, _RANK_INT64, _RANK_BOOLEAN, _RANK_BYTES):
        return _sign(a < b, a > b)
    if rank_a == _RANK_FLOAT64:
        if a < b:
            return -1
        if a > b:
            return 1
        # Equal numbers, or a NaN: zeros differ by sign, NaNs by sign and payload.
        key_a, key_b = _float_order_key(a), _float_order_key(b)
        return _sign(key_a < key_b, key_a > key_b)
    if rank_a == _RANK_ARRAY:
        for item_a, item_b in zip(a, b, strict=False):
            result = compare_values(item_a, item_b)
            if result:
                return result
        return _sign(len(a) < len(b), len(a) > len(b))
    if rank_a == _RANK_OBJECT:
        names_a, names_b = _sorted_names(a), _sorted_names(b)
        for name_a, name_b in zip(names_a, names_b, strict=False):
            if name_a != name_b:
                return -1 if name_a < name_b else 1
            result = compare_values(a[name_a], b[name_b])
            if result:
                return result
        return _sign(len(a) < len(b), len(a) > len(b))
    return 0  # undefined, null


# --- Successor and decoding ------------------------------------------------------------------


def prefix_successor(prefix: bytes) -> bytes | None:
    """The smallest byte string greater than every string that starts with `prefix`.

    Drop trailing 0xFF bytes and increment the last remaining byte; None when nothing is
    left (`prefix` is empty or all 0xFF): then no upper bound exists.
    """
    stripped = prefix.rstrip(b"\xff")
    if not stripped:
        return None
    return stripped[:-1] + bytes((stripped[-1] + 1,))


def key_upper_bound(values: Sequence[Value]) -> bytes:
    """The exclusive upper bound of the keys whose leading values are exactly `values`.

    `encode_key(values) + b"\\xff"`: such keys continue after `encode_key(values)` with a tag
    (at most 0x15) or not at all, while keys of values that extend the last of `values` (a
    string with an escaped 0x00 after it, an object gaining an empty field name) continue
    with 0xFF. Use it as the exclusive end of `eq`/`lte` ranges and as the inclusive start
    of `gt` ranges; `encode_key(values)` is the inclusive start of `eq`/`gte` ranges and the
    exclusive end of `lt` ranges.
    """
    return encode_key(values) + b"\xff"


def _read_escaped(data: bytes, offset: int) -> tuple[bytes, int]:
    """An escaped, 0x00-terminated byte string at `offset`; returns (raw bytes, end)."""
    parts = []
    while True:
        end = data.index(b"\x00", offset)
        parts.append(data[offset:end])
        if data[end + 1 : end + 2] != b"\xff":
            return b"\x00".join(parts), end + 1
        offset = end + 2


_CONSTANTS: Final[dict[int, Value]] = {0x01: UNDEFINED, 0x03: None, 0x0E: False, 0x0F: True}


def decode_value(data: bytes, offset: int = 0) -> tuple[Value, int]:
    """Decode the value encoded at `data[offset:]`; returns (value, offset after it).

    For debugging and tests; raises `ValueError` on malformed input.
    """
    try:
        tag = data[offset]
    except IndexError:
        raise ValueError("unexpected end of key") from None
    offset += 1
    if tag == 0x10:
        raw, offset = _read_escaped(data, offset)
        return raw.decode(), offset
    if tag == 0x0D:
        bits = data[offset : offset + 8]
        if len(bits) != 8:
            raise ValueError("truncated float64")
        bits = bytes((bits[0] & 0x7F,)) + bits[1:] if bits[0] & 0x80 else bits.translate(_INVERT)
        return _F64.unpack(bits)[0], offset + 8
    if 0x04 <= tag <= 0x0C:
        if tag == 0x08:
            return Int64(0), offset
        width = 1 << (abs(tag - 0x08) - 1)
        chunk = data[offset : offset + width]
        if len(chunk) != width:
            raise ValueError("truncated int64")
        return Int64(_INT_READERS[width].unpack(chunk)[0]), offset + width
    if tag == 0x12:
        items = []
        while data[offset : offset + 1] != b"\x00":
            item, offset = decode_value(data, offset)
            items.append(item)
        return items, offset + 1
    if tag == 0x15:
        fields: dict[str, Value] = {}
        while True:
            if data[offset : offset + 2] == b"\x00\xff":
                name, offset = "", offset + 2
            elif data[offset : offset + 1] == b"\x00":
                return fields, offset + 1
            else:
                raw, offset = _read_escaped(data, offset)
                name = raw.decode()
            fields[name], offset = decode_value(data, offset)
    if tag == 0x11:
        return _read_escaped(data, offset)
    if tag in _CONSTANTS:
        return _CONSTANTS[tag], offset
    raise ValueError(f"unknown tag 0x{tag:02x} at offset {offset - 1}")


def decode_key(data: bytes) -> list[Value]:
    """Decode a concatenation of encodings (an `encode_key` result) into its values."""
    values, offset = [], 0
    while offset < len(data):
        value, offset = decode_value(data, offset)
        values.append(value)
    return values
