"""ctx.db writes and point reads: insert/get/patch/replace/delete, validation, rollback."""

from __future__ import annotations

from typing import Any

import pytest

from owlat.runtime import UNDEFINED, ConvexError, Int64
from owlat.runtime.application import Application
from owlat.runtime.errors import (
    DocumentNotFoundError,
    DocumentValidationError,
    InvalidIdError,
    LimitExceededError,
    ReadOnlyError,
    SchemaError,
)
from owlat.runtime.testing import in_mutation, in_query
from owlat.runtime.values.ids import encode_id


async def count(app: Application, table: str) -> int:
    async def handler(ctx: Any) -> int:
        return len(await ctx.db.query(table).collect())

    return int(await in_query(app, handler))


async def test_insert_then_get_returns_document_with_system_fields(app: Application) -> None:
    async def write(ctx: Any) -> Any:
        return await ctx.db.insert("messages", {"channel": "c", "body": "b", "author": "ann"})

    message_id = await in_mutation(app, write)

    async def read(ctx: Any) -> Any:
        return await ctx.db.get(message_id)

    document = await in_query(app, read)
    assert document["_id"] == message_id
    assert isinstance(document["_creationTime"], float)
    assert {k: document[k] for k in ("channel", "body", "author")} == {
        "channel": "c",
        "body": "b",
        "author": "ann",
    }
    assert app.catalog.table_name_of_id(message_id) == "messages"


async def test_get_accepts_table_name_first_and_rejects_ids_of_other_tables(
    app: Application,
) -> None:
    async def write(ctx: Any) -> Any:
        return await ctx.db.insert("counters", {"name": "n", "count": 1})

    counter_id = await in_mutation(app, write)

    async def read(ctx: Any) -> Any:
        return await ctx.db.get("counters", counter_id)

    assert (await in_query(app, read))["name"] == "n"

    async def wrong_table(ctx: Any) -> Any:
        return await ctx.db.get("messages", counter_id)

    with pytest.raises(InvalidIdError, match='is not an id of table "messages"'):
        await in_query(app, wrong_table)


async def test_get_of_malformed_id_is_an_error_and_of_unknown_table_is_none(
    app: Application,
) -> None:
    async def malformed(ctx: Any) -> Any:
        return await ctx.db.get("not-an-id")

    with pytest.raises(InvalidIdError, match='"not-an-id" is not a valid id'):
        await in_query(app, malformed)

    unknown_table_id = encode_id(9999, bytes(16))

    async def unknown(ctx: Any) -> Any:
        return await ctx.db.get(unknown_table_id)

    assert await in_query(app, unknown) is None


async def test_int_is_stored_as_number_and_int64_as_int64(app: Application) -> None:
    async def write(ctx: Any) -> Any:
        return await ctx.db.insert("people", {"name": "p", "profile": {"age": 41}, "big": 2**62})

    person_id = await in_mutation(app, write)

    async def read(ctx: Any) -> Any:
        return await ctx.db.get(person_id)

    person = await in_query(app, read)
    assert person["profile"]["age"] == 41.0 and isinstance(person["profile"]["age"], float)
    assert person["big"] == 2**62 and isinstance(person["big"], Int64)


async def test_invalid_document_is_rejected_with_table_and_field_and_nothing_written(
    app: Application,
) -> None:
    async def write(ctx: Any) -> Any:
        await ctx.db.insert("messages", {"channel": "c", "body": "ok"})
        return await ctx.db.insert("messages", {"channel": "c", "body": 12})

    with pytest.raises(DocumentValidationError) as error:
        await in_mutation(app, write)
    assert "'messages'" in error.value.message
    assert "Path: .body" in error.value.message
    assert await count(app, "messages") == 0


@pytest.mark.parametrize(
    ("document", "fragment"),
    [
        ({"channel": "c"}, "missing the required field `body`"),
        ({"channel": "c", "body": "b", "extra": 1}, "extra field `extra`"),
        ({"channel": "c", "body": "b", "_secret": 1}, "'_secret' is not allowed"),
        ({"channel": "c", "body": "b", "author": None}, "Path: .author"),
    ],
)
async def test_schema_rejections(app: Application, document: dict[str, Any], fragment: str) -> None:
    async def write(ctx: Any) -> Any:
        return await ctx.db.insert("messages", document)

    with pytest.raises(DocumentValidationError, match=fragment.replace("(", r"\(")):
        await in_mutation(app, write)
    assert await count(app, "messages") == 0


