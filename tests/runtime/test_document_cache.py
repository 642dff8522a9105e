"""The per-transaction cache of point reads: a document is read from the engine once per
transaction, its own writes and deletes win, every caller gets its own copy, and the read
still belongs to the read set (reactivity, and conflicts on PostgreSQL)."""

from __future__ import annotations

import asyncio
import sqlite3
from typing import Any

import pytest

from owlat.runtime import internal
from owlat.runtime.application import Application
from owlat.runtime.database.catalog import id_key
from owlat.runtime.functions import FunctionKind, internal_mutation, query
from owlat.runtime.schema import BY_ID
from owlat.runtime.subscriptions import QueryKey, SubscriptionManager, canonical_json
from owlat.runtime.testing import in_mutation, run_adhoc


async def insert_counter(app: Application, name: str, count: float) -> str:
    async def insert(ctx: Any) -> str:
        counter_id: str = await ctx.db.insert("counters", {"name": name, "count": count})
        return counter_id

    return await in_mutation(app, insert)


async def test_a_mutation_sees_its_own_patch_and_delete(app: Application) -> None:
    counter_id = await insert_counter(app, "c", 1.0)

    async def body(ctx: Any) -> list[Any]:
        seen: list[Any] = []
        first = await ctx.db.get(counter_id)
        first["count"] = -1.0  # the caller's copy: the cache is not changed by it
        first["extra"] = ["not", "stored"]
        again = await ctx.db.get(counter_id)
        seen.append(dict(again))
        again["count"] = -2.0
        await ctx.db.patch(counter_id, {"count": 2.0})
        patched = await ctx.db.get(counter_id)
        seen.append(patched["count"])
        patched["count"] = -3.0
        await ctx.db.patch(counter_id, {"name": "d"})  # a patch of a patch
        seen.append(await ctx.db.get(counter_id))
        await ctx.db.delete(counter_id)
        seen.append(await ctx.db.get(counter_id))
        with pytest.raises(Exception, match="does not exist"):
            await ctx.db.patch(counter_id, {"count": 3.0})
        return seen

    again, patched, renamed, deleted = await in_mutation(app, body)
    assert again == {
        "_id": counter_id,
        "_creationTime": again["_creationTime"],
        "name": "c",
        "count": 1.0,
    }
    assert patched == 2.0
    assert (renamed["name"], renamed["count"]) == ("d", 2.0)
    assert deleted is None

    async def after(ctx: Any) -> Any:
        return await ctx.db.get(counter_id)

    assert await in_mutation(app, after) is None


async def test_a_patch_validates_the_merged_document(app: Application) -> None:
    counter_id = await insert_counter(app, "c", 1.0)

    async def body(ctx: Any) -> None:
        await ctx.db.get(counter_id)
        await ctx.db.patch(counter_id, {"count": "not a number"})

    with pytest.raises(Exception, match="count"):
        await in_mutation(app, body)


async def test_a_document_is_read_from_the_engine_once(app: Application, database_url: str) -> None:
    if database_url:
        pytest.skip("counts the statements of SQLite's writer connection")
    counter_id = await insert_counter(app, "c", 1.0)
    writer: sqlite3.Connection = getattr(app.engine, "_writer")  # noqa: B009
    statements: list[str] = []

    async def body(ctx: Any) -> None:
        writer.set_trace_callback(statements.append)
        try:
            counter = await ctx.db.get(counter_id)
            await ctx.db.patch(counter_id, {"count": counter["count"] + 1})
            assert (await ctx.db.get(counter_id))["count"] == 2.0
            await ctx.db.patch(counter_id, {"count": 3.0})
        finally:
            writer.set_trace_callback(None)

    await in_mutation(app, body)
    reads = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    assert len(reads) == 1, statements


async def test_a_read_then_patched_document_stays_in_the_read_set(app: Application) -> None:
    counter_id = await insert_counter(app, "c", 1.0)
    other_id = await insert_counter(app, "other", 1.0)

    async def body(ctx: Any) -> None:
        counter = await ctx.db.get(counter_id)
        await ctx.db.patch(counter_id, {"count": counter["count"] + 1})
        await ctx.db.get(counter_id)
        await ctx.db.get(other_id)
        await ctx.db.get(other_id)

    outcome = await run_adhoc(app, FunctionKind.MUTATION, lambda ctx, args: body(ctx))
    assert outcome.read_set is not None
    intervals = outcome.read_set.intervals("counters", BY_ID)
    assert len(intervals) == 2
    for document_id in (counter_id, other_id):
        assert any(interval.contains(id_key(document_id)) for interval in intervals)


