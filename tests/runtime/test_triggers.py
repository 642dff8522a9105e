"""Triggers (runtime/triggers.py): run in the writing mutation's transaction, on both engines."""

from __future__ import annotations

from typing import Any

import pytest

from owlat.runtime import Triggers
from owlat.runtime.application import Application
from owlat.runtime.errors import DeveloperError
from owlat.runtime.testing import in_mutation, in_query
from owlat.runtime.triggers import check_triggers


async def _totals(app: Application) -> dict[str, tuple[float, float]]:
    async def read(ctx: Any) -> Any:
        return [dict(row) for row in await ctx.db.query("orderTotals").collect()]

    return {row["customer"]: (row["count"], row["sum"]) for row in await in_query(app, read)}


async def _recount(app: Application) -> dict[str, tuple[float, float]]:
    async def read(ctx: Any) -> Any:
        return [dict(row) for row in await ctx.db.query("orders").collect()]

    totals: dict[str, tuple[float, float]] = {}
    for order in await in_query(app, read):
        count, amount = totals.get(order["customer"], (0, 0))
        totals[order["customer"]] = (count + 1, amount + order["amount"])
    return totals


async def _log(app: Application) -> list[tuple[str, str]]:
    async def read(ctx: Any) -> Any:
        return [
            (row["operation"], row["orderId"]) for row in await ctx.db.query("orderLog").collect()
        ]

    return [(operation, order) for operation, order in await in_query(app, read)]


async def test_every_write_fires_the_tables_triggers_in_order(app: Application) -> None:
    async def write(ctx: Any) -> list[str]:
        first = await ctx.db.insert("orders", {"customer": "ann", "amount": 10})
        second = await ctx.db.insert("orders", {"customer": "ann", "amount": 5})
        third = await ctx.db.insert("orders", {"customer": "bob", "amount": 7})
        await ctx.db.patch(second, {"amount": 8})
        await ctx.db.replace(third, {"customer": "ann", "amount": 1})
        await ctx.db.delete(first)
        return [first, second, third]

    first, second, third = await in_mutation(app, write)
    assert await _log(app) == [
        ("insert", first),
        ("insert", second),
        ("insert", third),
        ("update", second),
        ("update", third),
        ("delete", first),
    ]
    totals = await _totals(app)
    assert totals["ann"] == (2, 9)
    assert totals["bob"] == (0, 0)
    assert {k: t for k, t in totals.items() if t[0]} == await _recount(app)


async def test_a_trigger_sees_the_stored_documents_before_and_after(app: Application) -> None:
    async def write(ctx: Any) -> str:
        order = await ctx.db.insert("orders", {"customer": "cy", "amount": 3})
        await ctx.db.patch(order, {"amount": 4})
        await ctx.db.delete(order)
        return str(order)

    order = await in_mutation(app, write)

    async def read(ctx: Any) -> Any:
        return [dict(row) for row in await ctx.db.query("orderLog").collect()]

    entries = await in_query(app, read)
    assert [(e["operation"], e.get("before"), e.get("after")) for e in entries] == [
        ("insert", None, 3),
        ("update", 3, 4),
        ("delete", 4, None),
    ]
    assert {e["orderId"] for e in entries} == {order}
    assert entries[0]["created"] == entries[1]["created"] > 0  # the stored _creationTime


async def test_trigger_writes_roll_back_with_the_mutation(app: Application) -> None:
    async def failing(ctx: Any) -> None:
        await ctx.db.insert("orders", {"customer": "dee", "amount": 2})
        raise ValueError("after the write")

    with pytest.raises(Exception, match="after the write"):
        await in_mutation(app, failing)
    assert await _totals(app) == {}
    assert await _log(app) == []


async def test_a_failing_trigger_fails_the_write(app: Application) -> None:
    async def too_long(ctx: Any) -> None:
        await ctx.db.insert("orders", {"customer": "eve", "amount": 1})
        await ctx.db.insert("echoes", {"n": 0})

    with pytest.raises(Exception, match="Triggers nested more than 8 levels deep"):
        await in_mutation(app, too_long)
    assert await _totals(app) == {}

    async def echoes(ctx: Any) -> int:
        return len(await ctx.db.query("echoes").collect())

    assert await in_query(app, echoes) == 0


async def test_a_caught_nested_failure_undoes_only_its_own_trigger_writes(
    app: Application,
) -> None:
    async def nested(ctx: Any, args: Any) -> None:
        await ctx.db.insert("orders", {"customer": "fay", "amount": 100})
        raise ValueError("nested fails")

    from owlat.runtime.functions import internal_mutation

    app.package.functions.add("adhoc:nested_order", internal_mutation(nested))

    async def outer(ctx: Any) -> None:
        await ctx.db.insert("orders", {"customer": "fay", "amount": 1})
        with pytest.raises(Exception, match="nested fails"):
            await ctx.run_mutation("adhoc:nested_order", {})
        await ctx.db.insert("orders", {"customer": "fay", "amount": 2})

    await in_mutation(app, outer)
    assert await _totals(app) == {"fay": (2, 3)} == await _recount(app)
    assert [operation for operation, _ in await _log(app)] == ["insert", "insert"]


def test_triggers_must_name_tables_of_the_schema() -> None:
    triggers = Triggers()

    @triggers.on("nope")
    async def noop(ctx: Any, change: Any) -> None:
        return None

    with pytest.raises(DeveloperError, match=r"tables the schema lacks: \['nope'\]"):
        check_triggers(triggers, frozenset({"orders"}))
    with pytest.raises(DeveloperError, match="must define `triggers = Triggers"):
        check_triggers(object(), frozenset())
    with pytest.raises(DeveloperError, match="app tables"):
        triggers.on("_storage")
    assert check_triggers(None, frozenset()) is None
