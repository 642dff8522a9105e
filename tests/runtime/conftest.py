from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from owlat.runtime.application import Application
from owlat.runtime.calls import FunctionOutcome
from owlat.runtime.functions import FunctionKind, internal_mutation, internal_query
from owlat.runtime.testing import open_test_app

FIXTURE_APP = "tests.fixtures.app"
_adhoc = itertools.count()


@pytest.fixture
async def app(tmp_path: Path, database_url: str) -> AsyncIterator[Application]:
    async with open_test_app(FIXTURE_APP, tmp_path, database_url=database_url) as application:
        yield application


async def run_adhoc(
    application: Application,
    kind: FunctionKind,
    handler: Callable[[Any, Any], Awaitable[Any]],
    args: dict[str, Any] | None = None,
) -> FunctionOutcome:
    """Register `handler` as an internal function of the running app and call it."""
    decorator = internal_query if kind is FunctionKind.QUERY else internal_mutation
    path = f"adhoc:fn{next(_adhoc)}"
    application.package.functions.add(path, decorator(handler))
    return await application.run(kind, path, args or {}, internal=True)


async def in_mutation(application: Application, handler: Callable[[Any], Awaitable[Any]]) -> Any:
    """Run `handler(ctx)` as a mutation; returns its result."""

    async def wrapped(ctx: Any, args: Any) -> Any:
        return await handler(ctx)

    return (await run_adhoc(application, FunctionKind.MUTATION, wrapped)).value


async def in_query(application: Application, handler: Callable[[Any], Awaitable[Any]]) -> Any:
    """Run `handler(ctx)` as a query; returns its result."""

    async def wrapped(ctx: Any, args: Any) -> Any:
        return await handler(ctx)

    return (await run_adhoc(application, FunctionKind.QUERY, wrapped)).value


async def query_result(
    application: Application, handler: Callable[[Any], Awaitable[Any]]
) -> FunctionOutcome:
    """Run `handler(ctx)` as a query; returns the whole result (value, ts, read set)."""

    async def wrapped(ctx: Any, args: Any) -> Any:
        return await handler(ctx)

    return await run_adhoc(application, FunctionKind.QUERY, wrapped)