async def test_a_query_on_a_read_then_patched_document_is_invalidated(app: Application) -> None:
    counter_id = await insert_counter(app, "c", 1.0)
    manager = SubscriptionManager(app)
    manager.catch_up()
    wakes: list[int] = []

    class Subscriber:
        def query_invalidated(self) -> None:
            wakes.append(1)

    watched = QueryKey("counters:byId", canonical_json({"id": counter_id}))

    async def by_id(ctx: Any, args: dict[str, Any]) -> Any:
        return await ctx.db.get(args["id"])

    app.package.functions.add("counters:byId", query(by_id))
    manager.subscribe(watched, Subscriber())
    async with app.snapshot() as snapshot:
        assert (await manager.result_at(snapshot, watched)).value["count"] == 1.0

    async def read_only(ctx: Any) -> None:
        await ctx.db.get(counter_id)
        await ctx.db.get(counter_id)

    await in_mutation(app, read_only)
    assert wakes == []

    async def read_then_patch(ctx: Any) -> None:
        counter = await ctx.db.get(counter_id)
        await ctx.db.patch(counter_id, {"count": counter["count"] + 1})

    await in_mutation(app, read_then_patch)
    assert wakes == [1]
    async with app.snapshot() as snapshot:
        assert (await manager.result_at(snapshot, watched)).value["count"] == 2.0
    manager.close()


async def test_write_skew_through_cached_reads_is_still_a_conflict(
    app: Application, database_url: str
) -> None:
    """Two mutations each read both documents (twice: the second read is cached) and turn
    their own off if the other is on. Run one after the other, one stays on; run at once
    on PostgreSQL, the serializable engine must refuse one of them (then re-run it)."""
    if not database_url:
        pytest.skip("SQLite runs one writer at a time: no two mutations overlap")
    first = await insert_counter(app, "first", 1.0)
    second = await insert_counter(app, "second", 1.0)
    both_read = asyncio.Event()
    arrivals = 0

    def turn_off(mine: str, other: str) -> Any:
        async def body(ctx: Any) -> None:
            nonlocal arrivals
            await ctx.db.get(mine)
            await ctx.db.get(other)
            arrivals += 1
            if arrivals == 2:
                both_read.set()
            await asyncio.wait_for(both_read.wait(), 10)
            if (await ctx.db.get(other))["count"] == 1.0:  # from the cache
                await ctx.db.patch(mine, {"count": 0.0})

        return body

    await asyncio.gather(
        in_mutation(app, turn_off(first, second)), in_mutation(app, turn_off(second, first))
    )
    assert arrivals == 3  # one of them ran again

    async def counts(ctx: Any) -> list[float]:
        return [(await ctx.db.get(i))["count"] for i in (first, second)]

    assert sorted(await in_mutation(app, counts)) == [0.0, 1.0]


async def test_a_rolled_back_sub_mutation_leaves_no_write_in_the_cache(app: Application) -> None:
    read_only = await insert_counter(app, "read", 1.0)
    patched = await insert_counter(app, "patched", 1.0)
    deleted = await insert_counter(app, "deleted", 1.0)
    inserted: list[str] = []

    async def failing(ctx: Any, args: Any) -> None:
        await ctx.db.get(read_only)  # cached inside the block, never written
        await ctx.db.patch(patched, {"count": 99.0})
        await ctx.db.delete(deleted)
        inserted.append(await ctx.db.insert("counters", {"name": "inserted", "count": 1.0}))
        raise ValueError("undo the sub-mutation")

    async def body(ctx: Any) -> list[Any]:
        await ctx.db.get(patched)  # cached before the block
        with pytest.raises(ValueError, match="undo the sub-mutation"):
            await ctx.run_mutation(internal.adhoc.cacheUndone, {})
        return [
            (await ctx.db.get(read_only))["count"],
            (await ctx.db.get(patched))["count"],
            (await ctx.db.get(deleted))["count"],
            await ctx.db.get(inserted[0]),
        ]

    app.package.functions.add("adhoc:cacheUndone", internal_mutation(failing))
    assert await in_mutation(app, body) == [1.0, 1.0, 1.0, None]
