"""Tests for owlat.runtime.database.keys: the order-preserving encoding of Convex values."""

from __future__ import annotations

import functools
import math
import struct
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from owlat.runtime.database.keys import (
    compare_values,
    decode_key,
    decode_value,
    encode_key,
    encode_value,
    key_upper_bound,
    prefix_successor,
)
from owlat.runtime.errors import InvalidValueError
from owlat.runtime.types import UNDEFINED, Int64

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def _float_from_bits(bits: int) -> float:
    value: float = struct.unpack(">d", bits.to_bytes(8, "big"))[0]
    return value


def _bits(value: float) -> int:
    return int.from_bytes(struct.pack(">d", value), "big")


def _sign(n: int) -> int:
    return (n > 0) - (n < 0)


def _bytes_cmp(a: bytes, b: bytes) -> int:
    return (a > b) - (a < b)


def _compare_tuples(a: list[Any], b: list[Any]) -> int:
    for x, y in zip(a, b, strict=False):
        result = compare_values(x, y)
        if result:
            return result
    return _sign(len(a) - len(b))


_NAN_PAYLOAD = _float_from_bits(0x7FF0_0000_0000_0001)  # signalling NaN, smallest payload
_NEG_NAN = _float_from_bits(0xFFF8_0000_0000_0000)
_SPECIAL_FLOATS = [math.nan, _NEG_NAN, _NAN_PAYLOAD, math.inf, -math.inf, 0.0, -0.0, 5e-324]
_INT64_EDGES = [0, 1, -1, 127, 128, -128, -129, 32767, 32768, -32768, -32769]
_INT64_EDGES += [2**31 - 1, 2**31, -(2**31), -(2**31) - 1, INT64_MAX, INT64_MIN]

int64s = st.one_of(
    st.sampled_from(_INT64_EDGES), st.integers(min_value=INT64_MIN, max_value=INT64_MAX)
).map(Int64)
floats = st.one_of(
    st.sampled_from(_SPECIAL_FLOATS),
    st.floats(),
    st.integers(min_value=0, max_value=2**64 - 1).map(_float_from_bits),
)
strings = st.text(
    st.one_of(
        st.sampled_from(["\x00", "\x01", "a", "b", "ÿ", "é", "\U0001f600"]),
        st.characters(codec="utf-8"),
    )
)
binaries = st.one_of(st.binary(), st.lists(st.sampled_from([0, 1, 0x61, 0xFE, 0xFF])).map(bytes))
# Convex field names are printable ASCII (and never contain 0x00); a small pool for collisions.
field_names = st.one_of(
    st.sampled_from(["", "a", "b", "ab", "_id", "a b"]),
    st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=4),
)
scalars = st.one_of(st.none(), st.booleans(), int64s, floats, strings, binaries)
values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(field_names, children, max_size=4)
    ),
    max_leaves=12,
)
values_or_undefined = st.one_of(st.just(UNDEFINED), values)


@st.composite
def related_pairs(draw: st.DrawFn) -> tuple[Any, Any]:
    """Pairs that are often equal, prefixes of each other, or of the same type."""
    a = draw(values_or_undefined)
    choice = draw(st.integers(min_value=0, max_value=3))
    if choice == 0:
        return a, draw(values_or_undefined)
    if choice == 1:
        return a, a
    if isinstance(a, list):
        return a, a + draw(st.lists(values, max_size=2))
    if isinstance(a, dict):
        return a, {**a, **draw(st.dictionaries(field_names, values, max_size=2))}
    return a, draw(scalars)


# --- The order -------------------------------------------------------------------------------


def test_cross_type_order() -> None:
    ordered: list[Any] = [UNDEFINED, None, Int64(5), -1e300, False, "", b"", [], {}]
    for i, a in enumerate(ordered):
        for j, b in enumerate(ordered):
            assert compare_values(a, b) == _sign(i - j)
            assert _bytes_cmp(encode_value(a), encode_value(b)) == _sign(i - j)


