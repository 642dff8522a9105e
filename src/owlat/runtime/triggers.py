"""Triggers: functions that run inside a mutation's transaction whenever it writes a table.

An app package may have a `triggers.py` exposing `triggers`:

    triggers = Triggers()

    @triggers.on("contacts")
    async def keep_counts(ctx: MutationCtx, change: Change) -> None:
        ...

After every `ctx.db.insert/patch/replace/delete` on that table, each trigger registered for
it runs with the mutation's `ctx` and a `Change` (the document before and after; `old` is
None for an insert, `new` None for a delete), in registration order, in the same
transaction: what it writes commits or rolls back with the write that caused it, and an
error it raises fails that write's mutation. This is the pattern of convex-helpers'
`Triggers` (denormalized counts and other derived data kept exact without relying on
every call site), built into the database API so that no write path can bypass it. Writes a
trigger makes fire triggers in turn, up to `MAX_DEPTH` levels. System writes (scheduler,
storage) never fire triggers.
"""

from __future__ import annotations

import dataclasses
import weakref
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Literal

from owlat.runtime.errors import DeveloperError
from owlat.runtime.types import Document

MAX_DEPTH = 8

Operation = Literal["insert", "update", "delete"]


@dataclasses.dataclass(frozen=True, slots=True)
class Change:
    """One write to a table: the document before (`old`) and after (`new`)."""

    table: str
    id: str
    old: Document | None
    new: Document | None

    @property
    def operation(self) -> Operation:
        if self.old is None:
            return "insert"
        return "delete" if self.new is None else "update"


# `async def trigger(ctx: MutationCtx, change: Change) -> None`; the ctx is typed `Any`
# here because context.py, which defines MutationCtx, builds on this module.
Trigger = Callable[[Any, Change], Awaitable[None]]


class Triggers:
    """The triggers of an app package, by table."""

    def __init__(self) -> None:
        self._by_table: dict[str, list[Trigger]] = {}

    def on(self, table: str) -> Callable[[Trigger], Trigger]:
        """Decorator: run the function after every write to `table`."""
        if not isinstance(table, str) or not table or table.startswith("_"):
            raise DeveloperError(f"Triggers apply to app tables, not {table!r}")

        def register(function: Trigger) -> Trigger:
            self._by_table.setdefault(table, []).append(function)
            return function

        return register

    @property
    def tables(self) -> frozenset[str]:
        return frozenset(self._by_table)

    def watches(self, table: str) -> bool:
        """Whether `table` has triggers (asked on every write: a dict lookup)."""
        return table in self._by_table

    def of(self, table: str) -> Sequence[Trigger]:
        """The triggers of `table`, in registration order."""
        return self._by_table.get(table, ())


class TriggerRunner:
    """Fires a mutation's triggers; counts how deep triggers' own writes nest.

    It holds its mutation's ctx weakly: the ctx owns `ctx.db`, which owns this runner, and
    a strong reference back would make every mutation a reference cycle that only the
    cyclic garbage collector frees (with its whole transaction: a 1M-row import grew
    past 1 GiB before the collector caught up)."""

    __slots__ = ("_ctx", "_depth", "_triggers")

    def __init__(self, triggers: Triggers, ctx: object) -> None:
        self._triggers = triggers
        self._ctx = weakref.ref(ctx)
        self._depth = 0

    def watches(self, table: str) -> bool:
        return self._triggers.watches(table)

    async def fire(self, change: Change) -> None:
        functions = self._triggers.of(change.table)
        if not functions:
            return
        if self._depth >= MAX_DEPTH:
            raise DeveloperError(
                f"Triggers nested more than {MAX_DEPTH} levels deep (writing {change.table!r}): "
                "a trigger keeps causing writes that fire triggers"
            )
        self._depth += 1
        try:
            ctx = self._ctx()
            assert ctx is not None  # the mutation that writes holds its ctx
            for function in functions:
                await function(ctx, change)
        finally:
            self._depth -= 1


def check_triggers(triggers: Any, table_names: frozenset[str]) -> Triggers | None:
    """The package's `triggers` checked against its schema's tables (None: it has none)."""
    if triggers is None:
        return None
    if not isinstance(triggers, Triggers):
        raise DeveloperError("triggers.py must define `triggers = Triggers()`")
    unknown = sorted(triggers.tables - table_names)
    if unknown:
        raise DeveloperError(f"Triggers are registered for tables the schema lacks: {unknown}")
    return triggers
