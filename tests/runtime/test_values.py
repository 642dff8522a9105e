"""Tests for owlat.runtime.values: the value model, the encodings and the validators."""

from __future__ import annotations

import datetime
import enum
import math
import struct
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from owlat.runtime.errors import DeveloperError, InvalidValueError, ValidationError
from owlat.runtime.types import UNDEFINED, Int64
from owlat.runtime.values import (
    MAX_ARRAY_LENGTH,
    MAX_NESTING,
    MAX_OBJECT_FIELDS,
    ObjectValidator,
    OptionalValidator,
    Validator,
    convex_to_clean_json,
    convex_to_json,
    decode_stored,
    dumps,
    json_to_convex,
    loads,
    model,
    normalize_value,
    type_name,
    v,
    value_size,
)

NAN = math.nan
INF = math.inf
I64_MIN = Int64(-(2**63))
I64_MAX = Int64(2**63 - 1)


# --- helpers and strategies ----------------------------------------------------------------


def same(a: Any, b: Any) -> bool:
    """Structural equality of Convex values: NaN equals NaN, -0.0 is not 0.0, and a float
    is never equal to an Int64 (or a bool to a number)."""
    if type(a) is not type(b):
        return False
    if type(a) is float:
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)
    if type(a) is list:
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if type(a) is dict:
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return bool(a == b)


def roundtrip(value: Any) -> Any:
    return json_to_convex(loads(dumps(convex_to_json(value))))


keys = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=12).filter(
    lambda key: not key.startswith("$")
)
leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([NAN, -NAN, INF, -INF, -0.0, 0.0, 5e-324, 1.7976931348623157e308]),
    st.integers(min_value=-(2**63), max_value=2**63 - 1).map(Int64),
    st.sampled_from([I64_MIN, I64_MAX, Int64(0), Int64(-1)]),
    st.text(),  # hypothesis never generates lone surrogates by default
    st.binary(max_size=40),
)
convex_values = st.recursive(
    leaves,
    lambda children: st.lists(children, max_size=6) | st.dictionaries(keys, children, max_size=6),
    max_leaves=40,
)


def nested(depth: int) -> Any:
    value: Any = 1.0
    for _ in range(depth):
        value = [value]
    return value


def expect_invalid(func: Any, value: Any, message: str) -> None:
    with pytest.raises(InvalidValueError) as info:
        func(value)
    assert info.value.message == message


def expect_mismatch(validator: Validator, value: Any, message: str, **kwargs: Any) -> None:
    with pytest.raises(ValidationError) as info:
        validator.validate(value, **kwargs)
    assert info.value.message == message


# --- encoded JSON --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        (Int64(1), {"$integer": "AQAAAAAAAAA="}),
        (Int64(42), {"$integer": "KgAAAAAAAAA="}),
        (Int64(-1), {"$integer": "//////////8="}),
        (Int64(0), {"$integer": "AAAAAAAAAAA="}),
        (I64_MAX, {"$integer": "/////////38="}),
        (I64_MIN, {"$integer": "AAAAAAAAAIA="}),
        (NAN, {"$float": "AAAAAAAA+H8="}),
        (INF, {"$float": "AAAAAAAA8H8="}),
        (-INF, {"$float": "AAAAAAAA8P8="}),
        (-0.0, {"$float": "AAAAAAAAAIA="}),
        (b"hello", {"$bytes": "aGVsbG8="}),
        (b"", {"$bytes": ""}),
        (1.5, 1.5),
        (None, None),
        (True, True),
        ("héllo", "héllo"),
        ([Int64(1), 2.0], [{"$integer": "AQAAAAAAAAA="}, 2.0]),
        ({"a": {"b": b"\x00"}}, {"a": {"b": {"$bytes": "AA=="}}}),
    ],
)
def test_encoding_matches_the_reference(value: Any, encoded: Any) -> None:
    assert convex_to_json(value) == encoded
    assert same(json_to_convex(encoded), value)


def test_plain_floats_stay_json_numbers_with_a_decimal_point() -> None:
    assert dumps(convex_to_json(42.0)) == b"42.0"
    assert dumps(convex_to_json(0.0)) == b"0.0"
    assert dumps(convex_to_json({"n": 3.0, "big": 1e20})) == b'{"n":3.0,"big":1e+20}'
    assert type(convex_to_json(0.0)) is float


def test_a_stray_plain_int_is_encoded_as_a_float() -> None:
    assert dumps(convex_to_json({"n": 3})) == b'{"n":3.0}'


