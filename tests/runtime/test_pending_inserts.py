"""Inserts held back until a read could see them (database/pending.py, Transaction.flush):
a mutation still reads its own writes exactly, rollbacks still undo them, and the commit
stores every one of them with its index entries (both engines)."""

from __future__ import annotations

from typing import Any

import pytest

from owlat.runtime.application import Application
from owlat.runtime.database.pending import PendingInserts
from owlat.runtime.functions import internal_mutation
from owlat.runtime.testing import in_mutation, in_query


async def _values(ctx: Any, low: int, high: int) -> list[Any]:
    rows = (
        await ctx.db.query("items")
        .with_index("by_value", lambda q: q.gte("value", low).lt("value", high))
        .collect()
    )
    return [row["value"] for row in rows]


async def test_reads_in_the_mutation_see_held_inserts_as_they_now_are(app: Application) -> None:
    async def body(ctx: Any) -> dict[str, Any]:
        ids = [await ctx.db.insert("items", {"value": n}) for n in range(10)]
        # no range read yet: all ten are still held when they are patched and deleted
        await ctx.db.patch(ids[4], {"value": 40})  # a held document's key moves
        await ctx.db.delete(ids[5])  # a held document goes
        await ctx.db.insert("items", {"value": 3.5})
        got = await ctx.db.get(ids[4])
        return {
            "window": await _values(ctx, 3, 6),
            "high": await _values(ctx, 39, 41),
            "patched": got["value"],
            "count": await ctx.db.query("items").with_index("by_value").count(),
        }

    seen = await in_mutation(app, body)
    assert seen["window"] == [3, 3.5]
    assert seen["high"] == [40]
    assert seen["patched"] == 40
    assert seen["count"] == 10

    async def stored(ctx: Any) -> list[Any]:
        rows = await ctx.db.query("items").with_index("by_value").collect()
        return [row["value"] for row in rows]

    assert await in_query(app, stored) == [0, 1, 2, 3, 3.5, 6, 7, 8, 9, 40]


async def test_commit_stores_every_held_insert_with_its_index_entries(app: Application) -> None:
    async def body(ctx: Any) -> None:
        for n in range(2_500):
            await ctx.db.insert("items", {"value": n, "tag": "even" if n % 2 == 0 else "odd"})

    await in_mutation(app, body)

    async def read(ctx: Any) -> dict[str, Any]:
        evens = (
            await ctx.db.query("items")
            .with_index("by_tag_value", lambda q: q.eq("tag", "even"))
            .collect()
        )
        return {
            "all": await ctx.db.query("items").count(),
            "by_value": await ctx.db.query("items").with_index("by_value").count(),
            "evens": [row["value"] for row in evens],
        }

    found = await in_query(app, read)
    assert found["all"] == found["by_value"] == 2_500
    assert found["evens"] == list(range(0, 2_500, 2))


async def test_a_failed_nested_mutation_undoes_only_its_own_held_inserts(app: Application) -> None:
    async def failing(ctx: Any, args: Any) -> None:
        await ctx.db.insert("items", {"value": 100})
        raise RuntimeError("nested failure")

    app.package.functions.add("adhoc:pending_failing", internal_mutation(failing))

    async def body(ctx: Any) -> list[Any]:
        await ctx.db.insert("items", {"value": 1})
        with pytest.raises(RuntimeError):
            await ctx.run_mutation("adhoc:pending_failing", {})
        await ctx.db.insert("items", {"value": 2})
        return await _values(ctx, 0, 1_000)

    assert await in_mutation(app, body) == [1, 2]
    assert await in_query(app, lambda ctx: _values(ctx, 0, 1_000)) == [1, 2]


async def test_a_failed_mutation_stores_none_of_its_held_inserts(app: Application) -> None:
    async def body(ctx: Any) -> None:
        for n in range(50):
            await ctx.db.insert("items", {"value": n})
        raise RuntimeError("mutation failure")

    with pytest.raises(Exception, match="mutation failure"):
        await in_mutation(app, body)
    assert await in_query(app, lambda ctx: ctx.db.query("items").count()) == 0


def test_in_range_is_low_inclusive_and_high_exclusive() -> None:
    pending = PendingInserts()
    pending.add("a", 1, b"{}", [(7, b"m")])
    assert pending.in_range(7, b"m", b"n")
    assert not pending.in_range(7, b"a", b"m")
    assert not pending.in_range(8, b"a", b"z")  # another index
    pending.replace("a", b"{}", [(7, b"m", b"q")])
    assert not pending.in_range(7, b"m", b"n")
    assert pending.in_range(7, b"p", b"r")
    pending.discard("a")
    assert not pending
    assert not pending.in_range(7, b"a", b"z")


def test_in_range_finds_keys_held_in_any_order() -> None:
    """Held keys usually grow (new ids, creation times) and are appended; a smaller one
    (a patch moving a held document, an index on another field) is still found."""
    pending = PendingInserts()
    for document_id, key in (("a", b"m"), ("b", b"t"), ("c", b"c"), ("d", b"p")):
        pending.add(document_id, 1, b"{}", [(7, key)])
    pending.replace("b", b"{}", [(7, b"t", b"e")])
    for low, high, found in (
        (b"a", b"d", True),  # c
        (b"d", b"f", True),  # e (b, moved)
        (b"f", b"m", False),
        (b"n", b"p", False),
        (b"p", b"q", True),  # d
        (b"q", b"z", False),  # t moved away
    ):
        assert pending.in_range(7, low, high) is found, (low, high)


def test_drain_hands_over_documents_then_entries_and_holds_nothing() -> None:
    pending = PendingInserts()
    pending.add("a", 1, b"A", [(7, b"k2"), (8, b"x")])
    pending.add("b", 2, b"B", [(7, b"k1")])
    pending.replace("a", b"A2", [(8, b"x", b"y")])
    documents, entries = pending.drain()
    assert documents == [("a", 1, b"A2"), ("b", 2, b"B")]
    assert entries == [(7, b"k2", "a"), (8, b"y", "a"), (7, b"k1", "b")]
    assert not pending
    assert not pending.in_range(7, b"", b"\xff")
