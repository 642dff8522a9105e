"""`ctx.db.insert_many` (database/api.py): a batch of inserts into one table that stores,
indexes, records and triggers exactly what `insert` of each in turn does (both engines)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from owlat.runtime.application import Application
from owlat.runtime.database.commits import Commit
from owlat.runtime.errors import SchemaError
from owlat.runtime.schema import BY_ID
from owlat.runtime.subscriptions import QueryKey, SubscriptionManager, canonical_json
from owlat.runtime.testing import in_mutation, in_query


async def _items(ctx: Any, index: str) -> list[list[Any]]:
    rows = await ctx.db.query("items").with_index(index).collect()
    return [[row.get("tag"), row["value"]] for row in rows]


async def test_documents_and_index_entries_are_those_of_single_inserts(
    app: Application,
) -> None:
    values = [5, 1, 4, 1.5, 3]
    tags = ["b", "a", None, "a", "b"]
    commits: list[Commit] = []
    app.on_commit(commits.append)

    async def batch(ctx: Any) -> list[str]:
        documents = [
            {"value": v} if t is None else {"value": v, "tag": t}
            for v, t in zip(values, tags, strict=True)
        ]
        ids: list[str] = await ctx.db.insert_many("items", documents)
        return ids

    ids = await in_mutation(app, batch)
    assert len(set(ids)) == 5

    async def read(ctx: Any) -> dict[str, Any]:
        stored = [await ctx.db.get(i) for i in ids]
        return {
            "stored": stored,
            "by_value": await _items(ctx, "by_value"),
            "by_tag_value": await _items(ctx, "by_tag_value"),
            "in_order": [row["_id"] for row in await ctx.db.query("items").collect()],
        }

    seen = await in_query(app, read)
    pairs = [[t, v] for t, v in zip(tags, values, strict=True)]
    assert [[d.get("tag"), d["value"]] for d in seen["stored"]] == pairs
    assert seen["in_order"] == ids  # creation times follow the batch's order
    assert seen["by_value"] == sorted(pairs, key=lambda pair: pair[1])
    assert seen["by_tag_value"] == [[None, 4], ["a", 1], ["a", 1.5], ["b", 3], ["b", 5]]
    # the commit's write set: each document new, with its key in every index
    (commit,) = [c for c in commits if c.write_set.documents]
    assert [change.id for change in commit.write_set.documents] == ids
    assert all(change.old is None for change in commit.write_set.documents)
    table = app.catalog.table("items")
    expected = set()
    for document in seen["stored"]:
        expected.add(("items", BY_ID, None, document["_id"].encode()))
        for index in table.indexes.values():
            expected.add(("items", index.name, None, index.key(document)))
    got = {(k.table, k.index, k.old_key, k.new_key) for k in commit.write_set.index_keys}
    assert got == expected


async def test_triggers_fire_once_per_document_in_order_with_the_stored_document(
    app: Application,
) -> None:
    orders = [("ann", 10.0), ("bob", 7.0), ("ann", 5.0)]

    async def batch(ctx: Any) -> list[Any]:
        documents = [{"customer": c, "amount": a} for c, a in orders]
        ids = await ctx.db.insert_many("orders", documents)
        return [await ctx.db.get(i) for i in ids]

    stored = await in_mutation(app, batch)

    async def read(ctx: Any) -> Any:
        log = [dict(row) for row in await ctx.db.query("orderLog").collect()]
        totals = {
            row["customer"]: (row["count"], row["sum"])
            for row in await ctx.db.query("orderTotals").collect()
        }
        return log, totals

    log, totals = await in_query(app, read)
    assert [(e["operation"], e["orderId"], e["after"], e["created"]) for e in log] == [
        ("insert", d["_id"], d["amount"], d["_creationTime"]) for d in stored
    ]
    assert all("before" not in entry for entry in log)
    # as insert of each in turn: each document's triggers ran before the next was inserted
    times = [t for d, e in zip(stored, log, strict=True) for t in (d, e)]
    created = [row["_creationTime"] for row in times]
    assert created == sorted(created)
    assert totals == {"ann": [2, 15.0], "bob": [1, 7.0]}


async def test_one_invalid_document_writes_none_of_the_batch(app: Application) -> None:
    async def batch(ctx: Any) -> list[Any]:
        bad = [{"customer": "ann", "amount": 1.0}, {"customer": "bob", "amount": "x"}]
        with pytest.raises(Exception, match="amount"):
            await ctx.db.insert_many("orders", bad)
        system = [{"customer": "cy", "amount": 1.0, "_id": "x"}]
        with pytest.raises(SchemaError, match="_id is a system field"):
            await ctx.db.insert_many("orders", system)
        return [len(await ctx.db.query(table).collect()) for table in ("orders", "orderLog")]

    assert await in_mutation(app, batch) == [0, 0]

    async def count(ctx: Any) -> int:
        return len(await ctx.db.query("orders").collect())

    assert await in_query(app, count) == 0


async def test_the_mutation_reads_its_batch_and_a_failure_undoes_it(app: Application) -> None:
    async def batch(ctx: Any) -> dict[str, Any]:
        ids = await ctx.db.insert_many("items", [{"value": n} for n in range(4)])
        await ctx.db.patch(ids[1], {"value": 10})
        return {
            "window": [
                row["value"]
                for row in await ctx.db.query("items")
                .with_index("by_value", lambda q: q.gte("value", 1).lt("value", 20))
                .collect()
            ],
            "got": (await ctx.db.get(ids[3]))["value"],
        }

    assert await in_mutation(app, batch) == {"window": [2, 3, 10], "got": 3}

    async def failing(ctx: Any) -> None:
        await ctx.db.insert_many("items", [{"value": 100}, {"value": 101}])
        raise RuntimeError("roll back")

    with pytest.raises(RuntimeError, match="roll back"):
        await in_mutation(app, failing)

    async def values(ctx: Any) -> list[Any]:
        return [row["value"] for row in await ctx.db.query("items").collect()]

    assert await in_query(app, values) == [0, 10, 2, 3]


async def test_a_subscribed_query_over_the_table_is_invalidated(app: Application) -> None:
    manager = SubscriptionManager(app)
    manager.catch_up()
    woken: list[str] = []

    class Subscriber:
        def __init__(self, name: str) -> None:
            self.name = name

        def query_invalidated(self) -> None:
            woken.append(self.name)

    results = {}
    for channel in ("a", "b"):
        key = QueryKey("messages:list", canonical_json({"channel": channel}))
        manager.subscribe(key, Subscriber(channel))
        async with app.snapshot() as snapshot:
            results[channel] = await manager.result_at(snapshot, key)

    async def batch(ctx: Any) -> None:
        await ctx.db.insert_many(
            "messages", [{"channel": "a", "body": "1"}, {"channel": "a", "body": "2"}]
        )

    await in_mutation(app, batch)
    assert woken == ["a"]
    assert results["a"].invalid_from is not None and results["b"].invalid_from is None
    manager.close()


async def test_batches_racing_on_the_same_range_are_serialized(
    app: Application, database_url: str
) -> None:
    """Two mutations count the items tagged "t", then insert a batch of three tagged "t"
    carrying the count they saw. Serializable: one saw 0 and the other 3. On PostgreSQL
    both read before either writes, so the engine must refuse one (it is re-run)."""
    both_read = asyncio.Event()
    arrivals = 0

    async def body(ctx: Any) -> None:
        nonlocal arrivals
        seen = await (
            ctx.db.query("items").with_index("by_tag_value", lambda q: q.eq("tag", "t")).collect()
        )
        arrivals += 1
        if database_url:
            if arrivals == 2:
                both_read.set()
            await asyncio.wait_for(both_read.wait(), 10)
        await ctx.db.insert_many("items", [{"tag": "t", "value": len(seen)}] * 3)

    await asyncio.gather(in_mutation(app, body), in_mutation(app, body))
    if database_url:
        assert arrivals == 3  # one of them ran again

    async def values(ctx: Any) -> list[Any]:
        return sorted(row["value"] for row in await ctx.db.query("items").collect())

    assert await in_query(app, values) == [0, 0, 0, 3, 3, 3]