def test_convex_to_json_drops_undefined_fields_and_refuses_other_types() -> None:
    assert convex_to_json({"a": UNDEFINED, "b": (1.0,)}) == {"b": [1.0]}
    expect_invalid(
        convex_to_json,
        {1, 2},
        "Invalid value: unsupported type set: Convex "
        "values are None, bool, float, int, Int64, str, bytes, list and dict",
    )


def test_json_numbers_are_always_float64() -> None:
    decoded = json_to_convex(loads(b'{"n": 3, "m": -0, "f": 2.5}'))
    assert decoded == {"n": 3.0, "m": 0.0, "f": 2.5}
    assert all(type(x) is float for x in decoded.values())
    big = json_to_convex(loads(b"123456789012345678901234567890"))
    assert big == 1.2345678901234568e29
    assert json_to_convex(18446744073709551615) == 1.8446744073709552e19


@settings(max_examples=250, deadline=None)
@given(convex_values)
def test_encoded_json_roundtrips(value: Any) -> None:
    assert same(roundtrip(value), value)


@settings(max_examples=100, deadline=None)
@given(convex_values)
def test_stored_values_decode_to_themselves(value: Any) -> None:
    assert same(decode_stored(dumps(convex_to_json(value))), value)


def test_stored_strings_that_look_like_special_objects_stay_strings() -> None:
    value = {"text": '{"$integer": "AQAAAAAAAAA="}', "n": 3.0, "big": Int64(1)}
    assert same(decode_stored(dumps(convex_to_json(value))), value)
    plain = {"text": '{"$bytes": ""}', "nested": [{"a": 1.5}]}
    assert same(decode_stored(dumps(convex_to_json(plain))), plain)


@given(convex_values)
def test_canonical_values_are_fixed_points_of_normalize(value: Any) -> None:
    assert same(normalize_value(value), value)
    assert same(v.any().validate(value), value)


@settings(max_examples=100, deadline=None)
@given(convex_values)
def test_encoded_json_has_no_integer_numbers(value: Any) -> None:
    # Every JSON number the server writes must parse back as a float (the Rust client
    # rejects an integer where it expects a float64).
    def check(obj: Any) -> None:
        assert type(obj) is not int
        if type(obj) is list:
            for item in obj:
                check(item)
        elif type(obj) is dict:
            for item in obj.values():
                check(item)

    check(loads(dumps(convex_to_json(value))))


@pytest.mark.parametrize(
    ("encoded", "message"),
    [
        ({"$foo": 1.0}, "Invalid value: field name \"$foo\" starts with '$', which is reserved"),
        ({"$set": []}, "Invalid value: field name \"$set\" starts with '$', which is reserved"),
        (
            {"$integer": "AQAAAAAAAAA=", "x": 1},
            "Invalid value: field name \"$integer\" starts with '$', which is reserved",
        ),
        (
            {"a": {"b": {"$undefined": None}}},
            "Invalid value at .a.b: field name \"$undefined\" starts with '$', which is reserved",
        ),
        (
            {"$integer": "AQAAAAAAAA=="},
            "Invalid value: $integer must encode exactly 8 bytes, not 7",
        ),
        (
            {"$integer": "AQAAAAAAAAAA"},
            "Invalid value: $integer must encode exactly 8 bytes, not 9",
        ),
        ({"$float": "AAAAAAAA+A=="}, "Invalid value: $float must encode exactly 8 bytes, not 7"),
        ({"$integer": "AQAAAAAAAAA"}, 'Invalid value: $integer is not valid base64: "AQAAAAAAAAA"'),
        (
            {"$integer": "AQAAAAAA AAA="},
            'Invalid value: $integer is not valid base64: "AQAAAAAA AAA="',
        ),
        ({"$bytes": "a"}, 'Invalid value: $bytes is not valid base64: "a"'),
        ({"$bytes": "aGk*"}, 'Invalid value: $bytes is not valid base64: "aGk*"'),
        ({"$bytes": "aGl="}, 'Invalid value: $bytes is not canonical base64: "aGl="'),
        ({"$bytes": "é"}, 'Invalid value: $bytes is not valid base64: "é"'),
        ({"$integer": 1.0}, "Invalid value: $integer must be a base64 string, not float"),
        (
            {"$float": "AAAAAAAA+D8="},
            "Invalid value: $float 1.5 is an ordinary number and must be a JSON number",
        ),
        (
            {"$float": "AAAAAAAAAAA="},
            "Invalid value: $float 0.0 is an ordinary number and must be a JSON number",
        ),
        (
            {"$float": "AQAAAAAAAAA="},
            "Invalid value: $float 5e-324 is an ordinary number and must be a JSON number",
        ),
        (
            {"é": 1.0},
            "Invalid value: "
            "field name \"é\" has the invalid character '\\xe9': field names can only "
            "contain printable ASCII characters (code points 32-126)",
        ),
        (
            {"a\tb": 1.0},
            "Invalid value: "
            "field name \"a\\tb\" has the invalid character '\\t': field names can "
            "only contain printable ASCII characters (code points 32-126)",
        ),
        (
            {"a\x7f": 1.0},
            "Invalid value: "
            "field name \"a\\u007f\" has the invalid character '\\x7f': field names"
            " can only contain printable ASCII characters (code points 32-126)",
        ),
        (
            {"k" * 1025: 1.0},
            f'Invalid value: field name "{"k" * 40}..." is longer than 1024 characters',
        ),
    ],
)
def test_json_to_convex_rejects_malformed_input(encoded: Any, message: str) -> None:
    expect_invalid(json_to_convex, encoded, message)