def test_int64_sorts_before_every_float() -> None:
    assert compare_values(Int64(INT64_MAX), -math.inf) == -1
    assert compare_values(Int64(1), 0.5) == -1
    assert encode_value(Int64(INT64_MAX)) < encode_value(_NEG_NAN)


def test_float_total_order() -> None:
    ordered = [_NEG_NAN, -math.inf, -1e300, -1.0, -5e-324, -0.0, 0.0, 5e-324, 1.0, math.inf]
    ordered += [_NAN_PAYLOAD, math.nan]
    encodings = [encode_value(x) for x in ordered]
    assert encodings == sorted(encodings)
    assert len(set(encodings)) == len(encodings)
    by_compare = sorted(reversed(ordered), key=functools.cmp_to_key(compare_values))
    assert [_bits(x) for x in by_compare] == [_bits(x) for x in ordered]


def test_int64_order_across_widths() -> None:
    ordered = sorted(set(_INT64_EDGES))
    encodings = [encode_value(Int64(n)) for n in ordered]
    assert encodings == sorted(encodings)


@pytest.mark.parametrize(
    ("value", "encoding"),
    [
        (UNDEFINED, b"\x01"),
        (None, b"\x03"),
        (Int64(0), b"\x08"),
        (Int64(1), b"\x09\x01"),
        (Int64(-1), b"\x07\xff"),
        (Int64(128), b"\x0a\x00\x80"),
        (Int64(-129), b"\x06\xff\x7f"),
        (Int64(2**31), b"\x0c\x00\x00\x00\x00\x80\x00\x00\x00"),
        (Int64(INT64_MAX), b"\x0c\x7f" + b"\xff" * 7),
        (Int64(INT64_MIN), b"\x04\x80" + b"\x00" * 7),
        (0.0, b"\x0d\x80" + b"\x00" * 7),
        (-0.0, b"\x0d\x7f" + b"\xff" * 7),
        (1.0, b"\x0d\xbf\xf0" + b"\x00" * 6),
        (-1.0, b"\x0d\x40\x0f" + b"\xff" * 6),
        (math.inf, b"\x0d\xff\xf0" + b"\x00" * 6),
        (False, b"\x0e"),
        (True, b"\x0f"),
        ("", b"\x10\x00"),
        ("a\x00b", b"\x10a\x00\xffb\x00"),
        ("é", b"\x10\xc3\xa9\x00"),
        (b"\x00\xff", b"\x11\x00\xff\xff\x00"),
        ([], b"\x12\x00"),
        ([None, "x"], b"\x12\x03\x10x\x00\x00"),
        ({}, b"\x15\x00"),
        ({"b": True, "a": None}, b"\x15a\x00\x03b\x00\x0f\x00"),
        ({"": None}, b"\x15\x00\xff\x03\x00"),
    ],
)
def test_encoding_vectors(value: Any, encoding: bytes) -> None:
    # Byte layouts written from Convex's sorting.rs (tags, widths, escapes, field order).
    assert encode_value(value) == encoding
    decoded, end = decode_value(encoding)
    assert end == len(encoding)
    assert encode_value(decoded) == encoding


@given(related_pairs())
def test_encoding_preserves_order(pair: tuple[Any, Any]) -> None:
    a, b = pair
    expected = compare_values(a, b)
    assert expected in (-1, 0, 1)
    assert _bytes_cmp(encode_value(a), encode_value(b)) == expected
    assert compare_values(b, a) == -expected


def _extend(value: Any, data: st.DataObject) -> Any:
    """A value whose encoding extends `value`'s, when there is one (an escaped 0x00)."""
    if isinstance(value, str):
        return value + "\x00" + data.draw(strings)
    if isinstance(value, bytes):
        return value + b"\x00" + data.draw(binaries)
    if value == {}:
        return {"": data.draw(values)}
    return data.draw(values_or_undefined)


