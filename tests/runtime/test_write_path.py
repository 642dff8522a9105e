"""The document write path: one-pass index keys, batched index entries, compiled
validation shortcuts and point reads counted once per document."""

from __future__ import annotations

import math
from typing import Any

import pytest

from owlat.runtime import UNDEFINED, internal, v
from owlat.runtime.application import Application
from owlat.runtime.database.catalog import IndexInfo, compile_index_keys
from owlat.runtime.errors import DocumentValidationError, LimitExceededError, ValidationError
from owlat.runtime.functions import internal_mutation
from owlat.runtime.schema import BY_ID, define_table
from owlat.runtime.testing import in_mutation, query_result
from owlat.runtime.types import Int64
from owlat.runtime.values import (
    convex_to_json,
    decode_stored,
    dumps,
    encode_stored,
    json_to_convex,
)
from owlat.runtime.values.ids import new_id

# Index layouts that share fields, repeat nested paths and have none (by_creation_time).
LAYOUTS = (
    (),
    ("a",),
    ("a", "b"),
    ("b", "a"),
    ("n.x",),
    ("a", "n.x", "n.y.z"),
    ("missing",),
)
VALUES: tuple[Any, ...] = (
    UNDEFINED,
    None,
    True,
    False,
    0.0,
    -0.0,
    1.5,
    -2.5e300,
    math.inf,
    math.nan,
    Int64(0),
    Int64(-(2**63)),
    Int64(2**63 - 1),
    "",
    "text",
    "nul\x00inside",
    "ünïcode ✓",
    b"",
    b"\x00\xff",
    [],
    [1.0, "x", [None]],
    {},
    {"": None, "k": {"deep": [b"x"]}},
)


def _document(a: Any, b: Any, x: Any) -> dict[str, Any]:
    document: dict[str, Any] = {"_id": new_id(10001), "_creationTime": 1.7e12 + 0.25}
    for name, value in (("a", a), ("b", b)):
        if value is not UNDEFINED:
            document[name] = value
    if x is not UNDEFINED:
        document["n"] = {"x": x, "y": {"z": a}} if x is not None else x
    return document


def test_compiled_index_keys_equal_each_index_key() -> None:
    indexes = [
        IndexInfo(number, "t", f"i{number}", fields) for number, fields in enumerate(LAYOUTS)
    ]
    keys_of = compile_index_keys(indexes)
    for position, a in enumerate(VALUES):
        b = VALUES[(position * 7 + 3) % len(VALUES)]
        x = VALUES[(position * 5 + 1) % len(VALUES)]
        document = _document(a, b, x)
        assert keys_of(document) == tuple(index.key(document) for index in indexes)
    assert compile_index_keys([])(_document(1.0, 2.0, 3.0)) == ()


def test_union_members_are_tried_in_order_as_before() -> None:
    assert v.union(v.number(), v.int64()).validate(5) == 5.0
    assert type(v.union(v.int64(), v.number()).validate(5)) is Int64
    assert v.union(v.string(), v.number(), v.boolean()).validate(True) is True
    # an int a float cannot hold: v.number() refuses it, so v.int64() takes it
    assert v.union(v.number(), v.int64()).validate(2**60 + 1) == Int64(2**60 + 1)
    with pytest.raises(ValidationError) as caught:
        v.union(v.number(), v.string()).validate(2**60 + 1)
    assert caught.value.message == (
        "Value does not match validator.\nPath: .\nValue: 1152921504606846977\n"
        "Validator: v.union(v.number(), v.string())"
    )
    # subclasses and other types still go through every member
    assert v.union(v.null(), v.array(v.string())).validate(("a",)) == ["a"]
    assert v.union(v.literal(1), v.literal("1")).validate("1") == "1"