def test_json_to_convex_rejects_lone_surrogates_with_the_path() -> None:
    expect_invalid(
        json_to_convex,
        {"a": ["ok", "x\ud800"]},
        "Invalid value at .a[1]: string contains the lone surrogate U+D800 at index 1; "
        "strings must be valid Unicode",
    )


def test_json_to_convex_limits() -> None:
    assert json_to_convex(nested(MAX_NESTING)) == nested(MAX_NESTING)
    expect_invalid(
        json_to_convex,
        nested(MAX_NESTING + 1),
        "Invalid value at " + "[0]" * MAX_NESTING + ": value is nested more than 64 levels deep",
    )
    assert len(json_to_convex([0.0] * MAX_ARRAY_LENGTH)) == MAX_ARRAY_LENGTH
    expect_invalid(
        json_to_convex,
        {"a": [0.0] * 8193},
        "Invalid value at .a: array has 8193 elements, more than the maximum of 8192",
    )
    fields = {f"f{i}": 0.0 for i in range(MAX_OBJECT_FIELDS)}
    assert json_to_convex(fields) == fields
    expect_invalid(
        json_to_convex,
        {**fields, "one_more": 0.0},
        "Invalid value: object has 1025 fields, more than the maximum of 1024",
    )


def test_loads_and_dumps() -> None:
    assert loads('{"a": [1, 2.5, "x"]}') == {"a": [1, 2.5, "x"]}
    assert loads(b"null") is None
    with pytest.raises(InvalidValueError, match=r"^Malformed JSON: "):
        loads(b'{"a": ')
    with pytest.raises(InvalidValueError, match=r"^Malformed JSON: "):
        loads(b"NaN")
    assert dumps({"b": 1.0, "a": None}, sort_keys=True) == b'{"a":null,"b":1.0}'
    with pytest.raises(InvalidValueError, match=r"^Cannot encode as JSON: "):
        dumps({"a": {1, 2}})


# --- normalize_value -----------------------------------------------------------------------


class Color(enum.IntEnum):
    RED = 1


class Kind(enum.StrEnum):
    NEWS = "news"


def test_normalize_converts_python_input() -> None:
    value = normalize_value(
        {
            "n": 3,
            "t": (1, "x"),
            "b": bytearray(b"ab"),
            "m": memoryview(b"cd"),
            "u": UNDEFINED,
            "i": Int64(7),
            "e": Color.RED,
            "s": Kind.NEWS,
            Kind.NEWS: None,
            "f": True,
        }
    )
    assert same(
        value,
        {
            "n": 3.0,
            "t": [1.0, "x"],
            "b": b"ab",
            "m": b"cd",
            "i": Int64(7),
            "e": 1.0,
            "s": "news",
            "news": None,
            "f": True,
        },
    )
    assert type(value["s"]) is str
    assert all(type(key) is str for key in value)


def test_normalize_builds_fresh_containers() -> None:
    inner = [1.0]
    original: dict[str, Any] = {"a": inner}
    value = normalize_value(original)
    inner.append(2.0)
    original["b"] = 3.0
    assert value == {"a": [1.0]}


def test_normalize_exact_ints_become_floats() -> None:
    assert same(normalize_value(2**53), 9007199254740992.0)
    assert same(normalize_value(-(2**60)), float(-(2**60)))
    assert same(normalize_value(0), 0.0)


