"""Filter push-down: the database's answer must equal Python's for every expression.

Every expression below runs three ways on a table of values of every Convex type (and
awkward ones: NaN, -0.0, int64, bytes, NUL characters, Unicode case pairs): evaluated in
Python document by document (the reference), through `collect()` (SQL skips rows, Python
re-checks the rest) and through `count()` (SQL counts the rows it is sure of). A predicate
that answered TRUE or FALSE wrongly for one row makes one of the two differ.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Callable
from typing import Any

import pytest

from owlat.runtime import Int64
from owlat.runtime.application import Application
from owlat.runtime.database.filters import TYPE_NAMES, Expression, FilterBuilder
from owlat.runtime.database.pushdown import (
    UNKNOWN,
    PostgresDialect,
    SqliteDialect,
    compile_filters,
)
from owlat.runtime.errors import QueryBuildError
from owlat.runtime.testing import in_mutation, in_query, query_result
from owlat.runtime.types import UNDEFINED

SCALARS: list[Any] = [
    None,
    Int64(-5),
    Int64(2),
    -math.inf,
    -2.5,
    -0.0,
    0.0,
    2.0,
    3.0,
    math.inf,
    math.nan,
    False,
    True,
    "",
    "a",
    "Abc",
    "abc",
    "b\x00",
    "É",
    "é",
    "İstanbul",
    "zeta",
    b"",
    b"\x00\xff",
]
VALUES: list[Any] = [
    *SCALARS,
    [],
    [2.0],
    ["a", "abc"],
    [None, True],
    [Int64(2)],
    {},
    {"a": 2.0},
    {"a": "Abc"},
    {"a": None},
    {"a": [2.0, "a"]},
    {"b": 1.0},
]
LITERALS: list[Any] = [UNDEFINED, *SCALARS, [], [2.0], {"a": 2.0}]
Build = Callable[[FilterBuilder], Expression]


def _expressions() -> list[tuple[str, Build]]:
    cases: list[tuple[str, Build]] = []
    for path in ("value", "value.a", "tag"):
        for literal in LITERALS:
            for op in ("eq", "neq", "lt", "lte", "gt", "gte"):
                cases.append(
                    (
                        f"{op}({path}, {literal!r})",
                        lambda q, p=path, o=op, v=literal: getattr(q, o)(q.field(p), v),
                    )
                )
            cases.append(
                (
                    f"lit-first lt({literal!r}, {path})",
                    lambda q, p=path, v=literal: q.lt(v, q.field(p)),
                )
            )
            cases.append(
                (
                    f"includes({path}, {literal!r})",
                    lambda q, p=path, v=literal: q.includes(q.field(p), v),
                )
            )
        for text in ("", "a", "b", "abc", "é", "i̇", "\x00"):
            cases += [
                (
                    f"eq(lower({path}), {text!r})",
                    lambda q, p=path, t=text: q.eq(q.lower(q.field(p)), t),
                ),
                (
                    f"contains({path}, {text!r})",
                    lambda q, p=path, t=text: q.contains(q.field(p), t),
                ),
                (
                    f"contains(lower({path}), {text!r})",
                    lambda q, p=path, t=text: q.contains(q.lower(q.field(p)), t),
                ),
                (
                    f"starts_with({path}, {text!r})",
                    lambda q, p=path, t=text: q.starts_with(q.field(p), t),
                ),
            ]
        for name in TYPE_NAMES:
            cases.append(
                (f"is_type({path}, {name})", lambda q, p=path, n=name: q.is_type(q.field(p), n))
            )
        cases.append((f"bare {path}", lambda q, p=path: q.field(p)))
        cases += _same_field_combinations(path)
    cases += [
        ("not eq", lambda q: q.not_(q.eq(q.field("value"), "a"))),
        ("not unknown", lambda q: q.not_(q.eq(q.field("value"), [2.0]))),
        (
            "and/or nested",
            lambda q: q.or_(
                q.and_(q.is_type(q.field("value"), "number"), q.gt(q.field("value"), 1.0)),
                q.and_(q.eq(q.field("tag"), "t1"), q.not_(q.is_type(q.field("value"), "string"))),
            ),
        ),
        (
            "and of unknown and false",
            lambda q: q.and_(q.eq(q.field("value"), {"a": 2.0}), q.eq(q.field("tag"), "none")),
        ),
        (
            "or of unknown and true",
            lambda q: q.or_(q.eq(q.field("value"), {"a": 2.0}), q.eq(q.field("tag"), "t0")),
        ),
        (
            "arithmetic stays in python",
            lambda q: q.and_(
                q.is_type(q.field("value"), "number"), q.gt(q.mul(q.field("value"), 2.0), 3.0)
            ),
        ),
        ("two fields", lambda q: q.eq(q.field("value"), q.field("value"))),
        ("empty and", lambda q: q.and_()),
        ("empty or", lambda q: q.or_()),
        ("literal true", lambda q: q.eq(1.0, 1.0)),
    ]
    return cases


def _same_field_combinations(path: str) -> list[tuple[str, Build]]:
    """Tests of one field under AND / OR / NOT, which the compiler merges into one CASE
    over the field's type (segment conditions are shaped like these)."""
    tests: list[tuple[str, Build]] = [
        ("is_number", lambda q: q.is_type(q.field(path), "number")),
        ("is_string", lambda q: q.is_type(q.field(path), "string")),
        ("is_undefined", lambda q: q.is_type(q.field(path), "undefined")),
        ("gte 2", lambda q: q.gte(q.field(path), 2.0)),
        ("lt 2.5", lambda q: q.lt(q.field(path), 2.5)),
        ("eq ''", lambda q: q.eq(q.field(path), "")),
        ("eq null", lambda q: q.eq(q.field(path), None)),
        ("eq object", lambda q: q.eq(q.field(path), {"a": 2.0})),
        ("lower eq abc", lambda q: q.eq(q.lower(q.field(path)), "abc")),
        ("contains lower b", lambda q: q.contains(q.lower(q.field(path)), "b")),
        ("starts_with a", lambda q: q.starts_with(q.field(path), "a")),
        ("includes a", lambda q: q.includes(q.field(path), "a")),
        ("bare", lambda q: q.field(path)),
    ]
    cases: list[tuple[str, Build]] = []
    for (name_a, a), (name_b, b) in zip(tests, tests[1:] + tests[:1], strict=True):
        for op in ("and_", "or_"):
            cases.append(
                (
                    f"{op}({name_a}, {name_b}) on {path}",
                    lambda q, o=op, x=a, y=b: getattr(q, o)(x(q), y(q)),
                )
            )
        cases.append(
            (
                f"not and({name_a}, not {name_b}) on {path}",
                lambda q, x=a, y=b: q.not_(q.and_(x(q), q.not_(y(q)))),
            )
        )
        cases.append(
            (
                f"or(and({name_a}, tag), {name_b}, not {name_a}) on {path}",
                lambda q, x=a, y=b: q.or_(
                    q.and_(x(q), q.eq(q.field("tag"), "t1")), y(q), q.not_(x(q))
                ),
            )
        )
    return cases