@given(values_or_undefined, st.data())
def test_encoding_is_self_delimiting(a: Any, data: st.DataObject) -> None:
    # Not strictly prefix-free (as in Convex): when one encoding is a proper prefix of
    # another, the longer one continues with 0xFF, above any tag that can follow a value.
    b = data.draw(st.one_of(values_or_undefined, st.just(_extend(a, data))))
    ea, eb = encode_value(a), encode_value(b)
    if ea != eb and eb.startswith(ea):
        assert eb[len(ea)] == 0xFF
        assert compare_values(a, b) == -1
    if ea != eb and ea.startswith(eb):
        assert ea[len(eb)] == 0xFF
        assert compare_values(a, b) == 1


@given(st.lists(values_or_undefined, max_size=4), st.lists(values_or_undefined, max_size=4))
def test_key_orders_like_tuple(a: list[Any], b: list[Any]) -> None:
    assert _bytes_cmp(encode_key(a), encode_key(b)) == _compare_tuples(a, b)


@given(st.lists(values_or_undefined, max_size=3), values_or_undefined, values_or_undefined)
def test_key_with_common_prefix(prefix: list[Any], x: Any, y: Any) -> None:
    assert _bytes_cmp(encode_key([*prefix, x]), encode_key([*prefix, y])) == compare_values(x, y)


@given(values_or_undefined)
def test_compare_reflexive_and_round_trip(value: Any) -> None:
    assert compare_values(value, value) == 0
    encoding = encode_value(value)
    decoded, end = decode_value(encoding)
    assert end == len(encoding)
    assert encode_value(decoded) == encoding
    assert compare_values(decoded, value) == 0


@given(st.lists(values_or_undefined, max_size=4))
def test_decode_key_round_trip(key: list[Any]) -> None:
    encoding = encode_key(key)
    decoded = decode_key(encoding)
    assert len(decoded) == len(key)
    assert encode_key(decoded) == encoding


@given(st.lists(values_or_undefined, min_size=3, max_size=8))
def test_compare_is_a_total_order(sample: list[Any]) -> None:
    ordered = sorted(sample, key=functools.cmp_to_key(compare_values))
    for i, a in enumerate(ordered):
        for b in ordered[i + 1 :]:
            assert compare_values(a, b) <= 0
            assert compare_values(b, a) >= 0
    encodings = [encode_value(v) for v in ordered]
    assert encodings == sorted(encodings)


@given(st.dictionaries(field_names, values, max_size=6), st.randoms())
def test_object_field_order_does_not_matter(obj: dict[str, Any], rng: Any) -> None:
    items = list(obj.items())
    rng.shuffle(items)
    shuffled = dict(items)
    assert encode_value(shuffled) == encode_value(obj)
    assert compare_values(shuffled, obj) == 0


def test_object_order_examples() -> None:
    ordered: list[dict[str, Any]] = [
        {},
        {"": None},
        {"a": None},
        {"a": Int64(1)},
        {"a": 1.0},
        {"a": 1.0, "b": None},
    ]
    ordered += [{"a": 2.0}, {"ab": None}, {"b": None}]
    for i, a in enumerate(ordered):
        for j, b in enumerate(ordered):
            assert compare_values(a, b) == _sign(i - j), (a, b)
            assert _bytes_cmp(encode_value(a), encode_value(b)) == _sign(i - j), (a, b)


def test_array_and_string_order_examples() -> None:
    ordered: list[Any] = ["", "\x00", "\x00\x00", "\x01", "a", "a\x00", "ab", "é", "\U0001f600"]
    ordered += [b"", b"\x00", b"\x00\xff", b"\x01", b"\xff", [], [None], [None, None]]
    ordered += [[Int64(1)], [1.0], [1.0, None], [2.0], [[]], [{}]]
    encodings = [encode_value(v) for v in ordered]
    assert encodings == sorted(encodings)
    assert sorted(ordered, key=functools.cmp_to_key(compare_values)) == ordered


def test_plain_int_is_a_float64() -> None:
    assert encode_value(5) == encode_value(5.0)
    assert compare_values(5, 5.0) == 0
    assert compare_values(5, Int64(5)) == 1
    with pytest.raises(InvalidValueError, match="float64"):
        encode_value(2**53 + 1)
    with pytest.raises(InvalidValueError, match="float64"):
        compare_values(10**400, 1.0)


