"""The scheduler's worker loop: runs due jobs of `_scheduled_functions` and crons.

- Wakes when a commit touches `_scheduled_functions` or `_cron_jobs`, and when the next
  job or cron falls due (no polling delay for `run_after(0, ...)`).
- Runs due jobs in scheduled order, at most `parallelism` at a time; one worker never
  starts a job twice.
- A scheduled **mutation runs exactly once**: its job moves to `success` inside the
  mutation's own transaction, which first checks the job is still pending. A failure rolls
  the mutation back, then marks the job `failed` with the error; write conflicts are
  retried by the transaction layer; engine failures leave the job pending for a later try.
- A scheduled **action runs at most once**: `inProgress` commits before it starts, with a
  claim naming this worker's node and a lease it renews while the action runs
  (`claims.py`); jobs still `inProgress` whose claim is missing or expired (the
  node died during them; checked at start and at every heartbeat) become `failed` with
  "Transient error while executing action" and are never re-run. Another live node's
  actions are left alone.
- Start jobs (`crons.at_start`): scheduled once each time this worker starts, after it
  has failed the actions of dead nodes, as ordinary jobs due now.
- Crons: each declared cron has a row in `_cron_jobs` with its next run time. When due, the
  run is one job; if the previous run is still pending or in progress the occurrence is
  skipped, and the next run time is always the next occurrence after *now*, so runs missed
  while the server was down are skipped, not queued.
- Completed jobs are deleted `RETENTION_MS` after completion.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import uuid
from typing import Any, Final, Protocol

from owlat.runtime.calls import Runtime
from owlat.runtime.database.commits import Commit, CommitListener
from owlat.runtime.database.query import Query
from owlat.runtime.database.transaction import Transaction
from owlat.runtime.error_text import describe_error
from owlat.runtime.errors import OperatorError, OwlatError
from owlat.runtime.functions import FunctionKind
from owlat.runtime.metrics import RuntimeMetrics
from owlat.runtime.scheduler import claims
from owlat.runtime.scheduler import scheduler as jobs
from owlat.runtime.scheduler.crons import CronJob, CronJobs, StartJob
from owlat.runtime.system_tables import (
    CRON_JOBS,
    CRONS_BY_NEXT_RUN,
    FAILED,
    IN_PROGRESS,
    JOBS_BY_COMPLETION,
    JOBS_BY_STATE,
    PENDING,
    SCHEDULED_FUNCTIONS,
    SUCCESS,
)
from owlat.runtime.types import Document

logger = logging.getLogger("owlat.scheduler")

RETENTION_MS: Final = 7 * 24 * 3600 * 1000
CLEANUP_EVERY_MS: Final = 3600 * 1000
MAX_SLEEP_SECONDS: Final = 60.0
TRANSIENT_ACTION_ERROR: Final = "Transient error while executing action"


class WorkerRuntime(Runtime, Protocol):
    """The runtime as the worker sees it: `Runtime`, the commits it publishes, its metrics."""

    metrics: RuntimeMetrics | None

    def on_commit(self, listener: CommitListener) -> None:
        """Call `listener(commit)` after every commit, in timestamp order."""

    def remove_commit_listener(self, listener: CommitListener) -> None:
        """Stop calling `listener`."""


class _NotPending(Exception):
    """The job was canceled, or already run, before this worker got to it."""


class _ScheduledJobHook:
    """Commits the job's `success` in the transaction of the scheduled mutation."""

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        self._job: Document | None = None

    async def before(self, txn: Transaction) -> None:
        job = await jobs.get_job(txn, self.job_id)
        if job is None or job["state"]["kind"] != PENDING:
            raise _NotPending(self.job_id)
        self._job = job
        return None

    async def after(self, txn: Transaction, value: Any, ts: int) -> None:
        assert self._job is not None
        await jobs.set_state(txn, self._job, SUCCESS)