async def test_v_id_field_rejects_ids_of_other_tables(app: Application) -> None:
    async def write(ctx: Any) -> Any:
        message_id = await ctx.db.insert("messages", {"channel": "c", "body": "b"})
        return await ctx.db.insert(
            "people", {"name": "p", "profile": {"age": 1}, "friend": message_id}
        )

    with pytest.raises(DocumentValidationError, match='v.id\\("people"\\)'):
        await in_mutation(app, write)


async def test_unknown_table_and_system_field_writes_are_rejected(app: Application) -> None:
    async def unknown(ctx: Any) -> Any:
        return await ctx.db.insert("nope", {"a": 1})

    with pytest.raises(SchemaError, match="Table 'nope' is not defined"):
        await in_mutation(app, unknown)

    async def system_field(ctx: Any) -> Any:
        return await ctx.db.insert("messages", {"channel": "c", "body": "b", "_id": "x"})

    with pytest.raises(SchemaError, match="_id is a system field"):
        await in_mutation(app, system_field)


async def test_patch_merges_sets_null_and_removes_with_undefined(app: Application) -> None:
    async def write(ctx: Any) -> Any:
        person_id = await ctx.db.insert(
            "people", {"name": "p", "profile": {"age": 1, "city": "Oslo"}, "big": Int64(5)}
        )
        await ctx.db.patch(person_id, {"name": "q", "big": UNDEFINED})
        return person_id

    person_id = await in_mutation(app, write)

    async def read(ctx: Any) -> Any:
        return await ctx.db.get(person_id)

    person = await in_query(app, read)
    assert person["name"] == "q"
    assert "big" not in person
    assert person["profile"] == {"age": 1.0, "city": "Oslo"}

    async def set_null(ctx: Any) -> Any:
        await ctx.db.patch(person_id, {"name": None})

    with pytest.raises(DocumentValidationError, match="Path: .name"):
        await in_mutation(app, set_null)

    async def set_item_null(ctx: Any) -> Any:
        item_id = await ctx.db.insert("items", {"value": 1, "tag": "t"})
        await ctx.db.patch(item_id, {"value": None, "tag": UNDEFINED})
        return await ctx.db.get(item_id)

    item = await in_mutation(app, set_item_null)
    assert item["value"] is None and "tag" not in item


async def test_patch_cannot_change_system_fields(app: Application) -> None:
    async def write(ctx: Any) -> Any:
        message_id = await ctx.db.insert("messages", {"channel": "c", "body": "b"})
        await ctx.db.patch(message_id, {"_creationTime": 1.0})

    with pytest.raises(SchemaError, match="_creationTime cannot be changed"):
        await in_mutation(app, write)


async def test_replace_keeps_id_and_creation_time(app: Application) -> None:
    async def write(ctx: Any) -> Any:
        message_id = await ctx.db.insert("messages", {"channel": "c", "body": "b", "author": "a"})
        before = await ctx.db.get(message_id)
        await ctx.db.replace(message_id, {"channel": "d", "body": "e"})
        return before, await ctx.db.get(message_id)

    before, after = await in_mutation(app, write)
    assert after == {
        "_id": before["_id"],
        "_creationTime": before["_creationTime"],
        "channel": "d",
        "body": "e",
    }


async def test_delete_removes_document_and_its_index_entries(app: Application) -> None:
    async def write(ctx: Any) -> Any:
        message_id = await ctx.db.insert("messages", {"channel": "c", "body": "b"})
        await ctx.db.delete(message_id)
        return message_id

    message_id = await in_mutation(app, write)

    async def read(ctx: Any) -> Any:
        by_index = await (
            ctx.db.query("messages")
            .with_index("by_channel", lambda q: q.eq("channel", "c"))
            .collect()
        )
        return await ctx.db.get(message_id), by_index

    assert await in_query(app, read) == [None, []]


@pytest.mark.parametrize("operation", ["patch", "replace", "delete"])
async def test_writes_to_missing_documents_fail(app: Application, operation: str) -> None:
    async def write(ctx: Any) -> Any:
        message_id = await ctx.db.insert("messages", {"channel": "c", "body": "b"})
        await ctx.db.delete(message_id)
        method = getattr(ctx.db, operation)
        if operation == "delete":
            await method(message_id)
        else:
            await method(message_id, {"channel": "c", "body": "x"})

    with pytest.raises(DocumentNotFoundError, match=f"db.{operation}"):
        await in_mutation(app, write)


