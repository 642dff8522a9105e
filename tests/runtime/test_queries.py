"""ctx.db.query: index ranges, order across mixed types, filters, terminals, pagination."""

from __future__ import annotations

import functools
import math
import random
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from owlat.runtime import Int64
from owlat.runtime.application import Application
from owlat.runtime.database.keys import compare_values
from owlat.runtime.errors import QueryBuildError, SchemaError
from owlat.runtime.testing import in_mutation, in_query

MIXED_VALUES: list[Any] = [
    None,
    Int64(-5),
    Int64(7),
    -math.inf,
    -2.5,
    0.0,
    3.0,
    math.inf,
    False,
    True,
    "",
    "a",
    "b\x00",
    "é",
    b"",
    b"\x00\xff",
    [],
    [1.0],
    [1.0, "x"],
    {},
    {"a": 1.0},
]


async def insert_items(app: Application, values: list[Any], tag: str | None = None) -> list[str]:
    async def write(ctx: Any) -> list[str]:
        ids = []
        for value in values:
            fields: dict[str, Any] = {"value": value}
            if tag is not None:
                fields["tag"] = tag
            ids.append(await ctx.db.insert("items", fields))
        return ids

    ids: list[str] = await in_mutation(app, write)
    return ids


async def values_in_index_order(app: Application, order: str = "asc") -> list[Any]:
    async def read(ctx: Any) -> Any:
        return [
            d["value"]
            for d in await ctx.db.query("items").with_index("by_value").order(order).collect()
        ]

    result: list[Any] = await in_query(app, read)
    return result


def sort_key(value: Any) -> Any:
    return functools.cmp_to_key(compare_values)(value)


async def test_index_orders_mixed_types_in_convex_order(app: Application) -> None:
    shuffled = MIXED_VALUES[:]
    random.Random(7).shuffle(shuffled)
    await insert_items(app, shuffled)
    ascending = await values_in_index_order(app)
    assert [type(v) for v in ascending] == [type(v) for v in MIXED_VALUES]
    assert ascending == MIXED_VALUES
    assert await values_in_index_order(app, "desc") == MIXED_VALUES[::-1]


async def test_missing_field_sorts_first(app: Application) -> None:
    async def write(ctx: Any) -> None:
        await ctx.db.insert("people", {"name": "aged", "profile": {"age": 3}})
        await ctx.db.insert("items", {"value": None, "tag": "x"})
        await ctx.db.insert("items", {"value": 1.0})

    await in_mutation(app, write)

    async def read(ctx: Any) -> Any:
        return [
            d.get("tag") for d in await ctx.db.query("items").with_index("by_tag_value").collect()
        ]

    assert await in_query(app, read) == [None, "x"]


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    values=st.lists(
        st.one_of(
            st.floats(allow_nan=False),
            st.integers(-10, 10).map(Int64),
            st.text(max_size=3),
            st.booleans(),
            st.none(),
        ),
        max_size=12,
    )
)
async def test_index_order_matches_reference_comparison(
    tmp_path_factory: Any, values: list[Any]
) -> None:
    from owlat.runtime.testing import open_test_app

    async with open_test_app("tests.fixtures.app", tmp_path_factory.mktemp("h")) as app:
        await insert_items(app, values)
        stored = await values_in_index_order(app)
    normalized = [
        float(v) if isinstance(v, int) and not isinstance(v, bool | Int64) else v for v in values
    ]
    assert [sort_key(v) for v in stored] == sorted(sort_key(v) for v in normalized)