EXPRESSIONS = _expressions()


@pytest.fixture
async def items(app: Application) -> list[dict[str, Any]]:
    async def write(ctx: Any) -> list[dict[str, Any]]:
        for number, value in enumerate(VALUES):
            await ctx.db.insert("items", {"value": value, "tag": f"t{number % 3}"})
        await ctx.db.insert("items", {"value": "untagged"})
        return list(await ctx.db.query("items").collect())

    documents: list[dict[str, Any]] = await in_mutation(app, write)
    return documents


async def test_every_expression_matches_python(
    app: Application, items: list[dict[str, Any]]
) -> None:
    async def run_all(ctx: Any) -> list[tuple[str, list[str], int, list[str], int]]:
        outcomes = []
        for name, build in EXPRESSIONS:
            expression = build(FilterBuilder())
            expected = [d["_id"] for d in items if expression.evaluate(d) is True]
            collected = [d["_id"] for d in await ctx.db.query("items").filter(build).collect()]
            counted = await ctx.db.query("items").filter(build).count()
            outcomes.append((name, expected, len(expected), collected, counted))
        return outcomes

    outcomes = await in_query(app, run_all)
    assert len(outcomes) > 700
    for name, expected, expected_count, collected, counted in outcomes:
        assert collected == expected, name
        assert counted == expected_count, name


async def test_ordered_and_paginated_scans_match_python(
    app: Application, items: list[dict[str, Any]]
) -> None:
    build: Build = lambda q: q.or_(  # noqa: E731
        q.is_type(q.field("value"), "string"), q.lt(q.field("value"), 2.5)
    )
    expected = [d["_id"] for d in items if build(FilterBuilder()).evaluate(d) is True]

    async def pages(ctx: Any) -> tuple[list[str], list[str]]:
        descending = await ctx.db.query("items").order("desc").filter(build).collect()
        walked: list[str] = []
        cursor = None
        while True:
            page = (
                await ctx.db.query("items")
                .filter(build)
                .paginate({"numItems": 4, "cursor": cursor})
            )
            walked += [d["_id"] for d in page["page"]]
            if page["isDone"]:
                break
            cursor = page["continueCursor"]
        return [d["_id"] for d in descending], walked

    descending, walked = await in_query(app, pages)
    assert descending == expected[::-1]
    assert walked == expected