def test_normalize_refuses_inexact_ints() -> None:
    expect_invalid(
        normalize_value,
        {"a": [0, 2**53 + 1]},
        "Invalid value at .a[1]: the int 9007199254740993 cannot be represented exactly as a "
        "Convex number (float64); wrap it in Int64(...) to store a 64-bit integer, or pass a "
        "float",
    )
    with pytest.raises(InvalidValueError, match="cannot be represented exactly"):
        normalize_value(10**400)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            UNDEFINED,
            "Invalid value: UNDEFINED is not a Convex value; it is only allowed as an "
            "object field's value, where it means the field is absent",
        ),
        (
            [UNDEFINED],
            "Invalid value at [0]: UNDEFINED is not a Convex value; it is only "
            "allowed as an object field's value, where it means the field is absent",
        ),
        (
            {"a": [1, 2, {"b": {1}}]},
            "Invalid value at .a[2].b: unsupported type set: Convex "
            "values are None, bool, float, int, Int64, str, bytes, list and dict",
        ),
        (
            datetime.date(2024, 1, 1),
            "Invalid value: unsupported type date: Convex values are "
            "None, bool, float, int, Int64, str, bytes, list and dict",
        ),
        (
            {"x": object()},
            "Invalid value at .x: unsupported type object: Convex values are "
            "None, bool, float, int, Int64, str, bytes, list and dict",
        ),
        (
            {"a": {"$b": 1}},
            "Invalid value at .a: field name \"$b\" starts with '$', which is reserved",
        ),
        ({1: 1}, "Invalid value: object keys must be strings, not int (1)"),
        (
            {"ok": {"\u00e9": 1}},
            'Invalid value at .ok: field name "é" has the invalid '
            "character '\\xe9': field names can only contain printable ASCII characters "
            "(code points 32-126)",
        ),
        (
            "bad \udfff",
            "Invalid value: string contains the lone surrogate U+DFFF at index 4; "
            "strings must be valid Unicode",
        ),
        (
            {"k": "\ud83d"},
            "Invalid value at .k: string contains the lone surrogate U+D83D at "
            "index 0; strings must be valid Unicode",
        ),
        (
            Int64(2**63),
            "Invalid value: Int64 9223372036854775808 is outside the int64 range "
            "[-2**63, 2**63 - 1]",
        ),
        (
            Int64(-(2**63) - 1),
            "Invalid value: Int64 -9223372036854775809 is outside the int64 "
            "range [-2**63, 2**63 - 1]",
        ),
    ],
)
def test_normalize_rejects_invalid_values(value: Any, message: str) -> None:
    expect_invalid(normalize_value, value, message)


def test_normalize_path_prefix() -> None:
    with pytest.raises(InvalidValueError) as info:
        normalize_value({"b": {1}}, path=".args")
    assert info.value.message.startswith("Invalid value at .args.b: unsupported type set")


def test_normalize_limits() -> None:
    assert normalize_value(nested(MAX_NESTING)) == nested(MAX_NESTING)
    with pytest.raises(InvalidValueError, match="nested more than 64 levels deep"):
        normalize_value(nested(MAX_NESTING + 1))
    with pytest.raises(InvalidValueError, match="nested more than 64 levels deep"):
        normalize_value({"a": nested(MAX_NESTING)})
    assert len(normalize_value((0.0,) * MAX_ARRAY_LENGTH)) == MAX_ARRAY_LENGTH
    expect_invalid(
        normalize_value,
        [0.0] * 8193,
        "Invalid value: array has 8193 elements, more than the maximum of 8192",
    )
    fields = {f"f{i}": 0.0 for i in range(MAX_OBJECT_FIELDS)}
    assert normalize_value({**fields, "gone": UNDEFINED}) == fields
    expect_invalid(
        normalize_value,
        {**fields, "x": 1.0},
        "Invalid value: object has 1025 fields, more than the maximum of 1024",
    )
    assert normalize_value({"k" * 1024: 1.0}) == {"k" * 1024: 1.0}
    with pytest.raises(InvalidValueError, match="longer than 1024 characters"):
        normalize_value({"k" * 1025: 1.0})
    assert normalize_value({"": 1.0, " ~": 2.0}) == {"": 1.0, " ~": 2.0}


# --- clean JSON, sizes, type names ---------------------------------------------------------


def test_convex_to_clean_json() -> None:
    value = {
        "i": Int64(-5),
        "b": b"hi",
        "n": NAN,
        "p": INF,
        "m": -INF,
        "z": -0.0,
        "f": 1.5,
        "s": "x",
        "l": [None, True, Int64(2**62)],
    }
    clean = convex_to_clean_json(value)
    assert clean == {
        "i": "-5",
        "b": "aGk=",
        "n": "NaN",
        "p": "Infinity",
        "m": "-Infinity",
        "z": 0.0,
        "f": 1.5,
        "s": "x",
        "l": [None, True, "4611686018427387904"],
    }
    assert math.copysign(1.0, clean["z"]) == -1.0
    assert dumps(clean).startswith(b'{"i":"-5","b":"aGk=","n":"NaN"')


