"""owlat.runtime.testing: a test's own code run as a query or a mutation of the app."""

from __future__ import annotations

from typing import Any

import pytest

from owlat.runtime import ConvexError, MutationCtx, QueryCtx
from owlat.runtime.application import Application
from owlat.runtime.functions import FunctionKind
from owlat.runtime.testing import in_mutation, in_query, query_result, run_adhoc


async def _values(ctx: QueryCtx) -> list[Any]:
    return [row["value"] for row in await ctx.db.query("items").collect()]


async def test_in_mutation_commits_and_in_query_reads(app: Application) -> None:
    async def insert(ctx: MutationCtx) -> str:
        return await ctx.db.insert("items", {"value": 1})

    item_id = await in_mutation(app, insert)
    assert await in_query(app, _values) == [1]

    async def fail(ctx: MutationCtx) -> None:
        await ctx.db.patch(item_id, {"value": 2})
        raise ConvexError("no")

    with pytest.raises(ConvexError, match="^no$"):
        await in_mutation(app, fail)
    assert await in_query(app, _values) == [1]  # the failed mutation wrote nothing


async def test_run_adhoc_and_query_result_give_the_whole_outcome(app: Application) -> None:
    async def handler(ctx: MutationCtx, args: dict[str, Any]) -> str:
        return await ctx.db.insert("items", {"value": args["value"]})

    written = await run_adhoc(app, FunctionKind.MUTATION, handler, {"value": 7})
    assert written.ts is not None and isinstance(written.value, str)
    read = await query_result(app, _values)
    assert (
        read.value == [7]
        and read.read_set is not None
        and read.ts is not None
        and read.ts >= written.ts
    )