def test_common_conditions_are_decided_in_sql() -> None:
    q = FilterBuilder()
    decided = [
        q.eq(q.field("properties.plan"), "pro"),
        q.gt(q.field("properties.score"), 10.0),
        q.eq(q.field("deletedAt"), UNDEFINED),
        q.contains(q.lower(q.field("firstName")), "ann"),
        q.includes(q.field("mailingListIds"), "k57abc"),
        q.and_(q.is_type(q.field("x"), "number"), q.lte(q.field("x"), 3.0)),
    ]
    for dialect in (SqliteDialect(), PostgresDialect()):
        for expression in decided:
            predicate = compile_filters(dialect, [expression])
            assert predicate is not None
            assert predicate.sql != UNKNOWN
    assert compile_filters(SqliteDialect(), [q.gt(q.add(q.field("x"), 1.0), 2.0)]) is None
    assert compile_filters(SqliteDialect(), [q.eq(q.field('we"ird'), 1.0)]) is None


@pytest.mark.parametrize(
    ("dialect", "reads_type"),
    [(SqliteDialect(), "json_type("), (PostgresDialect(), "jsonb_typeof(")],
)
def test_tests_of_one_field_read_its_type_once(dialect: Any, reads_type: str) -> None:
    q = FilterBuilder()
    score, plan = q.field("properties.score"), q.field("properties.plan")
    condition = q.and_(q.is_type(score, "number"), q.gte(score, 50.0))  # a segment's `gte`
    negated = q.not_(q.and_(q.is_type(score, "number"), q.lt(score, 10.0)))
    predicate = compile_filters(dialect, [q.and_(condition, negated, q.eq(q.lower(plan), "pro"))])
    assert predicate is not None
    assert predicate.sql.count(reads_type) == 2  # score once, plan once
    assert predicate.sql.count("?" if dialect.placeholder == "?" else "%s") == len(predicate.params)


async def test_count_reads_the_whole_range_and_skips_nothing_it_cannot_decide(
    app: Application, items: list[dict[str, Any]]
) -> None:
    async def count_t1(ctx: Any) -> int:
        query = ctx.db.query("items").with_index("by_tag_value", lambda r: r.eq("tag", "t1"))
        return int(await query.filter(lambda q: q.is_type(q.field("value"), "string")).count())

    result = await query_result(app, count_t1)
    assert result.value == sum(
        1 for d in items if d.get("tag") == "t1" and isinstance(d["value"], str)
    )
    assert result.read_set is not None
    (interval,) = result.read_set.intervals("items", "by_tag_value")
    # the whole t1 range: a new t1 document of any value invalidates the count
    unfiltered = await query_result(
        app,
        lambda ctx: (
            ctx.db.query("items").with_index("by_tag_value", lambda r: r.eq("tag", "t1")).collect()
        ),
    )
    assert unfiltered.read_set is not None
    assert [interval] == unfiltered.read_set.intervals("items", "by_tag_value")


async def test_new_operations_check_their_arguments(app: Application) -> None:
    with pytest.raises(QueryBuildError, match="is_type\\(\\) takes one of"):
        FilterBuilder().is_type(FilterBuilder().field("x"), "text")
    assert await in_query(app, lambda ctx: ctx.db.query("items").count()) == 0


def test_a_nul_elsewhere_in_the_document_leaves_a_string_test_to_sql() -> None:
    """json1 cuts a string at an escaped NUL, so a string test on a field holding one is
    left to Python (NULL); a NUL in another field does not matter, and SQL decides."""
    q = FilterBuilder()
    predicate = compile_filters(SqliteDialect(), [q.eq(q.field("tag"), "t1")])
    assert predicate is not None
    db = sqlite3.connect(":memory:")
    statement = f"SELECT {predicate.sql} FROM (SELECT CAST(? AS BLOB) AS value) AS d"

    def answer(document: str) -> Any:
        return db.execute(statement, (*predicate.params, document.encode())).fetchone()[0]

    assert answer('{"tag":"t1","note":"a\\u0000b"}') == 1
    assert answer('{"tag":"t2","note":"a\\u0000b"}') == 0
    assert answer('{"tag":"t1\\u0000x","note":""}') is None
