"""The Runtime protocol (calls.py): ctx, ctx.scheduler and ctx.storage need only it, so a
small fake stands in for the Application."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from owlat.runtime import ActionCtx, Auth, define_schema
from owlat.runtime.app_package import AppPackage
from owlat.runtime.calls import FunctionOutcome
from owlat.runtime.errors import DeveloperError, OperatorError
from owlat.runtime.functions import (
    FunctionDefinition,
    FunctionKind,
    FunctionLike,
    FunctionRegistry,
    internal_query,
    path_of,
)
from owlat.runtime.scheduler import Scheduler
from owlat.runtime.storage import StorageActions


class FakeRuntime:
    """Records the calls it is asked to run; has one internal query, `notes:list`."""

    def __init__(self) -> None:
        functions = FunctionRegistry()

        @internal_query
        async def list_notes(ctx: Any, args: Any) -> list[str]:
            return []

        functions.add("notes:list", list_notes)
        self.package = AppPackage("fake", define_schema({}), functions)
        self.storage = None
        self.calls: list[tuple[FunctionKind | None, str, Any, Any, bool]] = []

    def resolve(
        self, function: FunctionLike, kind: FunctionKind | None, internal: bool
    ) -> FunctionDefinition:
        return self.package.functions.resolve(path_of(function), kind, allow_internal=internal)

    async def run(
        self,
        kind: FunctionKind | None,
        function: FunctionLike,
        args: Any = None,
        *,
        identity: Any = None,
        internal: bool = False,
        hook: Any = None,
    ) -> FunctionOutcome:
        self.calls.append((kind, path_of(function), args, identity, internal))
        return FunctionOutcome(["a note"])

    async def run_nested(self, *args: Any) -> Any:
        raise AssertionError("an action runs nothing nested")

    async def run_system_read(self, body: Callable[[Any], Awaitable[Any]]) -> Any:
        raise AssertionError("not reached")

    async def run_system_write(self, body: Callable[[Any], Awaitable[Any]]) -> Any:
        raise AssertionError("not reached")


async def test_an_action_ctx_calls_functions_through_the_runtime() -> None:
    runtime = FakeRuntime()
    ctx = ActionCtx(runtime, Auth({"subject": "ann"}))
    assert await ctx.run_query("notes:list", {"tag": "x"}) == ["a note"]
    assert runtime.calls == [
        (FunctionKind.QUERY, "notes:list", {"tag": "x"}, {"subject": "ann"}, True)
    ]


async def test_scheduler_and_storage_ask_the_runtime_what_they_need() -> None:
    runtime = FakeRuntime()
    with pytest.raises(DeveloperError, match="Only mutations and actions can be scheduled"):
        await Scheduler(runtime, None).run_after(0, "notes:list")
    with pytest.raises(OperatorError, match="File storage is not configured"):
        await StorageActions(runtime).generate_upload_url()
