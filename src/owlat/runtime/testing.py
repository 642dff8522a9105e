"""An in-process runtime for tests of app packages, and code run inside it.

    async with open_test_app("tests.fixtures.app", tmp_path) as app:
        contact_id = (await app.run_mutation("contacts:create", {...})).value

        async def stored(ctx: QueryCtx) -> dict[str, Any] | None:
            return await ctx.db.get(contact_id)

        assert (await in_query(app, stored))["email"] == "a@example.com"

`database_url` selects the engine as `OWLAT_DATABASE_URL` does (empty: SQLite in the data
folder); the runtime's own tests run on SQLite and PostgreSQL alike.

`in_query` and `in_mutation` run a test's own code with a `ctx`, as convex-test's `t.run`
does: to set up data no public function writes, or to look at what a function wrote
(`in_mutation` commits like any mutation; the app's triggers fire). `run_adhoc` registers
any handler as an internal function of the running app and calls it (its whole outcome:
value, timestamp, read set); `query_result` does so for a query.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

from owlat.runtime.app_package import load_app_package
from owlat.runtime.application import Application
from owlat.runtime.calls import FunctionOutcome
from owlat.runtime.context import MutationCtx, QueryCtx
from owlat.runtime.database.engines import create_engine
from owlat.runtime.functions import FunctionKind, internal_mutation, internal_query
from owlat.runtime.storage.file_storage import open_file_storage

_T = TypeVar("_T")
_adhoc = itertools.count()

# Where the file URLs of a test app point (no server listens there unless a test starts one).
TEST_PUBLIC_URL = "http://127.0.0.1:3210"


@asynccontextmanager
async def open_test_app(
    app: str, data_dir: Path, *, scheduler_parallelism: int | None = 8, database_url: str = ""
) -> AsyncIterator[Application]:
    """A started `Application` of app package `app` on `database_url`, or on SQLite in
    `data_dir` (running its scheduled functions and crons unless `scheduler_parallelism` is
    None), with files in `data_dir/storage`, closed after."""
    application = Application(
        load_app_package(app),
        create_engine(data_dir, database_url),
        scheduler_parallelism=scheduler_parallelism,
        storage=open_file_storage(data_dir, public_url=TEST_PUBLIC_URL),
    )
    await application.start()
    try:
        yield application
    finally:
        await application.close()


async def run_adhoc(
    application: Application,
    kind: FunctionKind,
    handler: Callable[[Any, Any], Awaitable[Any]],
    args: dict[str, Any] | None = None,
) -> FunctionOutcome:
    """Register `handler(ctx, args)` as an internal query or mutation (`kind`) of the
    running app and call it with `args`; its outcome (it raises what the handler raised)."""
    decorator = internal_query if kind is FunctionKind.QUERY else internal_mutation
    path = f"adhoc:fn{next(_adhoc)}"
    application.package.functions.add(path, decorator(handler))
    return await application.run(kind, path, args or {}, internal=True)


async def in_query(application: Application, body: Callable[[QueryCtx], Awaitable[_T]]) -> _T:
    """Run `body(ctx)` as a query (a snapshot of now) and return its result."""

    async def handler(ctx: QueryCtx, args: dict[str, Any]) -> _T:
        return await body(ctx)

    outcome = await run_adhoc(application, FunctionKind.QUERY, handler)
    result: _T = outcome.value
    return result


async def in_mutation(application: Application, body: Callable[[MutationCtx], Awaitable[_T]]) -> _T:
    """Run `body(ctx)` as a mutation (one transaction, committed) and return its result."""

    async def handler(ctx: MutationCtx, args: dict[str, Any]) -> _T:
        return await body(ctx)

    outcome = await run_adhoc(application, FunctionKind.MUTATION, handler)
    result: _T = outcome.value
    return result


async def query_result(
    application: Application, body: Callable[[QueryCtx], Awaitable[Any]]
) -> FunctionOutcome:
    """Run `body(ctx)` as a query; its whole outcome (value, timestamp, read set)."""

    async def handler(ctx: QueryCtx, args: dict[str, Any]) -> Any:
        return await body(ctx)

    return await run_adhoc(application, FunctionKind.QUERY, handler)