def test_value_size() -> None:
    assert value_size(None) == 1
    assert value_size(True) == 1
    assert value_size(1.5) == 9
    assert value_size(Int64(3)) == 9
    assert value_size("abc") == 5
    assert value_size("é") == 4  # two UTF-8 bytes
    assert value_size(b"\x00" * 10) == 12
    assert value_size([1.0, "a"]) == 2 + 9 + 3
    assert value_size({"ab": None}) == 2 + 2 + 1 + 1
    assert value_size({"doc": ["x" * 1000]}) == 2 + 4 + 2 + 1002


@pytest.mark.parametrize(
    ("value", "name"),
    [
        ("s", "string"),
        (1.0, "float64"),
        (1, "float64"),
        (Int64(1), "int64"),
        (True, "boolean"),
        (None, "null"),
        (b"", "bytes"),
        (bytearray(), "bytes"),
        ([], "array"),
        ((), "array"),
        ({}, "object"),
        (UNDEFINED, "undefined"),
    ],
)
def test_type_name(value: Any, name: str) -> None:
    assert type_name(value) == name


def test_type_name_refuses_unsupported_types() -> None:
    with pytest.raises(InvalidValueError, match="unsupported type set"):
        type_name({1})


# --- validators: scalars -------------------------------------------------------------------


def mismatch(path: str, shown: str, validator: str) -> str:
    return f"Value does not match validator.\nPath: {path}\nValue: {shown}\nValidator: {validator}"


def test_string_validator() -> None:
    assert v.string().validate("hé") == "hé"
    assert type(v.string().validate(Kind.NEWS)) is str
    expect_mismatch(v.string(), 12.0, mismatch(".", "12.0", "v.string()"))
    expect_mismatch(v.string(), 12, mismatch(".", "12.0", "v.string()"))
    expect_mismatch(v.string(), None, mismatch(".", "null", "v.string()"))
    expect_mismatch(v.string(), b"x", mismatch(".", "<1 bytes>", "v.string()"))
    with pytest.raises(ValidationError, match="lone surrogate U\\+D800"):
        v.string().validate("\ud800")


def test_number_validator() -> None:
    for validator in (v.number(), v.float64()):
        assert same(validator.validate(3), 3.0)
        assert same(validator.validate(-0.0), -0.0)
        assert math.isnan(validator.validate(NAN))
        assert same(validator.validate(Color.RED), 1.0)
    expect_mismatch(v.number(), True, mismatch(".", "true", "v.number()"))
    expect_mismatch(v.float64(), Int64(3), mismatch(".", "3n", "v.float64()"))
    expect_mismatch(v.number(), "3", mismatch(".", '"3"', "v.number()"))
    expect_mismatch(
        v.number(),
        2**53 + 1,
        "Invalid value: the int 9007199254740993 cannot be represented exactly as a Convex "
        "number (float64); wrap it in Int64(...) to store a 64-bit integer, or pass a float",
    )


def test_int64_validator() -> None:
    assert same(v.int64().validate(Int64(5)), Int64(5))
    assert same(v.int64().validate(2**63 - 1), I64_MAX)
    assert same(v.int64().validate(-(2**63)), I64_MIN)
    expect_mismatch(v.int64(), 5.0, mismatch(".", "5.0", "v.int64()"))
    expect_mismatch(v.int64(), False, mismatch(".", "false", "v.int64()"))
    expect_mismatch(
        v.int64(),
        2**63,
        "Invalid value: Int64 9223372036854775808 is outside the int64 range [-2**63, 2**63 - 1]",
    )


def test_boolean_null_bytes_validators() -> None:
    assert v.boolean().validate(False) is False
    expect_mismatch(v.boolean(), 1, mismatch(".", "1.0", "v.boolean()"))
    assert v.null().validate(None) is None
    expect_mismatch(v.null(), UNDEFINED, mismatch(".", "undefined", "v.null()"))
    assert v.bytes().validate(bytearray(b"a")) == b"a"
    assert type(v.bytes().validate(memoryview(b"ab"))) is bytes
    expect_mismatch(v.bytes(), "YQ==", mismatch(".", '"YQ=="', "v.bytes()"))