async def test_range_bounds_eq_gt_gte_lt_lte(app: Application) -> None:
    await insert_items(app, [1.0, 2.0, 3.0, 4.0, 5.0], tag="t")
    await insert_items(app, [1.0, 2.0, 3.0], tag="u")

    async def read(ctx: Any) -> Any:
        def values(docs: list[Any]) -> list[float]:
            return [d["value"] for d in docs]

        base = ctx.db.query
        return {
            "eq": values(
                await base("items").with_index("by_tag_value", lambda q: q.eq("tag", "t")).collect()
            ),
            "gt_lte": values(
                await base("items")
                .with_index(
                    "by_tag_value", lambda q: q.eq("tag", "t").gt("value", 2).lte("value", 4)
                )
                .collect()
            ),
            "gte_lt": values(
                await base("items")
                .with_index(
                    "by_tag_value", lambda q: q.eq("tag", "t").gte("value", 2).lt("value", 4)
                )
                .collect()
            ),
            "exact": values(
                await base("items")
                .with_index("by_tag_value", lambda q: q.eq("tag", "u").eq("value", 2))
                .collect()
            ),
            "desc": values(
                await base("items")
                .with_index("by_tag_value", lambda q: q.eq("tag", "t").lt("value", 3))
                .order("desc")
                .collect()
            ),
            "empty": values(
                await base("items")
                .with_index(
                    "by_tag_value", lambda q: q.eq("tag", "t").gt("value", 4).lt("value", 5)
                )
                .collect()
            ),
        }

    assert await in_query(app, read) == {
        "eq": [1.0, 2.0, 3.0, 4.0, 5.0],
        "gt_lte": [3.0, 4.0],
        "gte_lt": [2.0, 3.0],
        "exact": [2.0],
        "desc": [2.0, 1.0],
        "empty": [],
    }


async def test_nested_field_index(app: Application) -> None:
    async def write(ctx: Any) -> None:
        for age in (30, 10, 20):
            await ctx.db.insert("people", {"name": f"p{age}", "profile": {"age": age}})

    await in_mutation(app, write)

    async def read(ctx: Any) -> Any:
        return [
            p["name"]
            for p in await ctx.db.query("people")
            .with_index("by_age", lambda q: q.gte("profile.age", 15))
            .collect()
        ]

    assert await in_query(app, read) == ["p20", "p30"]


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda q: q.eq("value", 1), "out of order"),
        (lambda q: q.gt("tag", "a").eq("value", 1), "equalities must come first"),
        (lambda q: q.gt("tag", "a").gt("tag", "b"), "lower bound is already set"),
        (lambda q: q.eq("tag", "a").gt("tag", "b"), "out of order"),
        (lambda q: None, "must return the range builder"),
    ],
)
async def test_invalid_index_ranges_are_rejected(
    app: Application, build: Any, message: str
) -> None:
    async def read(ctx: Any) -> Any:
        return await ctx.db.query("items").with_index("by_tag_value", build).collect()

    with pytest.raises(QueryBuildError, match=message):
        await in_query(app, read)


async def test_unknown_index_names_the_known_ones(app: Application) -> None:
    async def read(ctx: Any) -> Any:
        return await ctx.db.query("items").with_index("by_nothing").collect()

    with pytest.raises(SchemaError, match="by_creation_time, by_value, by_tag_value"):
        await in_query(app, read)


async def test_default_order_is_creation_time(app: Application) -> None:
    ids = await insert_items(app, [3.0, 1.0, 2.0])

    async def read(ctx: Any) -> Any:
        return (
            [d["_id"] for d in await ctx.db.query("items").collect()],
            [d["_id"] for d in await ctx.db.query("items").order("desc").collect()],
        )

    ascending, descending = await in_query(app, read)
    assert ascending == ids
    assert descending == ids[::-1]


