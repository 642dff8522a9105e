"""A function call, seen from both sides of `ctx`.

`FunctionOutcome` is what running a function gives back, as Convex's `UdfOutcome`: the
value it returned or the error it raised, the timestamp it ran at, what it read and the
lines it logged. Transports that report failures (the HTTP API, sync sessions, the CLI, the
subscription cache) take it from `Application.execute`; a failed query's read set is in it
too, since its result changes when what it read changes.

`Runtime` is what the code running inside a call may ask of the runtime that runs it: the
ctx classes (context.py), `ctx.scheduler`, `ctx.storage` and the scheduler's worker are
typed against it rather than against the whole `Application`, which implements it. A test
can hand them a small fake.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

if TYPE_CHECKING:
    from owlat.runtime.app_package import AppPackage
    from owlat.runtime.auth import Auth, UserIdentity
    from owlat.runtime.database.commits import ReadSet
    from owlat.runtime.database.transaction import MutationHook, Transaction
    from owlat.runtime.functions import FunctionDefinition, FunctionKind, FunctionLike
    from owlat.runtime.storage.file_storage import FileStorage

_T = TypeVar("_T")


@dataclasses.dataclass(slots=True)
class FunctionOutcome:
    """What one call gave: its `value`, or the `error` it raised; what it read and logged."""

    value: Any = None
    error: Exception | None = None
    ts: int | None = None  # query: snapshot ts; mutation: commit ts; action, failure: None
    read_set: ReadSet | None = None  # queries (failed ones too) and mutations
    log_lines: tuple[str, ...] = ()


class Runtime(Protocol):
    """The runtime as a function's ctx, ctx.scheduler, ctx.storage and the scheduler's
    worker see it."""

    @property
    def package(self) -> AppPackage:
        """The app package served: its functions, crons and triggers."""

    @property
    def storage(self) -> FileStorage | None:
        """Where `ctx.storage` keeps files (None: file storage is not configured)."""

    def resolve(
        self, function: FunctionLike, kind: FunctionKind | None, internal: bool
    ) -> FunctionDefinition:
        """The function `function` names, checked to be of `kind` (None: any) and public
        unless `internal`."""

    async def run(
        self,
        kind: FunctionKind | None,
        function: FunctionLike,
        args: Any = None,
        *,
        identity: UserIdentity | None = None,
        internal: bool = False,
        hook: MutationHook | None = None,
    ) -> FunctionOutcome:
        """Call a function in its own transaction; raises its error if it fails."""

    async def run_nested(
        self, txn: Transaction, kind: FunctionKind, function: FunctionLike, args: Any, auth: Auth
    ) -> Any:
        """Call a query or mutation inside `txn` (a mutation as a sub-transaction)."""

    async def run_system_read(self, body: Callable[[Transaction], Awaitable[_T]]) -> _T:
        """Run runtime code that is not a function on a snapshot at the latest timestamp."""

    async def run_system_write(self, body: Callable[[Transaction], Awaitable[_T]]) -> _T:
        """Run runtime code that is not a function in a write transaction that commits
        and is published like a mutation's."""
