"""The short cuts of a query's path keep its checks: `db.get(id)` without `_resolve`, the
function looked up in `execute` itself, `ctx.storage` made on first use, one shared empty
set of held inserts for every snapshot, a log buffer that is a list, and (SQLite) the
shared snapshot as its own context manager."""

from __future__ import annotations

from typing import Any

import pytest

from owlat.runtime.application import Application
from owlat.runtime.context import QueryCtx
from owlat.runtime.database.sqlite import SqliteEngine
from owlat.runtime.errors import (
    ArgumentValidationError,
    FunctionNotFoundError,
    InvalidIdError,
    ReadOnlyError,
    WrongFunctionKindError,
)
from owlat.runtime.functions import FunctionKind
from owlat.runtime.logs import MAX_LINES, LogBuffer
from owlat.runtime.storage import StorageReader
from owlat.runtime.testing import in_mutation, in_query


async def _message_and_job(app: Application) -> tuple[str, str]:
    """A message's id and a system table's (`_scheduled_functions`) document id."""

    async def write(ctx: Any) -> tuple[str, str]:
        message = await ctx.db.insert("messages", {"channel": "c", "body": "b"})
        job = await ctx.scheduler.run_after(3_600_000, "messages:send", {"channel": "c"})
        return message, job

    ids: tuple[str, str] = await in_mutation(app, write)
    return ids


async def test_get_by_id_refuses_an_id_of_the_other_kind_of_table(app: Application) -> None:
    message, job = await _message_and_job(app)

    async def read(ctx: Any) -> tuple[Any, Any]:
        return await ctx.db.get(message), await ctx.db.system.get(job)

    found, scheduled = await in_query(app, read)
    assert found["_id"] == message and scheduled["_id"] == job
    for db, document_id, where in (("db", job, "ctx.db.system"), ("system", message, "ctx.db")):

        async def misread(ctx: Any, db: str = db, document_id: str = document_id) -> Any:
            reader = ctx.db if db == "db" else ctx.db.system
            return await reader.get(document_id)

        with pytest.raises(InvalidIdError, match=f"use {where}"):
            await in_query(app, misread)


async def test_get_by_id_of_a_malformed_or_unknown_id(app: Application) -> None:
    message, _ = await _message_and_job(app)

    async def read(ctx: Any, document_id: str) -> Any:
        return await ctx.db.get(document_id)

    broken = message[:-1] + ("1" if message[-1] != "1" else "2")  # its checksum fails
    with pytest.raises(InvalidIdError, match="is not a valid id"):
        await in_query(app, lambda ctx: read(ctx, broken))
    with pytest.raises(InvalidIdError, match="expected an id string"):
        await in_query(app, lambda ctx: read(ctx, 42))  # type: ignore[arg-type]


async def test_a_query_call_keeps_its_visibility_kind_and_argument_checks(
    app: Application,
) -> None:
    message, job = await _message_and_job(app)
    assert (await app.run_query("messages:get", {"id": message})).value["_id"] == message
    outcome = await app.execute(FunctionKind.QUERY, "messages:countAll", {})
    assert isinstance(outcome.error, FunctionNotFoundError)  # internal: not from outside
    assert (await app.run_query("messages:countAll", {}, internal=True)).value == 1.0
    with pytest.raises(WrongFunctionKindError):
        await app.run_query("messages:send", {"channel": "c", "body": "b"})
    with pytest.raises(ArgumentValidationError, match="_scheduled_functions"):
        await app.run_query("messages:get", {"id": job})  # an id of another table
    with pytest.raises(ArgumentValidationError):
        await app.run_query("messages:get", {"id": "nope"})


async def test_a_query_ctx_makes_its_storage_on_first_use(app: Application) -> None:
    async def read(ctx: QueryCtx) -> list[bool]:
        first = ctx.storage
        return [isinstance(first, StorageReader), ctx.storage is first]

    assert await in_query(app, read) == [True, True]

    async def missing(ctx: QueryCtx) -> Any:
        return ctx.no_such_attribute  # type: ignore[attr-defined]

    with pytest.raises(AttributeError, match="no_such_attribute"):
        await in_query(app, missing)


async def test_a_refused_write_in_a_query_leaves_no_held_insert_for_later_queries(
    app: Application,
) -> None:
    # every snapshot shares one empty record of held inserts: a write refused in one query
    # must not leave a document there for the range reads of the next ones
    with pytest.raises(ReadOnlyError):
        await app.run_system_read(
            lambda txn: txn.insert(txn.catalog.table("messages"), {"channel": "c", "body": "b"})
        )
    assert (await app.run_query("messages:list", {"channel": "c"})).value == []
    await _message_and_job(app)
    assert len((await app.run_query("messages:list", {"channel": "c"})).value) == 1


def test_a_log_buffer_keeps_at_most_max_lines_and_its_unfinished_line() -> None:
    buffer = LogBuffer()
    assert buffer.finish() == () and not buffer.truncated
    buffer.write("one\ntw")
    buffer.write("o")
    assert buffer.finish() == ("[LOG] one", "[LOG] two")
    for number in range(MAX_LINES):
        buffer.add("INFO", str(number))
    assert len(buffer.finish()) == MAX_LINES and buffer.truncated
    assert not LogBuffer().truncated  # the flag is each buffer's own


async def test_an_sqlite_read_entered_after_a_commit_is_refused(app: Application) -> None:
    engine = app.engine
    if not isinstance(engine, SqliteEngine):
        pytest.skip("the shared snapshot is SQLite's")
    late = engine.read()  # picks the current snapshot...
    await _message_and_job(app)  # ...which this commit makes stale
    with pytest.raises(RuntimeError, match="at once"):
        async with late:
            pass
    async with engine.read() as reader:  # entered at once: the new snapshot, the commit in it
        assert await reader.last_ts() == app.latest_ts