def test_id_validator() -> None:
    tables = {"c1": "contacts", "l1": "lists"}
    assert v.id("contacts").validate("anything") == "anything"  # no resolver: any string
    assert v.id("contacts").validate("c1", ids=tables.get) == "c1"
    expect_mismatch(v.id("contacts"), 5.0, mismatch(".", "5.0", 'v.id("contacts")'))
    expect_mismatch(
        v.id("contacts"), "nope", mismatch(".", '"nope"', 'v.id("contacts")'), ids=tables.get
    )
    expect_mismatch(
        v.object({"contact": v.id("contacts")}),
        {"contact": "l1"},
        'Found ID "l1" from table `lists`, which does not match the table name in validator '
        '`v.id("contacts")`.\nPath: .contact',
        ids=tables.get,
    )


def test_literal_validator() -> None:
    assert v.literal("a").validate("a") == "a"
    assert same(v.literal(1).validate(1), 1.0)
    assert same(v.literal(1).validate(1.0), 1.0)
    assert same(v.literal(Int64(1)).validate(1), Int64(1))
    assert v.literal(True).validate(True) is True
    assert same(v.literal(0.0).validate(0), 0.0)
    assert math.isnan(v.literal(NAN).validate(NAN))
    cases = [
        (v.literal(1), True, "`true` does not match literal validator `v.literal(1.0)`."),
        (v.literal(True), 1, "`1.0` does not match literal validator `v.literal(true)`."),
        (v.literal(1), Int64(1), "`1n` does not match literal validator `v.literal(1.0)`."),
        (v.literal(Int64(1)), 1.0, "`1.0` does not match literal validator `v.literal(1n)`."),
        (v.literal("a"), "b", '`"b"` does not match literal validator `v.literal("a")`.'),
        (v.literal(0.0), -0.0, "`-0.0` does not match literal validator `v.literal(0.0)`."),
    ]
    for validator, value, headline in cases:
        expect_mismatch(validator, value, headline + "\nPath: .")


def test_any_validator() -> None:
    assert same(v.any().validate({"a": (1, b"x"), "u": UNDEFINED}), {"a": [1.0, b"x"]})
    expect_mismatch(
        v.object({"x": v.any()}),
        {"x": [{1}]},
        "Invalid value at .x[0]: "
        "unsupported type set: Convex values are None, bool, float, int, Int64, "
        "str, bytes, list and dict",
    )


# --- validators: containers ----------------------------------------------------------------

CONTACT = v.object(
    {"email": v.string(), "age": v.optional(v.number()), "tags": v.array(v.string())}
)
CONTACT_TEXT = (
    "v.object({email: v.string(), age: v.optional(v.number()), tags: v.array(v.string())})"
)


def test_object_validator_accepts_and_normalizes() -> None:
    assert CONTACT.validate({"email": "a@b", "age": 3, "tags": ("x",)}) == {
        "email": "a@b",
        "age": 3.0,
        "tags": ["x"],
    }
    out = CONTACT.validate({"email": "a@b", "tags": []})
    assert out == {"email": "a@b", "tags": []}
    assert "age" not in CONTACT.validate({"email": "a@b", "age": UNDEFINED, "tags": []})
    # a field set to UNDEFINED is absent, even one the validator does not know
    assert CONTACT.validate({"email": "a", "tags": [], "zzz": UNDEFINED}) == {
        "email": "a",
        "tags": [],
    }


def test_object_validator_messages() -> None:
    expect_mismatch(CONTACT, {"email": 12, "tags": []}, mismatch(".email", "12.0", "v.string()"))
    expect_mismatch(
        CONTACT, {"email": "a", "tags": ["x", None]}, mismatch(".tags[1]", "null", "v.string()")
    )
    expect_mismatch(
        CONTACT, {"email": "a", "age": None, "tags": []}, mismatch(".age", "null", "v.number()")
    )
    expect_mismatch(
        CONTACT,
        {"email": "a", "tags": [], "foo": 1},
        "Object contains extra field `foo` that is not in the validator.\nPath: .\n"
        f'Object: {{email: "a", tags: [], foo: 1.0}}\nValidator: {CONTACT_TEXT}',
    )
    expect_mismatch(
        CONTACT,
        {"tags": []},
        "Object is missing the required field `email`. Consider wrapping the field validator "
        "in `v.optional(...)` if this is expected.\nPath: .\n"
        f"Object: {{tags: []}}\nValidator: {CONTACT_TEXT}",
    )
    expect_mismatch(
        CONTACT,
        {"email": UNDEFINED, "tags": []},
        (
            "Object is missing the required field `email`. Consider wrapping the field validator "
            "in `v.optional(...)` if this is expected.\nPath: .\n"
            f"Object: {{email: undefined, tags: []}}\nValidator: {CONTACT_TEXT}"
        ),
    )
    expect_mismatch(CONTACT, ["email"], mismatch(".", '["email"]', CONTACT_TEXT))
    nested_validator = v.object({"inner": v.object({"x": v.number()})})
    expect_mismatch(
        nested_validator,
        {"inner": {"x": 1, "y": 2}},
        "Object contains extra field `y` that is not in the validator.\nPath: .inner\n"
        "Object: {x: 1.0, y: 2.0}\nValidator: v.object({x: v.number()})",
    )


