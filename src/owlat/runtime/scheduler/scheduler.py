"""Scheduled functions: `ctx.scheduler` and the jobs of the `_scheduled_functions` table.

Rules (Convex's):
- `run_after(delay_ms, fn, args)` / `run_at(ms, fn, args)` insert a *pending* job. From a
  mutation the insert is part of the mutation's transaction, so it is rolled back with it;
  from an action it commits at once. Only mutations and actions can be scheduled; at most
  1,000 jobs and 16 MiB of arguments per transaction, 4 MiB per job.
- `cancel(id)` turns a pending job into `canceled` (it never runs); a running action is
  left to finish but is recorded as canceled; a finished job is left as it is.
- Jobs carry no auth: scheduled functions run without a user identity.
The worker that runs due jobs is in `worker.py`.
"""

from __future__ import annotations

import datetime as dt
import math
import time
from typing import Any, Final

from owlat.runtime.calls import Runtime
from owlat.runtime.database.transaction import Transaction
from owlat.runtime.errors import (
    DeveloperError,
    DocumentNotFoundError,
    InvalidIdError,
    LimitExceededError,
)
from owlat.runtime.functions import FunctionKind, FunctionLike
from owlat.runtime.system_tables import (
    CANCELED,
    FAILED,
    IN_PROGRESS,
    PENDING,
    SCHEDULED_FUNCTIONS,
    SUCCESS,
)
from owlat.runtime.types import Document
from owlat.runtime.values import normalize_value, value_size
from owlat.runtime.values.ids import table_number_of

MAX_JOBS_PER_TRANSACTION: Final = 1000
MAX_ARGS_BYTES: Final = 4 * 1024 * 1024
MAX_TOTAL_ARGS_BYTES: Final = 16 * 1024 * 1024


def now_ms() -> float:
    return time.time() * 1000


def _timestamp_ms(when: Any) -> float:
    if isinstance(when, dt.datetime):
        if when.tzinfo is None:
            raise DeveloperError("run_at() needs a timezone-aware datetime (e.g. tzinfo=UTC)")
        return when.timestamp() * 1000
    if isinstance(when, bool) or not isinstance(when, int | float) or not math.isfinite(when):
        raise DeveloperError(f"A schedule time must be a finite number of ms, got {when!r}")
    return float(when)


async def insert_job(txn: Transaction, name: str, args: dict[str, Any], scheduled_ms: float) -> str:
    """Insert a pending job in `txn` (arguments already normalized)."""
    table = txn.catalog.table(SCHEDULED_FUNCTIONS)
    fields = {
        "name": name,
        "args": [args],
        "scheduledTime": scheduled_ms,
        "state": {"kind": PENDING},
    }
    return await txn.insert(table, table.definition.validate(SCHEDULED_FUNCTIONS, fields, None))


async def set_state(txn: Transaction, job: Document, kind: str, error: str | None = None) -> None:
    """Move a job to state `kind` (completed states also get `completedTime`)."""
    table = txn.catalog.table(SCHEDULED_FUNCTIONS)
    state: dict[str, Any] = {"kind": kind}
    if error is not None:
        state["error"] = error
    new = {**job, "state": state}
    if kind in (SUCCESS, FAILED, CANCELED):
        new["completedTime"] = now_ms()
    await txn.update(table, job, new)


async def get_job(txn: Transaction, job_id: str) -> Document | None:
    table = txn.catalog.table(SCHEDULED_FUNCTIONS)
    if table_number_of(job_id) != table.number:
        raise InvalidIdError(f'"{job_id}" is not an id of a scheduled function')
    return await txn.get(table, job_id)


class Scheduler:
    """`ctx.scheduler` of a mutation (writes in its transaction) or an action."""

    def __init__(self, app: Runtime, transaction: Transaction | None) -> None:
        self._app = app
        self._txn = transaction

    def _job(self, function: FunctionLike, args: Any) -> tuple[str, dict[str, Any]]:
        definition = self._app.resolve(function, None, internal=True)
        if definition.kind is FunctionKind.QUERY:
            raise DeveloperError(
                f"Only mutations and actions can be scheduled: {definition.path!r} is a query"
            )
        if args is None:
            args = {}
        if not isinstance(args, dict):
            raise DeveloperError(f"Arguments of a scheduled function must be a dict, got {args!r}")
        normalized: dict[str, Any] = normalize_value(args)
        size = value_size(normalized)
        if size > MAX_ARGS_BYTES:
            raise LimitExceededError(
                f"Arguments of scheduled function {definition.path} are {size} bytes; the "
                f"limit is {MAX_ARGS_BYTES} bytes"
            )
        return definition.path, normalized

    async def _insert(self, txn: Transaction, name: str, args: dict[str, Any], when: float) -> str:
        txn.scheduled_jobs += 1
        txn.scheduled_bytes += value_size(args)
        if txn.scheduled_jobs > MAX_JOBS_PER_TRANSACTION:
            raise LimitExceededError(
                f"Too many functions scheduled in one transaction "
                f"(limit: {MAX_JOBS_PER_TRANSACTION})"
            )
        if txn.scheduled_bytes > MAX_TOTAL_ARGS_BYTES:
            raise LimitExceededError(
                f"Too many bytes of scheduled-function arguments in one transaction "
                f"(limit: {MAX_TOTAL_ARGS_BYTES} bytes)"
            )
        return await insert_job(txn, name, args, when)

    async def run_at(self, timestamp: Any, function: FunctionLike, args: Any = None) -> str:
        """Run `function(args)` at `timestamp` (ms since the epoch, or an aware datetime)."""
        when = _timestamp_ms(timestamp)
        name, normalized = self._job(function, args)
        if self._txn is not None:
            return await self._insert(self._txn, name, normalized, when)

        async def insert(txn: Transaction) -> str:
            return await self._insert(txn, name, normalized, when)

        job_id: str = await self._app.run_system_write(insert)
        return job_id

    async def run_after(self, delay_ms: float, function: FunctionLike, args: Any = None) -> str:
        """Run `function(args)` in `delay_ms` milliseconds (0: as soon as possible)."""
        delay = _timestamp_ms(delay_ms)
        return await self.run_at(now_ms() + max(delay, 0.0), function, args)

    async def cancel(self, job_id: str) -> None:
        """Cancel a job that has not started (a running action finishes, marked canceled)."""

        async def cancel_in(txn: Transaction) -> None:
            job = await get_job(txn, job_id)
            if job is None:
                raise DocumentNotFoundError(f'Scheduled function "{job_id}" does not exist')
            if job["state"]["kind"] in (PENDING, IN_PROGRESS):
                await set_state(txn, job, CANCELED)

        if self._txn is not None:
            await cancel_in(self._txn)
        else:
            await self._app.run_system_write(cancel_in)


def job_path(job: Document) -> str:
    name: str = job["name"]
    return name


def job_args(job: Document) -> dict[str, Any]:
    args: dict[str, Any] = job["args"][0]
    return args
