"""`ctx.db.lookup` (database/api.py): many index prefixes read in one engine call, with the
documents and the read set of one `query(...).with_index(...).collect()` each (both
engines)."""

from __future__ import annotations

from typing import Any

import pytest

from owlat.runtime.application import Application
from owlat.runtime.database.commits import Commit, ReadSet
from owlat.runtime.errors import QueryBuildError
from owlat.runtime.functions import FunctionKind
from owlat.runtime.testing import in_mutation, in_query, run_adhoc

PREFIXES = [["b", 2], ["a"], ["z"], ["b", 2], [None], []]


async def _fill(app: Application) -> None:
    async def body(ctx: Any) -> None:
        for tag, value in [("a", 1), ("b", 2), ("a", 3), ("b", 2), ("c", 4)]:
            await ctx.db.insert("items", {"tag": tag, "value": value})
        await ctx.db.insert("items", {"value": 5})

    await in_mutation(app, body)


def _queries(ctx: Any) -> list[Any]:
    """The `with_index` query that `lookup` answers for each of PREFIXES."""
    queries = []
    for prefix in PREFIXES:

        def index_range(q: Any, prefix: list[Any] = prefix) -> Any:
            for field, value in zip(("tag", "value"), prefix, strict=False):
                q = q.eq(field, value)
            return q

        queries.append(ctx.db.query("items").with_index("by_tag_value", index_range))
    return queries


async def test_lookup_answers_and_records_what_each_query_would(app: Application) -> None:
    await _fill(app)

    async def by_lookup(ctx: Any, args: Any) -> Any:
        return await ctx.db.lookup("items", "by_tag_value", PREFIXES)

    async def by_queries(ctx: Any, args: Any) -> Any:
        return [await query.collect() for query in _queries(ctx)]

    looked = await run_adhoc(app, FunctionKind.QUERY, by_lookup)
    queried = await run_adhoc(app, FunctionKind.QUERY, by_queries)
    assert looked.value == queried.value
    assert [len(rows) for rows in looked.value] == [2, 2, 0, 2, 0, 6]
    assert isinstance(looked.read_set, ReadSet) and isinstance(queried.read_set, ReadSet)
    intervals = looked.read_set.intervals("items", "by_tag_value")
    assert intervals == queried.read_set.intervals("items", "by_tag_value")
    assert len(intervals) >= 4


async def test_lookup_sees_the_transactions_own_held_inserts(app: Application) -> None:
    async def body(ctx: Any) -> Any:
        await ctx.db.insert_many("items", [{"tag": "n", "value": 1}, {"tag": "m", "value": 2}])
        found = await ctx.db.lookup("items", "by_tag_value", [["n"], ["m", 2], ["m", 3]])
        return [[row["value"] for row in rows] for rows in found]

    assert await in_mutation(app, body) == [[1], [2], []]


async def test_a_lookup_is_invalidated_by_an_insert_under_one_of_its_prefixes(
    app: Application,
) -> None:
    await _fill(app)

    async def read(ctx: Any, args: Any) -> Any:
        return await ctx.db.lookup("items", "by_tag_value", [["a"], ["q", 9]])

    read_set = (await run_adhoc(app, FunctionKind.QUERY, read)).read_set
    assert read_set is not None
    commits: list[Commit] = []
    app.on_commit(commits.append)
    for tag, value in (("q", 8), ("b", 0), ("q", 9), ("a", 7)):

        async def insert(ctx: Any, tag: str = tag, value: int = value) -> None:
            await ctx.db.insert("items", {"tag": tag, "value": value})

        await in_mutation(app, insert)
    assert [read_set.overlaps(commit.write_set) for commit in commits] == [
        False,
        False,
        True,
        True,
    ]


async def test_a_prefix_longer_than_the_index_is_refused(app: Application) -> None:
    async def read(ctx: Any) -> Any:
        with pytest.raises(QueryBuildError, match="4 values"):
            await ctx.db.lookup("items", "by_tag_value", [["a", 1, 2.0, "x"]])
        with pytest.raises(Exception, match="not found"):
            await ctx.db.lookup("items", "by_nothing", [["a"]])
        return True

    assert await in_query(app, read)