async def test_reads_see_own_writes_and_exception_rolls_back_everything(
    app: Application,
) -> None:
    async def write(ctx: Any) -> Any:
        await ctx.db.insert("messages", {"channel": "c", "body": "1"})
        seen = await ctx.db.query("messages").collect()
        assert len(seen) == 1
        raise ConvexError({"code": "STOP"})

    with pytest.raises(ConvexError) as error:
        await in_mutation(app, write)
    assert error.value.data == {"code": "STOP"}
    assert await count(app, "messages") == 0


async def test_failed_mutation_through_function_path_writes_nothing(app: Application) -> None:
    with pytest.raises(RuntimeError, match="failing after 2 inserts"):
        await app.run_mutation(
            "messages:sendMany", {"channel": "c", "bodies": ["a", "b", "c"], "fail_at": 2}
        )
    assert await count(app, "messages") == 0


async def test_queries_are_read_only(app: Application) -> None:
    async def write(ctx: Any) -> Any:
        return await ctx.db.insert("messages", {"channel": "c", "body": "b"})

    with pytest.raises(ReadOnlyError, match="queries are read-only"):
        await in_query(app, write)


async def test_nested_mutation_is_a_sub_transaction(app: Application) -> None:
    result = await app.run_mutation("messages:nestedFailureIsContained", {"channel": "n"})
    assert result.value == "failing after 2 inserts"

    async def bodies(ctx: Any) -> Any:
        return [m["body"] for m in await ctx.db.query("messages").collect()]

    assert await in_query(app, bodies) == ["outer"]


async def test_nested_query_reads_the_callers_writes(app: Application) -> None:
    assert (await app.run_mutation("messages:sendAndCount", {"channel": "x"})).value == 1.0
    assert (await app.run_mutation("messages:sendAndCount", {"channel": "x"})).value == 2.0


async def test_write_limit_is_enforced_with_a_clear_error(app: Application) -> None:
    app.limits = type(app.limits)(max_documents_written=3)

    async def write(ctx: Any) -> Any:
        for index in range(4):
            await ctx.db.insert("messages", {"channel": "c", "body": str(index)})

    with pytest.raises(LimitExceededError, match=r"Too many documents written.*limit: 3"):
        await in_mutation(app, write)
    assert await count(app, "messages") == 0


async def test_read_limit_is_enforced(app: Application) -> None:
    async def write(ctx: Any) -> Any:
        for index in range(5):
            await ctx.db.insert("messages", {"channel": "c", "body": str(index)})

    await in_mutation(app, write)
    app.limits = type(app.limits)(max_documents_read=4)

    async def read(ctx: Any) -> Any:
        return await ctx.db.query("messages").collect()

    with pytest.raises(LimitExceededError, match=r"Too many documents read.*limit: 4"):
        await in_query(app, read)


async def test_document_size_limit(app: Application) -> None:
    app.limits = type(app.limits)(max_document_bytes=1000)

    async def write(ctx: Any) -> Any:
        return await ctx.db.insert("messages", {"channel": "c", "body": "x" * 2000})

    with pytest.raises(LimitExceededError, match="the limit is 1000 bytes"):
        await in_mutation(app, write)


async def test_system_tables_are_not_reachable_through_ctx_db(app: Application) -> None:
    async def read(ctx: Any) -> Any:
        return await ctx.db.query("_session_requests").collect()

    with pytest.raises(SchemaError, match="cannot be accessed through ctx.db"):
        await in_query(app, read)


async def test_normalize_id(app: Application) -> None:
    async def write(ctx: Any) -> Any:
        return await ctx.db.insert("messages", {"channel": "c", "body": "b"})

    message_id = await in_mutation(app, write)

    async def read(ctx: Any) -> Any:
        return (
            ctx.db.normalize_id("messages", message_id),
            ctx.db.normalize_id("counters", message_id),
            ctx.db.normalize_id("messages", "garbage"),
        )

    assert await in_query(app, read) == [message_id, None, None]


async def test_new_id_is_an_id_of_the_table_that_no_document_has(app: Application) -> None:
    async def mint(ctx: Any) -> Any:
        made = [ctx.db.new_id("messages") for _ in range(3)]
        return made, [await ctx.db.get(made_id) for made_id in made]

    made, documents = await in_mutation(app, mint)
    assert len(set(made)) == 3 and documents == [None, None, None]
    assert {app.catalog.table_name_of_id(made_id) for made_id in made} == {"messages"}
    assert await count(app, "messages") == 0

    async def in_a_query(ctx: Any) -> Any:
        return ctx.db.new_id("messages")

    with pytest.raises(ReadOnlyError, match="queries are read-only"):
        await in_query(app, in_a_query)