def test_object_field_shortcuts_still_check_what_they_skip() -> None:
    validator = v.object({"s": v.string(), "f": v.number(), "b": v.boolean(), "n": v.null()})
    assert validator.validate({"s": "x", "f": 2, "b": False, "n": None}) == {
        "s": "x",
        "f": 2.0,
        "b": False,
        "n": None,
    }
    with pytest.raises(ValidationError, match="lone surrogate U\\+D800"):
        validator.validate({"s": "\ud800", "f": 1.0, "b": True, "n": None})
    with pytest.raises(ValidationError, match="Path: .b\nValue: 1.0\nValidator: v.boolean"):
        validator.validate({"s": "x", "f": 1.0, "b": 1, "n": None})


def test_record_keys_are_checked_with_the_same_messages() -> None:
    record = v.record(v.string(), v.number())
    assert record.validate({"a b": 1, "drop": UNDEFINED}) == {"a b": 1.0}
    with pytest.raises(ValidationError, match="starts with '\\$', which is reserved"):
        record.validate({"$x": 1.0})
    with pytest.raises(ValidationError, match="invalid character '\\\\x7f'"):
        record.validate({"a\x7f": 1.0})
    with pytest.raises(ValidationError, match='Record key "b" does not match'):
        v.record(v.literal("a"), v.number()).validate({"b": 1.0})


def test_document_depth_is_checked_whatever_bounds_it() -> None:
    def nested(levels: int) -> Any:
        value: Any = 1.0
        for _ in range(levels):
            value = {"x": value}
        return value

    shallow = define_table({"o": v.object({"x": v.object({"x": v.number()})})})
    assert shallow.validate("t", {"o": nested(2)}, None) == {"o": nested(2)}
    loose = define_table({"o": v.any()})
    assert loose.validate("t", {"o": nested(15)}, None) == {"o": nested(15)}
    with pytest.raises(DocumentValidationError) as caught:
        loose.validate("t", {"o": nested(16)}, None)
    assert caught.value.message == "Document in table 't' is nested 17 levels deep; the limit is 16"
    deep_validator: Any = v.number()
    for _ in range(16):
        deep_validator = v.object({"x": deep_validator})
    deep = define_table({"o": deep_validator})
    with pytest.raises(DocumentValidationError, match="nested 17 levels deep"):
        deep.validate("t", {"o": nested(16)}, None)
    untyped = define_table()
    with pytest.raises(DocumentValidationError, match="nested 17 levels deep"):
        untyped.validate("t", {"o": nested(16)}, None)


def test_field_names_are_still_checked_first() -> None:
    table = define_table({"name": v.string()})
    with pytest.raises(DocumentValidationError, match="field '_x' is not allowed"):
        table.validate("t", {"name": "n", "_x": 1.0}, None)
    with pytest.raises(DocumentValidationError, match="field name 'a-b' is not a valid"):
        table.validate("t", {"a-b": 1.0}, None)
    with pytest.raises(DocumentValidationError, match="extra field `other`"):
        table.validate("t", {"name": "n", "other": 1.0}, None)


async def test_repeated_reads_of_one_document_count_as_one_range(app: Application) -> None:
    async def bump_many(ctx: Any) -> float:
        counter_id = await ctx.db.insert("counters", {"name": "hot", "count": 0})
        for _ in range(5000):
            counter = await ctx.db.get(counter_id)
            await ctx.db.patch(counter_id, {"count": counter["count"] + 1})
        final = await ctx.db.get(counter_id)
        return float(final["count"])

    assert await in_mutation(app, bump_many) == 5000.0

    async def read_twice(ctx: Any) -> None:
        (counter,) = await ctx.db.query("counters").collect()
        assert await ctx.db.get(counter["_id"]) == await ctx.db.get(counter["_id"])

    result = await query_result(app, read_twice)
    assert result.read_set is not None
    assert len(result.read_set.intervals("counters", BY_ID)) == 1


async def test_distinct_point_reads_still_count_against_the_range_limit(
    app: Application,
) -> None:
    number = app.catalog.table("counters").number
    ids = [new_id(number) for _ in range(app.limits.max_index_ranges + 1)]

    async def read_all(ctx: Any) -> None:
        for document_id in ids:
            assert await ctx.db.get(document_id) is None

    with pytest.raises(LimitExceededError, match="Too many index ranges read"):
        await in_mutation(app, read_all)

    async def read_one_often(ctx: Any) -> None:
        for _ in range(app.limits.max_index_ranges + 1):
            assert await ctx.db.get(ids[0]) is None

    await in_mutation(app, read_one_often)