def test_validate_path_prefix_and_long_values_are_cut() -> None:
    long_text = "x" * 500
    with pytest.raises(ValidationError) as info:
        v.object({"n": v.number()}).validate({"n": long_text}, path=".args")
    shown = info.value.message.split("\n")[2]
    assert info.value.message.startswith("Value does not match validator.\nPath: .args.n\n")
    assert shown.startswith('Value: "xxx')
    assert shown.endswith("...")
    assert len(shown) == len("Value: ") + 100


def test_array_validator() -> None:
    assert v.array(v.number()).validate((1, 2.5)) == [1.0, 2.5]
    expect_mismatch(v.array(v.number()), "12", mismatch(".", '"12"', "v.array(v.number())"))
    expect_mismatch(
        v.array(v.array(v.boolean())), [[True], [True, 0]], mismatch("[1][1]", "0.0", "v.boolean()")
    )
    with pytest.raises(ValidationError, match="array has 8193 elements"):
        v.array(v.null()).validate([None] * 8193)


def test_record_validator() -> None:
    scores = v.record(v.string(), v.number())
    assert scores.validate({"ann": 1, "bob": 2.5}) == {"ann": 1.0, "bob": 2.5}
    assert scores.validate({"ann": 1, "gone": UNDEFINED}) == {"ann": 1.0}
    expect_mismatch(scores, {"ann": "x"}, mismatch(".ann", '"x"', "v.number()"))
    expect_mismatch(
        scores, {"$x": 1.0}, "Invalid value: field name \"$x\" starts with '$', which is reserved"
    )
    kinds = v.record(v.union(v.literal("a"), v.literal("b")), v.null())
    assert kinds.validate({"a": None}) == {"a": None}
    expect_mismatch(
        v.object({"k": kinds}),
        {"k": {"c": None}},
        'Record key "c" does not match the key validator.\nPath: .k\n'
        'Validator: v.union(v.literal("a"), v.literal("b"))',
    )
    by_id = v.record(v.id("contacts"), v.boolean())
    expect_mismatch(
        by_id,
        {"l1": True},
        'Record key "l1" does not match the key validator.\nPath: .\nValidator: v.id("contacts")',
        ids={"l1": "lists"}.get,
    )
    with pytest.raises(DeveloperError, match=r"v\.record\(\) keys must be"):
        v.record(v.number(), v.number())


def test_union_validator() -> None:
    either = v.union(v.number(), v.string())
    assert either.validate(3) == 3.0
    assert either.validate("3") == "3"
    expect_mismatch(either, None, mismatch(".", "null", "v.union(v.number(), v.string())"))
    # first member that accepts wins
    assert same(v.union(v.int64(), v.number()).validate(3), Int64(3))
    assert same(v.union(v.number(), v.int64()).validate(3), 3.0)
    status = v.union(v.literal("draft"), v.literal("sent"))
    assert status.validate("sent") == "sent"
    assert type(v.union(v.literal("news"), v.literal("x")).validate(Kind.NEWS)) is str
    expect_mismatch(
        status, "gone", mismatch(".", '"gone"', 'v.union(v.literal("draft"), v.literal("sent"))')
    )
    # a single member reports its own error
    expect_mismatch(v.union(v.string()), 1.0, mismatch(".", "1.0", "v.string()"))
    expect_mismatch(v.union(), 1.0, mismatch(".", "1.0", "v.union()"))


def test_optional_validator() -> None:
    optional = v.optional(v.string())
    assert isinstance(optional, OptionalValidator)
    assert optional.is_optional
    assert not v.string().is_optional
    assert optional.inner is v.string()
    assert optional.validate(UNDEFINED) is UNDEFINED
    assert optional.validate("x") == "x"
    expect_mismatch(optional, None, mismatch(".", "null", "v.string()"))
    assert v.object({"x": v.optional(v.null())}).validate({"x": None}) == {"x": None}
    assert v.optional(optional) is optional
    for build in (
        lambda: v.array(optional),
        lambda: v.union(v.null(), optional),
        lambda: v.record(v.string(), optional),
    ):
        with pytest.raises(DeveloperError, match=r"v\.optional\(\) is only allowed"):
            build()


