"""A patch validates only the fields it changes: the rest of the document passed the same
validator when it was written. The result (values, field order) and every error must be
the ones validating the whole merged document gives."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from owlat.runtime import UNDEFINED, v
from owlat.runtime.application import Application
from owlat.runtime.errors import DocumentValidationError, OwlatError
from owlat.runtime.schema import define_table
from owlat.runtime.testing import in_mutation
from owlat.runtime.types import Int64


def nested(levels: int) -> Any:
    value: Any = 1.0
    for _ in range(levels):
        value = {"x": value}
    return value


TABLE = define_table(
    {
        "name": v.string(),
        "count": v.number(),
        "note": v.optional(v.string()),
        "links": v.optional(v.array(v.object({"url": v.string(), "at": v.number()}))),
        "state": v.union(v.literal("new"), v.literal("sent")),
        "big": v.optional(v.int64()),
        "extra": v.optional(v.any()),
    }
)
OLD_DOCUMENTS: tuple[dict[str, Any], ...] = (
    {"name": "a", "count": 1.0, "state": "new"},
    {
        "name": "ünï",
        "count": 2.5,
        "note": "n",
        "links": [{"url": "u", "at": 1.0}] * 3,
        "state": "sent",
        "big": Int64(7),
        "extra": nested(14),
    },
)
PATCHES: tuple[dict[str, Any], ...] = (
    {},
    {"count": 2},  # an int a v.number() normalizes to a float
    {"count": "2"},
    {"name": None},
    {"name": UNDEFINED},  # a required field removed
    {"note": UNDEFINED},
    {"note": "x", "state": "gone"},
    {"links": [{"url": "v", "at": 2.0}, {"url": "w"}]},
    {"links": [{"url": "v", "at": 2.0, "more": 1.0}]},
    {"unknown": 1.0},
    {"unknown": UNDEFINED},
    {"_hidden": 1.0},
    {"a-b": 1.0},
    {"big": 3},
    {"big": Int64(3)},
    {"extra": nested(15)},  # a document 17 levels deep
    {"extra": nested(14), "count": 3.0},
    {"state": "sent", "note": "later", "count": 4.0},
)


def validated(fields: dict[str, Any], patched: Any = None) -> tuple[Any, ...]:
    """What `validate` gives: the document and its field order, or the error's message."""
    try:
        result = TABLE.validate("t", fields, None, patched)
    except DocumentValidationError as error:
        return ("error", error.message)
    return ("ok", result, list(result))


@pytest.mark.parametrize(("old", "patch"), list(itertools.product(OLD_DOCUMENTS, PATCHES)), ids=str)
def test_validating_the_patched_fields_is_validating_the_document(
    old: dict[str, Any], patch: dict[str, Any]
) -> None:
    stored = TABLE.validate("t", old, None)
    removed = {name for name, value in patch.items() if value is UNDEFINED}
    merged = {name: value for name, value in {**stored, **patch}.items() if name not in removed}
    assert validated(dict(merged), patch.keys()) == validated(dict(merged))


def test_the_unchanged_fields_are_not_checked_again() -> None:
    # what the shortcut relies on: a field not patched is kept as validated when written
    # (here one that never was, to show it is not looked at)
    unchecked = {"name": "a", "count": 1.0, "state": "new", "links": "not a list"}
    assert TABLE.validate("t", unchecked, None, {"count"}) == unchecked
    with pytest.raises(DocumentValidationError, match=r"Path: \.links"):
        TABLE.validate("t", unchecked, None)


async def test_a_patch_stores_what_a_replace_of_the_merged_document_stores(
    app: Application,
) -> None:
    async def body(ctx: Any) -> tuple[Any, Any]:
        first = await ctx.db.insert("people", {"profile": {"age": 3}, "name": "p"})
        second = await ctx.db.insert("people", {"name": "p", "profile": {"age": 3}})
        await ctx.db.patch(first, {"big": 5, "name": "q", "friend": second})
        merged = {**(await ctx.db.get(second)), "big": 5, "name": "q", "friend": second}
        await ctx.db.replace(second, {k: x for k, x in merged.items() if k[0] != "_"})
        return await ctx.db.get(first), await ctx.db.get(second)

    patched, replaced = await in_mutation(app, body)
    assert (
        list(patched)
        == list(replaced)
        == [
            "_id",
            "_creationTime",
            "name",
            "profile",
            "friend",
            "big",
        ]
    )
    assert patched["big"] == replaced["big"] == Int64(5)


async def test_a_schema_invalid_patch_is_refused_with_its_precise_message(
    app: Application,
) -> None:
    async def insert(ctx: Any) -> str:
        person_id: str = await ctx.db.insert("people", {"name": "p", "profile": {"age": 3.0}})
        return person_id

    person_id = await in_mutation(app, insert)

    async def patch(ctx: Any) -> None:
        await ctx.db.patch(person_id, {"name": "q", "profile": {"age": "three"}})

    with pytest.raises(OwlatError) as caught:
        await in_mutation(app, patch)
    document = {"name": "q", "profile": {"age": "three"}}
    assert caught.value.message == (
        "Failed to insert or update a document in table 'people' because it does not match "
        'the schema: Value does not match validator.\nPath: .profile.age\nValue: "three"\n'
        "Validator: v.number()"
    )
    with pytest.raises(DocumentValidationError) as full:
        app.catalog.table("people").definition.validate("people", document, None)
    assert caught.value.message == full.value.message

    async def remove(ctx: Any) -> None:
        await ctx.db.patch(person_id, {"name": UNDEFINED})

    with pytest.raises(OwlatError, match="missing the required field `name`"):
        await in_mutation(app, remove)

    async def read(ctx: Any) -> Any:
        return await ctx.db.get(person_id)

    assert (await in_mutation(app, read))["name"] == "p"