async def test_index_entries_follow_inserts_patches_and_deletes(app: Application) -> None:
    async def by_tag_value(ctx: Any, tag: Any, value: Any) -> list[str]:
        rows = await (
            ctx.db.query("items")
            .with_index("by_tag_value", lambda q: q.eq("tag", tag).eq("value", value))
            .collect()
        )
        return [row["_id"] for row in rows]

    async def write(ctx: Any) -> list[str]:
        ids = [await ctx.db.insert("items", {"value": float(n), "tag": "t"}) for n in range(3)]
        await ctx.db.patch(ids[0], {"value": 10.0, "tag": "u"})  # both indexes change
        await ctx.db.patch(ids[1], {"tag": "u"})  # only by_tag_value changes
        await ctx.db.patch(ids[2], {"tag": "t"})  # nothing changes
        await ctx.db.delete(ids[1])
        return ids

    ids = await in_mutation(app, write)

    async def check(ctx: Any) -> None:
        assert await by_tag_value(ctx, "t", 0.0) == []
        assert await by_tag_value(ctx, "u", 10.0) == [ids[0]]
        assert await by_tag_value(ctx, "u", 1.0) == []
        assert await by_tag_value(ctx, "t", 1.0) == []
        assert await by_tag_value(ctx, "t", 2.0) == [ids[2]]
        by_value = await ctx.db.query("items").with_index("by_value").collect()
        assert [row["_id"] for row in by_value] == [ids[2], ids[0]]
        everything = await ctx.db.query("items").collect()
        assert [row["_id"] for row in everything] == [ids[0], ids[2]]

    await in_mutation(app, check)


def test_documents_are_stored_as_their_encoded_json() -> None:
    for value in VALUES:
        if value is UNDEFINED:
            continue
        document = {"_id": "x", "f": value, "nested": {"list": [value, "s"], "gone": UNDEFINED}}
        assert encode_stored(document) == dumps(convex_to_json(document))
        assert decode_stored(encode_stored(document)) == json_to_convex(
            convex_to_json(document)
        ) or math.isnan(value)
    assert encode_stored({"n": 1}) == b'{"n":1.0}'  # a plain int is a number
    assert encode_stored([1.0, -0.0]) == dumps(convex_to_json([1.0, -0.0]))


async def test_reads_of_own_writes_see_each_write_and_no_undone_one(app: Application) -> None:
    async def failing(ctx: Any, args: Any) -> None:
        await ctx.db.patch(args["id"], {"count": 99.0})
        await ctx.db.insert("counters", {"name": "undone", "count": 1.0})
        raise ValueError("undo the sub-mutation")

    app.package.functions.add("adhoc:undone", internal_mutation(failing))

    async def body(ctx: Any) -> list[Any]:
        seen: list[Any] = []
        counter_id = await ctx.db.insert("counters", {"name": "c", "count": 1.0})
        first = await ctx.db.get(counter_id)
        first["count"] = -1.0  # the caller's copy: later reads do not see this
        seen.append((await ctx.db.get(counter_id))["count"])
        await ctx.db.patch(counter_id, {"count": 2.0})
        seen.append((await ctx.db.get(counter_id))["count"])
        with pytest.raises(ValueError, match="undo the sub-mutation"):
            await ctx.run_mutation(internal.adhoc.undone, {"id": counter_id})
        seen.append((await ctx.db.get(counter_id))["count"])
        names = [row["name"] for row in await ctx.db.query("counters").collect()]
        seen.append(names)
        await ctx.db.delete(counter_id)
        seen.append(await ctx.db.get(counter_id))
        return seen

    assert await in_mutation(app, body) == [1.0, 2.0, 2.0, ["c"], None]
