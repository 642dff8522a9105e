"""The application: an app package running on a storage engine.

This is the one seam between transports (HTTP API, sync sockets, scheduler, CLI, tests) and
the runtime: they call `run(kind, path, args, identity=...)` or open a `snapshot()` to run
several queries at one timestamp, and they subscribe to commits with `on_commit`.

A call: resolve the path (visibility, kind) → validate the arguments → run the handler in
a transaction (queries: a snapshot; mutations: a serializable write, retried on conflict)
→ validate/normalize the result → for mutations, commit with a new timestamp and publish
the commit (timestamp + write set) to listeners.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from owlat.runtime import logs
from owlat.runtime.app_package import AppPackage
from owlat.runtime.auth import ANONYMOUS, Auth, UserIdentity
from owlat.runtime.backups import BackupPlan, BackupRunner
from owlat.runtime.calls import FunctionOutcome
from owlat.runtime.context import ActionCtx, MutationCtx, QueryCtx
from owlat.runtime.database.catalog import Catalog, load_catalog, sync_catalog
from owlat.runtime.database.commits import Commit, CommitListener, ReadSet, WriteSet
from owlat.runtime.database.engine import CatalogChangedError, CommitFeed, Engine, EngineReader
from owlat.runtime.database.transaction import (
    Clock,
    MutationHook,
    RetryPolicy,
    Transaction,
    TransactionLimits,
)
from owlat.runtime.errors import ArgumentValidationError, ValidationError, WriteConflictError
from owlat.runtime.functions import FunctionDefinition, FunctionKind, FunctionLike, path_of
from owlat.runtime.metrics import RuntimeMetrics
from owlat.runtime.scheduler.worker import SchedulerWorker
from owlat.runtime.storage.file_storage import FileStorage
from owlat.runtime.system_tables import SYSTEM_TABLES
from owlat.runtime.types import UNDEFINED
from owlat.runtime.values import normalize_value

logger = logging.getLogger("owlat.runtime")
_T = TypeVar("_T")


class Snapshot:
    """Several queries at one timestamp (a batch, or one sync Transition)."""

    def __init__(self, app: Application, reader: EngineReader, ts: int) -> None:
        self._app = app
        self._reader = reader
        self.ts = ts

    async def execute_query(
        self,
        function: FunctionLike,
        args: Any,
        *,
        identity: UserIdentity | None = None,
        internal: bool = False,
    ) -> FunctionOutcome:
        """Run a query at this snapshot; its outcome, failed or not (`Application.execute`)."""

        async def call() -> FunctionOutcome:
            definition = self._app.resolve(function, FunctionKind.QUERY, internal)
            return await self._app._query_in(
                self._reader, self.ts, definition, args, Auth(identity)
            )

        return await _outcome_of(call)


class Application:
    """An app package served from an engine."""

    def __init__(
        self,
        package: AppPackage,
        engine: Engine,
        *,
        limits: TransactionLimits | None = None,
        retry: RetryPolicy | None = None,
        scheduler_parallelism: int | None = None,
        storage: FileStorage | None = None,
        metrics: bool = True,
        backups: BackupPlan | None = None,
    ) -> None:
        """`scheduler_parallelism`: run scheduled functions and crons with this many jobs
        at a time while started (None: this process runs no scheduler, e.g. `owlat run`).
        `storage`: where `ctx.storage` keeps files (None: file storage is unavailable).
        `metrics`: count calls, commits, conflicts... for `/metrics` (metrics.py).
        `backups`: take scheduled backups while started (backups.py)."""
        self.package = package
        self.engine = engine
        self.storage = storage
        self.limits = limits or TransactionLimits()
        # A retry runs exclusively (see `_write`): no other writer can make it conflict
        # again, so there is nothing to wait for before it.
        self.retry = retry or RetryPolicy(first_backoff=0.001)
        self.clock = Clock()
        self._catalog: Catalog | None = None
        self._catalog_reload = asyncio.Lock()
        self._listeners: list[CommitListener] = []
        self._feed: CommitFeed | None = None
        self.metrics = RuntimeMetrics() if metrics else None
        self._scheduler = (
            None
            if scheduler_parallelism is None
            else SchedulerWorker(self, parallelism=scheduler_parallelism)
        )
        self.backups = None if backups is None else BackupRunner(self, backups)

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        """Open the engine and bring the catalog in line with the schema."""
        logs.install()
        await self.engine.open()
        self._catalog = await sync_catalog(
            self.engine, self.package.schema, SYSTEM_TABLES, self.retry
        )
        self.clock = Clock(await self._read_last_ts())
        self._feed = self.engine.commit_feed()  # every node's commits, in order
        await self._feed.start(self.clock.last_ts, self._publish)
        if self._scheduler is not None:
            await self._scheduler.start()
        if self.backups is not None:
            self.backups.start()

    async def drain(self, grace: float) -> None:
        """A graceful stop's first step: start no more scheduled jobs and let the running
        ones finish, for up to `grace` seconds (`close` cancels what is left)."""
        if self._scheduler is not None:
            await self._scheduler.drain(grace)

    async def close(self) -> None:
        if self.backups is not None:
            await self.backups.stop()
        if self._scheduler is not None:
            await self._scheduler.stop()
        if self._feed is not None:
            await self._feed.close()
        await self.engine.close()
        if self.storage is not None:
            await self.storage.close()

    @property
    def started(self) -> bool:
        """Whether `start()` has brought the catalog in line with the schema."""
        return self._catalog is not None

    @property
    def scheduler_state(self) -> str:
        """ "off" (this process runs no scheduler), "running" or "stopped"."""
        if self._scheduler is None:
            return "off"
        return "running" if self._scheduler.running else "stopped"

    @property
    def catalog(self) -> Catalog:
        if self._catalog is None:
            raise RuntimeError("Application.start() has not been called")
        return self._catalog

    async def _reload_catalog(self, stale_version: int) -> None:
        """Load the stored catalog after a writer found `stale_version` outdated (once for
        all the writers that found it together)."""
        async with self._catalog_reload:
            if self.catalog.version == stale_version:
                self._catalog = await load_catalog(self.engine, self.package.schema, SYSTEM_TABLES)
                logger.info("catalog changed by another node: reloaded")

    @property
    def latest_ts(self) -> int:
        """The newest commit timestamp this process knows of."""
        return self.clock.last_ts

    def on_commit(self, listener: CommitListener) -> None:
        """Call `listener(commit)` after every commit, of this process or of another node
        on the same database, in timestamp order (see database/commit_feed.py)."""
        self._listeners.append(listener)

    def remove_commit_listener(self, listener: CommitListener) -> None:
        self._listeners.remove(listener)

    def _publish(self, commit: Commit) -> None:
        self.clock.advance(commit.ts)
        for listener in list(self._listeners):
            try:
                listener(commit)
            except Exception:
                logger.exception("commit listener failed")

    # -- calls -------------------------------------------------------------------------

    def resolve(
        self, function: FunctionLike, kind: FunctionKind | None, internal: bool
    ) -> FunctionDefinition:
        """The function called, its visibility and kind checked (a path string, the usual
        case, goes to the registry as it is)."""
        path = function if type(function) is str else path_of(function)
        return self.package.functions.resolve(path, kind, allow_internal=internal)

    def _validate_args(
        self, definition: FunctionDefinition, args: Any, catalog: Catalog | None = None
    ) -> Any:
        if args is None or args is UNDEFINED:
            args = {}
        if not isinstance(args, dict):
            raise ArgumentValidationError(
                f"ArgumentValidationError: arguments of {definition.path} must be an object, "
                f"got {type(args).__name__}"
            )
        try:
            if definition.args is None:
                return normalize_value(args)
            ids = (catalog or self.catalog).table_name_of_id
            return definition.args.validate(args, "", ids)
        except ValidationError as error:
            raise ArgumentValidationError(
                f"ArgumentValidationError: {error.message}\nFunction: {definition.path}"
            ) from None

    def _validate_result(
        self, definition: FunctionDefinition, value: Any, catalog: Catalog | None = None
    ) -> Any:
        if value is UNDEFINED:
            value = None
        if definition.returns is not None:
            try:
                ids = (catalog or self.catalog).table_name_of_id
                return definition.returns.validate(value, "", ids)
            except ValidationError as error:
                raise ValidationError(
                    f"ReturnsValidationError: {error.message}\nFunction: {definition.path}"
                ) from None
        return normalize_value(value)

    async def execute(
        self,
        kind: FunctionKind | None,
        function: FunctionLike,
        args: Any = None,
        *,
        identity: UserIdentity | None = None,
        internal: bool = False,
        hook: MutationHook | None = None,
    ) -> FunctionOutcome:
        """Call a function and return its outcome, failed or not: whatever the call raised
        (an unknown function, invalid arguments, the function's own error, an engine
        failure) is the outcome's `error`, with the lines logged until then and, for a
        query, what it had read. `internal=True` (admin, scheduler, other functions) may
        call internal functions; `kind=None` runs whatever kind the function is.

        `hook` runs inside a mutation's transaction, before and after its handler: it may
        answer with a recorded outcome instead of running (idempotent sync requests,
        sync/session_requests.py) or commit its own writes with the mutation's (the scheduler
        marking a job done).
        """

        # `_outcome_of(call)` written out: one call's two coroutine frames and a closure
        # fewer on every function call
        resolved: FunctionDefinition | None = None
        started = time.perf_counter()
        with logs.capture() as buffer:
            try:
                definition = resolved = self.package.functions.resolve(  # `resolve` written out
                    function if type(function) is str else path_of(function),
                    kind,
                    allow_internal=internal,
                )
                auth = ANONYMOUS if identity is None else Auth(identity)
                if definition.kind is FunctionKind.QUERY:
                    async with self.engine.read() as reader:
                        ts = await reader.last_ts()
                        outcome = await self._query_in(reader, ts, definition, args, auth)
                elif definition.kind is FunctionKind.MUTATION:
                    outcome = await self._mutation(definition, args, auth, hook)
                else:
                    outcome = await self._action(definition, args, auth)
            except Exception as error:
                outcome = FunctionOutcome(error=error)
            outcome.log_lines = buffer.finish()
        if resolved is not None:
            if self.metrics is not None:
                self.metrics.calls.observe(
                    resolved.path,
                    resolved.kind_name,
                    time.perf_counter() - started,
                    outcome.error is not None,
                )
            if outcome.log_lines:
                logs.publish(resolved.path, outcome.log_lines)
        return outcome

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
        """`execute`, raising the error of a failed call (for callers that report no
        failed call's log lines or read set: functions calling functions, the scheduler,
        tests)."""
        outcome = await self.execute(
            kind, function, args, identity=identity, internal=internal, hook=hook
        )
        return _succeeded(outcome)

    # `run` of one kind (each awaits `execute` itself: one coroutine frame fewer per call)
    async def run_query(
        self, function: FunctionLike, args: Any = None, **options: Any
    ) -> FunctionOutcome:
        outcome = await self.execute(FunctionKind.QUERY, function, args, **options)
        if outcome.error is not None:  # `_succeeded` written out: the hottest of the three
            raise outcome.error
        return outcome

    async def run_mutation(
        self, function: FunctionLike, args: Any = None, **options: Any
    ) -> FunctionOutcome:
        return _succeeded(await self.execute(FunctionKind.MUTATION, function, args, **options))

    async def run_action(
        self, function: FunctionLike, args: Any = None, **options: Any
    ) -> FunctionOutcome:
        return _succeeded(await self.execute(FunctionKind.ACTION, function, args, **options))

    @asynccontextmanager
    async def snapshot(self) -> AsyncIterator[Snapshot]:
        """Run several queries at one timestamp."""
        async with self.engine.read() as reader:
            yield Snapshot(self, reader, await reader.last_ts())

    async def _query_in(
        self, reader: EngineReader, ts: int, definition: FunctionDefinition, args: Any, auth: Auth
    ) -> FunctionOutcome:
        """A query's outcome at `ts`; when the query itself fails, its error with what it
        had read (a failure is reactive too)."""
        catalog = self._catalog or self.catalog  # the property only to raise before start()
        validated = self._validate_args(definition, args, catalog)
        txn = Transaction(reader, catalog, self.clock, ts=ts, writable=False, limits=self.limits)
        try:
            value = await definition.handler(QueryCtx(self, txn, auth), validated)
            value = self._validate_result(definition, value, catalog)
        except Exception as error:
            return FunctionOutcome(error=error, read_set=txn.read_set)
        return FunctionOutcome(value, ts=ts, read_set=txn.read_set)

    async def _mutation(
        self,
        definition: FunctionDefinition,
        args: Any,
        auth: Auth,
        hook: MutationHook | None = None,
    ) -> FunctionOutcome:
        validated = self._validate_args(definition, args)

        async def body(txn: Transaction) -> tuple[Any, int | None]:
            if hook is not None:
                previous = await hook.before(txn)
                if previous is not None:
                    return previous.value, previous.ts
            value = await definition.handler(MutationCtx(self, txn, auth), validated)
            value = self._validate_result(definition, value)
            if hook is not None:
                await hook.after(txn, value, await txn.commit_ts())
            return value, None

        (value, replayed_ts), commit, read_set = await self._write(body)
        ts = commit.ts if replayed_ts is None else replayed_ts
        return FunctionOutcome(value, ts=ts, read_set=read_set)

    async def _write(
        self, body: Callable[[Transaction], Awaitable[_T]]
    ) -> tuple[_T, Commit, ReadSet]:
        """Run `body(txn)` in a serializable write transaction, retried on conflict; if it
        wrote anything it commits at a new timestamp (drawn by the engine at the end, or
        earlier by `txn.commit_ts()`) and is published. A transaction that wrote nothing
        answers with the latest timestamp read after it (its snapshot is no newer)."""

        attempts = 0

        async def attempt() -> tuple[_T, Commit, ReadSet, Transaction]:
            nonlocal attempts
            attempts += 1  # a retry runs exclusively: it cannot conflict again
            catalog = self.catalog
            try:
                async with self.engine.write(exclusive=attempts > 1) as writer:
                    txn = Transaction(
                        writer, catalog, self.clock, ts=0, writable=True, limits=self.limits
                    )
                    value = await body(txn)
                    await txn.flush()
                    write_set = txn.write_set()
                    ts = 0
                    if txn.has_commit_ts:
                        ts = await txn.commit_ts()
                        await writer.record_commit(ts, write_set)
                    elif write_set:
                        ts = await writer.record_new_commit(
                            write_set, catalog_version=catalog.version
                        )
            except CatalogChangedError:
                await self._reload_catalog(catalog.version)  # then retried on the new one
                raise
            return value, Commit(ts, write_set), txn.read_set, txn

        try:
            value, commit, read_set, txn = await self.retry.run(attempt)
        except WriteConflictError:
            if self.metrics is not None:
                self.metrics.occ_failures.inc()
            raise
        finally:
            if self.metrics is not None and attempts > 1:
                self.metrics.occ_retries.inc(attempts - 1)
        if self.metrics is not None and commit.write_set:
            self.metrics.commits.inc()
        if not commit.ts:
            commit = Commit(await self._read_last_ts(), commit.write_set)
        if commit.write_set:
            await self._announce(commit)
        await txn.run_after_commit()  # e.g. removing deleted files' blobs
        return value, commit, read_set

    async def run_system_read(self, body: Callable[[Transaction], Awaitable[_T]]) -> _T:
        """Run runtime code that is not an app function (the scheduler looking for due jobs)
        on a snapshot at the latest timestamp."""
        async with self.engine.read() as reader:
            ts = await reader.last_ts()
            txn = Transaction(
                reader, self.catalog, self.clock, ts=ts, writable=False, limits=self.limits
            )
            return await body(txn)

    async def run_system_write(self, body: Callable[[Transaction], Awaitable[_T]]) -> _T:
        """Run runtime code that is not an app function (pruning a system table, ...) in a
        write transaction that commits and publishes like a mutation's."""

        value, _, _ = await self._write(body)
        return value

    async def advance_ts(self, ts: int) -> int:
        """Make every later snapshot and commit come at or after `ts`; returns the latest ts.

        For a client that observed `ts` before this server's data went back in time (a
        restored or reset data folder): serving it older snapshots would break
        linearizability. Publishes an empty commit at `ts`. Exclusive: it sees the latest
        commit and no concurrent writer can make it conflict.
        """
        async with self.engine.write(exclusive=True) as writer:
            last_ts = await writer.last_ts()
            if ts > last_ts:
                ts = await writer.allocate_ts(at_least=ts)
                await writer.record_commit(ts, WriteSet())
        if ts <= last_ts:
            return last_ts
        await self._announce(Commit(ts, WriteSet()))
        return ts

    async def _announce(self, commit: Commit) -> None:
        """Publish a commit of this process (through the feed: after every earlier one)."""
        if self._feed is None:
            self._publish(commit)
        else:
            await self._feed.committed(commit)

    async def _read_last_ts(self) -> int:
        async with self.engine.read() as reader:
            return await reader.last_ts()

    async def _action(
        self, definition: FunctionDefinition, args: Any, auth: Auth
    ) -> FunctionOutcome:
        validated = self._validate_args(definition, args)
        value = await definition.handler(ActionCtx(self, auth), validated)
        return FunctionOutcome(self._validate_result(definition, value))

    async def run_nested(
        self, txn: Transaction, kind: FunctionKind, function: FunctionLike, args: Any, auth: Auth
    ) -> Any:
        """`ctx.run_query`/`ctx.run_mutation` inside a query or mutation: same transaction."""
        definition = self.resolve(function, kind, internal=True)
        validated = self._validate_args(definition, args)
        if kind is FunctionKind.QUERY:
            nested_ctx: QueryCtx = QueryCtx(self, txn, auth)
            return self._validate_result(
                definition, await definition.handler(nested_ctx, validated)
            )
        async with txn.nested():
            value = await definition.handler(MutationCtx(self, txn, auth), validated)
            return self._validate_result(definition, value)


def _succeeded(outcome: FunctionOutcome) -> FunctionOutcome:
    """`outcome`, or the error of a failed call raised."""
    if outcome.error is not None:
        raise outcome.error
    return outcome


async def _outcome_of(call: Callable[[], Awaitable[FunctionOutcome]]) -> FunctionOutcome:
    """`call()`'s outcome, or the error it raised as one; with the lines it logged."""
    with logs.capture() as buffer:
        try:
            outcome = await call()
        except Exception as error:
            outcome = FunctionOutcome(error=error)
        outcome.log_lines = buffer.finish()
    return outcome