class SchedulerWorker:
    """Runs the scheduled functions and crons of one Application."""

    def __init__(self, app: WorkerRuntime, *, parallelism: int = 8) -> None:
        if parallelism < 1:
            raise ValueError("The scheduler needs a parallelism of at least 1")
        self._app = app
        self.parallelism = parallelism
        self._wake = asyncio.Event()
        self._running: dict[str, asyncio.Task[None]] = {}
        self._loop_task: asyncio.Task[None] | None = None
        self._crons: dict[str, CronJob] = {}
        self._start_jobs: list[StartJob] = []
        self._last_cleanup = -math.inf
        self.node = uuid.uuid4().hex  # this worker, in `_scheduler_claims`
        self._last_heartbeat = -math.inf
        self._look_again = math.inf  # next heartbeat, or when another node's claim expires

    async def start(self) -> None:
        """Recover from a crash, register crons, schedule start jobs, and start the loop."""
        await self._recover()
        crons = self._app.package.crons
        if crons is not None:
            if not isinstance(crons, CronJobs):
                raise TypeError("crons.py must define `crons = cron_jobs()`")
            self._crons = dict(crons.jobs)
            self._start_jobs = list(crons.start_jobs.values())
        await self._app.run_system_write(self._sync_crons)
        if self._start_jobs:
            await self._app.run_system_write(self._schedule_start_jobs)
        self._app.on_commit(self._on_commit)
        self._loop_task = asyncio.create_task(self._loop(), name="owlat-scheduler")

    async def drain(self, grace: float) -> None:
        """A graceful stop's first step: start no more jobs, and give the running ones up to
        `grace` seconds to finish (`stop` then cancels those still running)."""
        if self._loop_task is not None:
            self._loop_task.cancel()
            await asyncio.gather(self._loop_task, return_exceptions=True)
        running = list(self._running.values())
        if running:
            await asyncio.wait(running, timeout=grace)

    async def stop(self) -> None:
        """Stop the loop and cancel running jobs (mutations roll back; interrupted actions
        lose their claims, so the next worker to look fails them)."""
        with contextlib.suppress(ValueError):
            self._app.remove_commit_listener(self._on_commit)
        tasks = [task for task in (self._loop_task, *self._running.values()) if task]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._loop_task = None

        async def release(txn: Transaction) -> None:
            await claims.release_all(txn, self.node)

        try:  # interrupted actions are failed at once by whoever looks next
            await self._app.run_system_write(release)
        except OwlatError:
            logger.exception("could not release this node's scheduler claims")

    @property
    def running(self) -> bool:
        """Whether the loop runs (started and neither stopped nor crashed)."""
        return self._loop_task is not None and not self._loop_task.done()

    def _on_commit(self, commit: Commit) -> None:
        if any(
            change.table in (SCHEDULED_FUNCTIONS, CRON_JOBS)
            for change in commit.write_set.documents
        ):
            self._wake.set()

    async def _loop(self) -> None:
        while True:
            self._wake.clear()
            try:
                next_due = await self._tick()
            except Exception:
                logger.exception("scheduler tick failed; retrying in a second")
                next_due = jobs.now_ms() + 1000
            timeout = MAX_SLEEP_SECONDS
            if next_due is not None:
                timeout = min(timeout, max(0.0, (next_due - jobs.now_ms()) / 1000))
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation
            # that arrives as the event is set, and the loop would never stop.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._wake.wait()

    async def _tick(self) -> float | None:
        now = jobs.now_ms()
        next_times = [await self._run_due_crons(now)]
        next_times.append(await self._start_due_jobs(now))
        if now - self._last_heartbeat >= claims.HEARTBEAT_MS or now >= self._look_again:
            self._last_heartbeat = now
            self._look_again = await self._heartbeat()
        next_times.append(self._look_again)
        if now - self._last_cleanup > CLEANUP_EVERY_MS:
            self._last_cleanup = now
            await self._app.run_system_write(self._delete_old_jobs)
        due = [time for time in next_times if time is not None]
        return min(due) if due else None

    # -- jobs ----------------------------------------------------------------------------

    async def _start_due_jobs(self, now: float) -> float | None:
        """Start due jobs up to the parallelism; returns when the next pending job is due."""
        wanted = self.parallelism + len(self._running)

        async def read(txn: Transaction) -> tuple[list[Document], Document | None]:
            table = txn.catalog.table(SCHEDULED_FUNCTIONS)
            due = (
                await Query(txn, table)
                .with_index(
                    JOBS_BY_STATE,
                    lambda q: q.eq("state.kind", PENDING).lte("scheduledTime", now),
                )
                .take(wanted)
            )
            later = (
                await Query(txn, table)
                .with_index(
                    JOBS_BY_STATE,
                    lambda q: q.eq("state.kind", PENDING).gt("scheduledTime", now),
                )
                .first()
            )
            return due, later

        due, later = await self._app.run_system_read(read)
        for job in due:
            if len(self._running) >= self.parallelism:
                break
            if job["_id"] not in self._running:
                self._start(job)
        return None if later is None else float(later["scheduledTime"])

    def _start(self, job: Document) -> None:
        job_id = job["_id"]
        task = asyncio.create_task(self._run_job(job), name=f"owlat-job-{job_id}")
        self._running[job_id] = task

        def finished(_: asyncio.Task[None]) -> None:
            self._running.pop(job_id, None)
            self._wake.set()

        task.add_done_callback(finished)

    async def _run_job(self, job: Document) -> None:
        job_id, path = job["_id"], jobs.job_path(job)
        definition = self._app.package.functions.get(path)
        if definition is None or definition.kind is FunctionKind.QUERY:
            await self._finish(job_id, FAILED, f"Could not find function for '{path}'.")
            return
        if definition.kind is FunctionKind.MUTATION:
            await self._run_mutation(job_id, path, jobs.job_args(job))
        else:
            await self._run_action(job_id, path, jobs.job_args(job))

    async def _run_mutation(self, job_id: str, path: str, args: dict[str, Any]) -> None:
        try:
            await self._app.run(
                FunctionKind.MUTATION, path, args, internal=True, hook=_ScheduledJobHook(job_id)
            )
        except _NotPending:
            return
        except OperatorError:
            logger.exception("scheduled mutation %s (%s) could not run; will retry", path, job_id)
            await asyncio.sleep(1)
        except Exception as error:
            logger.info("scheduled mutation %s (%s) failed: %s", path, job_id, error)
            await self._finish(job_id, FAILED, describe_error(error))

    async def _run_action(self, job_id: str, path: str, args: dict[str, Any]) -> None:
        async def claim(txn: Transaction) -> bool:
            job = await jobs.get_job(txn, job_id)
            if job is None or job["state"]["kind"] != PENDING:
                return False
            await jobs.set_state(txn, job, IN_PROGRESS)
            await claims.claim(txn, job, self.node)
            return True

        if not await self._app.run_system_write(claim):
            return
        try:
            await self._app.run(FunctionKind.ACTION, path, args, internal=True)
        except Exception as error:
            logger.info("scheduled action %s (%s) failed: %s", path, job_id, error)
            await self._finish(job_id, FAILED, describe_error(error))
        else:
            await self._finish(job_id, SUCCESS)

    async def _finish(self, job_id: str, kind: str, error: str | None = None) -> None:
        async def finish(txn: Transaction) -> None:
            job = await jobs.get_job(txn, job_id)
            if job is not None and job["state"]["kind"] in (PENDING, IN_PROGRESS):
                await jobs.set_state(txn, job, kind, error)
            await claims.release(txn, job_id)

        await self._app.run_system_write(finish)

    async def _heartbeat(self) -> float:
        """Renew this node's leases, fail dead nodes' actions; when to look again."""
        if self._running:

            async def renew(txn: Transaction) -> None:
                await claims.renew(txn, self.node)

            await self._app.run_system_write(renew)
        next_expiry = await self._recover()
        if self._running:
            return jobs.now_ms() + claims.HEARTBEAT_MS
        return math.inf if next_expiry is None else next_expiry

    async def _recover(self) -> float | None:
        """Fail the actions of dead nodes; returns when the next live claim expires."""
        orphaned, next_expiry = await self._app.run_system_read(claims.orphans)
        if orphaned:
            await self._app.run_system_write(self._fail_interrupted_actions)
        return next_expiry

    async def _fail_interrupted_actions(self, txn: Transaction) -> None:
        interrupted, _ = await claims.orphans(txn)
        for job in interrupted:
            logger.warning(
                "scheduled action %s (%s) was interrupted by a restart; failed",
                job["name"],
                job["_id"],
            )
            await jobs.set_state(txn, job, FAILED, TRANSIENT_ACTION_ERROR)
            await claims.release(txn, job["_id"])

    async def _delete_old_jobs(self, txn: Transaction) -> None:
        table = txn.catalog.table(SCHEDULED_FUNCTIONS)
        cutoff = jobs.now_ms() - RETENTION_MS
        old = (
            await Query(txn, table)
            .with_index(
                JOBS_BY_COMPLETION,
                lambda q: q.gte("completedTime", -math.inf).lt("completedTime", cutoff),
            )
            .take(1000)
        )
        for job in old:
            await txn.delete(table, job)

    # -- crons ---------------------------------------------------------------------------

    async def _sync_crons(self, txn: Transaction) -> None:
        """Make `_cron_jobs` match the declared crons; skip runs missed while down."""
        table = txn.catalog.table(CRON_JOBS)
        now = jobs.now_ms()
        stored = {row["name"]: row for row in await Query(txn, table).collect()}
        for name, cron in self._crons.items():
            self._app.resolve(cron.function, None, internal=True)
            row = stored.pop(name, None)
            fields: dict[str, Any] = {
                "name": name,
                "schedule": cron.schedule.describe(),
                "function": cron.function,
                "args": cron.args,
            }
            if row is None or any(row[key] != value for key, value in fields.items()):
                anchor = now
                new: dict[str, Any] = {
                    **fields,
                    "anchorTime": anchor,
                    "nextRun": cron.schedule.next_after(now, anchor),
                }
                if row is None:
                    await txn.insert(table, table.definition.validate(CRON_JOBS, new, None))
                    continue
            else:
                new = {key: value for key, value in row.items() if not key.startswith("_")}
                if new["nextRun"] < now:
                    new["nextRun"] = cron.schedule.next_after(now, new["anchorTime"])
            validated = table.definition.validate(CRON_JOBS, new, None)
            await txn.update(
                table, row, {"_id": row["_id"], "_creationTime": row["_creationTime"], **validated}
            )
        for row in stored.values():
            await txn.delete(table, row)

    async def _schedule_start_jobs(self, txn: Transaction) -> None:
        now = jobs.now_ms()
        for job in self._start_jobs:
            self._app.resolve(job.function, None, internal=True)
            await jobs.insert_job(txn, job.function, job.args, now)

    async def _run_due_crons(self, now: float) -> float | None:
        """Schedule the crons that are due; returns when the next cron is due."""

        started: list[str] = []

        async def run(txn: Transaction) -> float | None:
            started.clear()  # a conflict re-runs the transaction
            table = txn.catalog.table(CRON_JOBS)
            due = (
                await Query(txn, table)
                .with_index(CRONS_BY_NEXT_RUN, lambda q: q.lte("nextRun", now))
                .collect()
            )
            for row in due:
                cron = self._crons.get(row["name"])
                if cron is None:
                    continue
                updated = {**row, "nextRun": cron.schedule.next_after(now, row["anchorTime"])}
                previous = await jobs.get_job(txn, row["jobId"]) if "jobId" in row else None
                if previous is not None and previous["state"]["kind"] in (
                    PENDING,
                    IN_PROGRESS,
                ):
                    logger.info("cron %r: previous run still going; skipping this one", cron.name)
                else:
                    updated["jobId"] = await jobs.insert_job(txn, cron.function, cron.args, now)
                    started.append(cron.name)
                await txn.update(table, row, updated)
            return await next_run(txn)

        async def next_run(txn: Transaction) -> float | None:
            first = (
                await Query(txn, txn.catalog.table(CRON_JOBS)).with_index(CRONS_BY_NEXT_RUN).first()
            )
            return None if first is None else float(first["nextRun"])

        if not self._crons:
            return None
        # Most ticks find no cron due: look on a snapshot first, and only then take the
        # write transaction (on SQLite the single writer; on PostgreSQL the commit lock).
        upcoming = await self._app.run_system_read(next_run)
        if upcoming is None or upcoming > now:
            return upcoming
        result: float | None = await self._app.run_system_write(run)
        if self._app.metrics is not None:
            for name in started:
                self._app.metrics.cron_runs.labels(name).inc()
        return result