def test_subclasses_are_normalized() -> None:
    class Name(str):
        pass

    class Number(float):
        pass

    assert encode_value(Name("x")) == encode_value("x")
    assert encode_value(Number(1.5)) == encode_value(1.5)
    assert compare_values(Name("x"), "x") == 0


@pytest.mark.parametrize(
    "value", [Int64(2**63), Int64(-(2**63) - 1), (1, 2), {1, 2}, object(), "\ud800", {1: None}]
)
def test_invalid_values_rejected(value: Any) -> None:
    with pytest.raises(InvalidValueError):
        encode_value(value)
    with pytest.raises(InvalidValueError):
        encode_value([value])


def test_decode_rejects_malformed() -> None:
    for data in [b"", b"\x02", b"\x10abc", b"\x0d\x00", b"\x0a\x00", b"\x12\x03", b"\xff"]:
        with pytest.raises(ValueError):  # noqa: PT011 - any ValueError subclass is fine
            decode_value(data)


# --- prefix_successor ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prefix", "successor"),
    [
        (b"", None),
        (b"\xff\xff", None),
        (b"a", b"b"),
        (b"a\xff", b"b"),
        (b"\x10abc\x00", b"\x10abc\x01"),
        (b"\x00\xff\xff", b"\x01"),
        (b"\xfe", b"\xff"),
    ],
)
def test_prefix_successor_examples(prefix: bytes, successor: bytes | None) -> None:
    assert prefix_successor(prefix) == successor


short_bytes = st.lists(st.sampled_from([0x00, 0x01, 0x61, 0xFE, 0xFF]), max_size=5).map(bytes)


@given(short_bytes, short_bytes, short_bytes)
def test_prefix_successor_bounds_exactly_the_prefixed_strings(
    prefix: bytes, head: bytes, tail: bytes
) -> None:
    successor = prefix_successor(prefix)
    for candidate in (prefix + tail, head, head + tail, prefix[:-1] + tail):
        if successor is None:
            assert prefix.strip(b"\xff") == b""
            continue
        in_range = prefix <= candidate < successor
        assert in_range == candidate.startswith(prefix)


@given(st.lists(values, min_size=1, max_size=3), values)
def test_prefix_successor_bounds_index_range(prefix_values: list[Any], rest: Any) -> None:
    prefix = encode_key(prefix_values)
    successor = prefix_successor(prefix)
    assert successor is not None  # encodings end in a byte other than 0xFF
    assert prefix <= encode_key([*prefix_values, rest]) < successor


def test_prefix_successor_is_looser_than_key_upper_bound() -> None:
    # Like Convex's Interval::prefix, the byte successor of "ab" also covers "ab\x00c".
    extension = encode_key(["ab\x00c", "id"])
    successor = prefix_successor(encode_key(["ab"]))
    assert successor is not None
    assert encode_key(["ab"]) < extension < successor
    assert extension > key_upper_bound(["ab"])
    assert encode_key([{"": None}]) > key_upper_bound([{}])


@given(st.lists(values_or_undefined, min_size=1, max_size=3), st.data())
def test_key_upper_bound_bounds_exactly_the_equal_prefix(
    prefix: list[Any], data: st.DataObject
) -> None:
    # A key of len(prefix) + 1 values whose leading values equal, extend or differ from
    # `prefix`: it is in [encode_key(prefix), key_upper_bound(prefix)) iff they are equal.
    leading = list(prefix)
    position = data.draw(st.integers(min_value=0, max_value=len(prefix) - 1))
    mutation = data.draw(st.sampled_from(["same", "extend", "other"]))
    if mutation == "extend":
        leading[position] = _extend(leading[position], data)
    elif mutation == "other":
        leading[position] = data.draw(values_or_undefined)
    key = encode_key([*leading, data.draw(values_or_undefined)])
    order = _compare_tuples(leading, prefix)
    if order == 0:
        assert encode_key(prefix) <= key < key_upper_bound(prefix)
    elif order > 0:
        assert key >= key_upper_bound(prefix)
    else:
        assert key < encode_key(prefix)