async def test_filters(app: Application) -> None:
    await insert_items(app, [1.0, 2.0, 3.0, 4.0], tag="f")
    await insert_items(app, [Int64(2), "2"], tag="g")

    async def read(ctx: Any) -> Any:
        def run(predicate: Any) -> Any:
            return ctx.db.query("items").filter(predicate).collect()

        async def values(predicate: Any) -> list[Any]:
            return [d["value"] for d in await run(predicate)]

        return {
            "eq": await values(lambda q: q.eq(q.field("value"), 2)),
            "neq_float": len(await values(lambda q: q.neq(q.field("value"), 2.0))),
            "range": await values(
                lambda q: q.and_(q.gt(q.field("value"), 1), q.lte(q.field("value"), 3))
            ),
            "or": await values(
                lambda q: q.or_(q.eq(q.field("value"), 1), q.eq(q.field("value"), 4))
            ),
            "not": len(await values(lambda q: q.not_(q.eq(q.field("tag"), "f")))),
            "arith": await values(
                lambda q: q.and_(q.eq(q.field("tag"), "f"), q.eq(q.mod(q.field("value"), 2), 0))
            ),
            "mul": await values(
                lambda q: q.and_(q.eq(q.field("tag"), "f"), q.gt(q.mul(q.field("value"), 10), 35))
            ),
            "int64": await values(lambda q: q.eq(q.field("value"), Int64(2))),
        }

    result = await in_query(app, read)
    assert result == {
        "eq": [2.0],
        "neq_float": 5,
        "range": [2.0, 3.0],
        "or": [1.0, 4.0],
        "not": 2,
        "arith": [2.0, 4.0],
        "mul": [4.0],
        "int64": [Int64(2)],
    }

    async def mixed(ctx: Any) -> Any:
        return (
            await ctx.db.query("items")
            .filter(lambda q: q.eq(q.mod(q.field("value"), 2), 0))
            .collect()
        )

    with pytest.raises(QueryBuildError, match="Cannot mod Int64 and float"):
        await in_query(app, mixed)


async def test_filter_rejects_python_booleans(app: Application) -> None:
    async def read(ctx: Any) -> Any:
        return await ctx.db.query("items").filter(lambda q: q.field("value") == 1).collect()

    with pytest.raises(QueryBuildError, match="filter\\(\\) must return an expression"):
        await in_query(app, read)


async def test_take_first_unique(app: Application) -> None:
    await insert_items(app, [1.0, 2.0, 3.0], tag="x")
    await insert_items(app, [9.0], tag="y")

    async def read(ctx: Any) -> Any:
        q = ctx.db.query
        return {
            "take": [d["value"] for d in await q("items").with_index("by_value").take(2)],
            "first": (await q("items").with_index("by_value").order("desc").first())["value"],
            "unique": (
                await q("items").with_index("by_tag_value", lambda r: r.eq("tag", "y")).unique()
            )["value"],
            "none": await q("items")
            .with_index("by_tag_value", lambda r: r.eq("tag", "z"))
            .unique(),
        }

    assert await in_query(app, read) == {
        "take": [1.0, 2.0],
        "first": 9.0,
        "unique": 9.0,
        "none": None,
    }

    async def not_unique(ctx: Any) -> Any:
        return (
            await ctx.db.query("items")
            .with_index("by_tag_value", lambda r: r.eq("tag", "x"))
            .unique()
        )

    with pytest.raises(QueryBuildError, match="unique\\(\\) query returned more than one"):
        await in_query(app, not_unique)


async def paginate(
    app: Application, cursor: str | None, num_items: int, tag: str = "p", order: str = "asc"
) -> dict[str, Any]:
    async def read(ctx: Any) -> Any:
        return (
            await ctx.db.query("items")
            .with_index("by_tag_value", lambda r: r.eq("tag", tag))
            .order(order)
            .paginate({"numItems": num_items, "cursor": cursor})
        )

    page: dict[str, Any] = await in_query(app, read)
    return page


async def test_pagination_walks_all_pages(app: Application) -> None:
    await insert_items(app, [float(i) for i in range(10)], tag="p")
    seen: list[float] = []
    cursor = None
    pages = 0
    while True:
        page = await paginate(app, cursor, 3)
        seen += [d["value"] for d in page["page"]]
        cursor = page["continueCursor"]
        pages += 1
        if page["isDone"]:
            break
    assert seen == [float(i) for i in range(10)]
    assert pages == 4
    again = await paginate(app, cursor, 3)
    assert again == {"page": [], "isDone": True, "continueCursor": cursor}