def test_invalid_definitions_are_developer_errors() -> None:
    with pytest.raises(DeveloperError, match=r"v\.literal\(\) takes"):
        v.literal([1])  # type: ignore[arg-type]
    with pytest.raises(DeveloperError, match="cannot be represented exactly"):
        v.literal(2**53 + 1)
    with pytest.raises(DeveloperError, match="starts with '\\$'"):
        v.object({"$x": v.string()})
    with pytest.raises(DeveloperError, match="needs a validator"):
        v.object({"x": "string"})  # type: ignore[dict-item]
    with pytest.raises(DeveloperError, match="needs a table name"):
        v.id("")


# --- validators: describe and to_json ------------------------------------------------------


def test_describe() -> None:
    assert CONTACT.describe() == CONTACT_TEXT
    assert repr(v.optional(v.number())) == "v.optional(v.number())"
    assert (
        v.union(
            v.literal("a"),
            v.literal(Int64(2)),
            v.literal(False),
            v.literal(NAN),
        ).describe()
        == 'v.union(v.literal("a"), v.literal(2n), v.literal(false), '
        "v.literal(NaN))"
    )
    assert v.record(v.id("t"), v.any()).describe() == 'v.record(v.id("t"), v.any())'
    assert v.array(v.bytes()).describe() == "v.array(v.bytes())"
    assert v.object({}).describe() == "v.object({})"


def test_to_json() -> None:
    assert v.string().to_json() == {"type": "string"}
    assert v.float64().to_json() == {"type": "number"}
    assert v.int64().to_json() == {"type": "bigint"}
    assert v.id("x").to_json() == {"type": "id", "tableName": "x"}
    assert v.literal(Int64(1)).to_json() == {
        "type": "literal",
        "value": {"$integer": "AQAAAAAAAAA="},
    }
    assert v.record(v.string(), v.null()).to_json() == {
        "type": "record",
        "keys": {"type": "string"},
        "values": {"fieldType": {"type": "null"}, "optional": False},
    }
    assert CONTACT.to_json() == {
        "type": "object",
        "value": {
            "email": {"fieldType": {"type": "string"}, "optional": False},
            "age": {"fieldType": {"type": "number"}, "optional": True},
            "tags": {
                "fieldType": {"type": "array", "value": {"type": "string"}},
                "optional": False,
            },
        },
    }
    assert v.union(v.boolean(), v.any(), v.bytes()).to_json() == {
        "type": "union",
        "value": [{"type": "boolean"}, {"type": "any"}, {"type": "bytes"}],
    }


def test_validator_attributes_and_equality() -> None:
    assert isinstance(CONTACT, ObjectValidator)
    assert list(CONTACT.fields) == ["email", "age", "tags"]
    assert v.array(v.null()).item == v.null()
    assert v.union(v.null(), v.string()).members == (v.null(), v.string())
    assert v.literal(2).value == 2.0
    assert v.object({"a": v.string()}) == v.object({"a": v.string()})
    assert v.object({"a": v.string()}) != v.object({"a": v.optional(v.string())})
    assert v.optional(v.string()) != v.string()


@settings(max_examples=50, deadline=None)
@given(st.dictionaries(keys, convex_values, max_size=5))
def test_any_and_record_accept_every_value(value: dict[str, Any]) -> None:
    assert same(v.record(v.string(), v.any()).validate(value), value)


def test_float_bits_survive_roundtrip() -> None:
    quiet_negative_nan = struct.unpack("<d", struct.pack("<Q", 0xFFF8000000000001))[0]
    back = roundtrip(quiet_negative_nan)
    assert struct.pack("<d", back) == struct.pack("<d", quiet_negative_nan)


def test_field_names_seen_before_are_still_checked() -> None:
    """Valid field names are remembered (model._VALID_KEYS) to skip re-testing them: a name
    equal to a remembered one but of a str subclass still becomes a plain str, invalid
    names are still refused, and the memory stays bounded."""

    class Name(str):
        pass

    assert normalize_value({"seenName": 1.0}) == {"seenName": 1.0}
    normalized = normalize_value({Name("seenName"): 1.0})
    assert isinstance(normalized, dict)
    ((key, _),) = normalized.items()
    assert type(key) is str
    for _ in range(2):
        with pytest.raises(InvalidValueError, match="reserved"):
            normalize_value({"$seen": 1.0})
    for number in range(model._VALID_KEYS_MAX + 10):
        assert normalize_value({f"k{number}": 1.0}) == {f"k{number}": 1.0}
    assert len(model._VALID_KEYS) <= model._VALID_KEYS_MAX
    with pytest.raises(InvalidValueError):
        normalize_value({"nul\x00": 1.0})