async def test_pagination_has_no_duplicates_or_gaps_while_documents_change(
    app: Application,
) -> None:
    ids = await insert_items(app, [float(i) for i in range(0, 40, 2)], tag="p")
    survivors = set(ids)
    rng = random.Random(3)
    seen: list[str] = []
    cursor = None
    step = 0
    while True:
        page = await paginate(app, cursor, 4, order="desc" if step < 0 else "asc")
        seen += [d["_id"] for d in page["page"]]
        if page["isDone"]:
            break
        cursor = page["continueCursor"]
        step += 1
        victim = rng.choice(sorted(survivors))
        survivors.discard(victim)

        async def churn(ctx: Any, victim: str = victim, step: int = step) -> None:
            await ctx.db.delete(victim)
            await ctx.db.insert(
                "items", {"value": rng.choice([-1.0, 17.0, 99.0]) + step, "tag": "p"}
            )

        await in_mutation(app, churn)

    assert len(seen) == len(set(seen)), "a document appeared on two pages"
    deleted = set(ids) - survivors
    assert survivors - deleted <= set(seen), "a document present throughout was skipped"


async def test_pagination_descending_and_bad_cursor(app: Application) -> None:
    await insert_items(app, [1.0, 2.0, 3.0], tag="d")
    first = await paginate(app, None, 2, tag="d", order="desc")
    assert [d["value"] for d in first["page"]] == [3.0, 2.0] and not first["isDone"]
    second = await paginate(app, first["continueCursor"], 2, tag="d", order="desc")
    assert [d["value"] for d in second["page"]] == [1.0] and second["isDone"]
    with pytest.raises(QueryBuildError, match="Invalid pagination cursor"):
        await paginate(app, "!!!", 2, tag="d")
    with pytest.raises(QueryBuildError, match="numItems"):
        await paginate(app, None, 0, tag="d")


async def test_pagination_end_cursor_pins_the_page_end(app: Application) -> None:
    await insert_items(app, [1.0, 2.0, 3.0, 4.0], tag="e")
    first = await paginate(app, None, 2, tag="e")
    await insert_items(app, [1.5], tag="e")

    async def read(ctx: Any) -> Any:
        return (
            await ctx.db.query("items")
            .with_index("by_tag_value", lambda r: r.eq("tag", "e"))
            .paginate({"numItems": 2, "cursor": None, "endCursor": first["continueCursor"]})
        )

    pinned = await in_query(app, read)
    assert [d["value"] for d in pinned["page"]] == [1.0, 1.5, 2.0]
    assert pinned["continueCursor"] == first["continueCursor"]


async def test_async_iteration(app: Application) -> None:
    await insert_items(app, [1.0, 2.0])

    async def read(ctx: Any) -> Any:
        return [d["value"] async for d in ctx.db.query("items")]

    assert await in_query(app, read) == [1.0, 2.0]


async def test_large_scan_crosses_batches(app: Application) -> None:
    await insert_items(app, [float(i) for i in range(300)], tag="big")

    async def read(ctx: Any) -> Any:
        rows = (
            await ctx.db.query("items")
            .with_index("by_tag_value", lambda r: r.eq("tag", "big").gte("value", 5))
            .order("desc")
            .collect()
        )
        return [d["value"] for d in rows]

    assert await in_query(app, read) == [float(i) for i in range(299, 4, -1)]


async def test_values_whose_encoding_extends_another_are_kept_apart(app: Application) -> None:
    await insert_items(app, ["ab", "ab\x00c", "ab\x00", "abc"], tag="s")
    await insert_items(app, [{}, {"": 1.0}], tag="o")

    async def read(ctx: Any) -> Any:
        def run(build: Any) -> Any:
            return ctx.db.query("items").with_index("by_tag_value", build).collect()

        return {
            "eq": [d["value"] for d in await run(lambda q: q.eq("tag", "s").eq("value", "ab"))],
            "gt": [d["value"] for d in await run(lambda q: q.eq("tag", "s").gt("value", "ab"))],
            "lte": [d["value"] for d in await run(lambda q: q.eq("tag", "s").lte("value", "ab"))],
            "obj": [d["value"] for d in await run(lambda q: q.eq("tag", "o").eq("value", {}))],
        }

    assert await in_query(app, read) == {
        "eq": ["ab"],
        "gt": ["ab\x00", "ab\x00c", "abc"],
        "lte": ["ab"],
        "obj": [{}],
    }
