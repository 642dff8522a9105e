"""Scheduler throughput and due-to-start latency (issue 4), against direct calls.

    .venv/bin/python bench/bench_scheduler.py [--jobs 5000] [--queued 1000] [--latency-jobs 500]

In-process, on SQLite, with the scheduler worker running as in a server (parallelism 8),
over the bench app package `bench/benchapp` (`noop:run`, a mutation that writes nothing).

(1) Throughput: `--jobs` no-op jobs scheduled with `run_after(0)` (1,000 per scheduling
mutation, the per-transaction limit); jobs/s from the first scheduling call until the last
job's `success` has committed (seen by a commit listener). Baseline in the same run: the
same no-op mutation called `--jobs` times directly (`app.run_mutation`, one after the
other), so the scheduler's cost per job is the difference.

(2) Latency under a queue: `--queued` jobs are scheduled an hour ahead (pending in
`_scheduled_functions`), then `--latency-jobs` mutations each schedule one no-op with
`run_after(0)`, one every `--interval-ms`. Due-to-start latency = when the job's mutation
started (its handler notes the time) - its `scheduledTime` (which `run_after` takes inside
the scheduling mutation, so the latency includes that mutation's commit): p50, p99, max.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import percentile
from benchapp import noop
from owlat.runtime.database.commits import Commit
from owlat.runtime.system_tables import SCHEDULED_FUNCTIONS, SUCCESS
from owlat.runtime.testing import open_test_app

APP = "benchapp"
PARALLELISM = 8


async def throughput(data_dir: Path, jobs: int) -> dict[str, float]:
    async with open_test_app(APP, data_dir, scheduler_parallelism=PARALLELISM) as app:
        start = time.perf_counter()
        for i in range(jobs):
            await app.run_mutation("noop:run", {"i": float(-1 - i)}, internal=True)
        direct = jobs / (time.perf_counter() - start)

        done = asyncio.Event()
        finished = 0

        def on_commit(commit: Commit) -> None:
            nonlocal finished
            for change in commit.write_set.documents:
                if (
                    change.table == SCHEDULED_FUNCTIONS
                    and change.new is not None
                    and change.new["state"]["kind"] == SUCCESS
                ):
                    finished += 1
            if finished >= jobs:
                done.set()

        app.on_commit(on_commit)
        start = time.perf_counter()
        for first in range(0, jobs, 1000):
            await app.run_mutation(
                "noop:schedule",
                {"first": float(first), "count": float(min(1000, jobs - first)), "delay_ms": 0.0},
            )
        scheduled = time.perf_counter() - start
        async with asyncio.timeout(300):
            await done.wait()
        elapsed = time.perf_counter() - start
        ran = sum(1 for i in noop.STARTS if i >= 0)
        assert ran == jobs, (ran, jobs)
    return {"direct": direct, "scheduled": jobs / elapsed, "schedule_seconds": scheduled}


async def latency(data_dir: Path, queued: int, count: int, interval: float) -> list[float]:
    async with open_test_app(APP, data_dir, scheduler_parallelism=PARALLELISM) as app:
        await app.run_mutation(
            "noop:schedule", {"first": 1e6, "count": float(queued), "delay_ms": 3_600_000.0}
        )
        await asyncio.sleep(0.2)
        first = 2e6
        start = time.perf_counter()
        for k in range(count):
            delay = start + k * interval - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            await app.run_mutation(
                "noop:schedule", {"first": first + k, "count": 1.0, "delay_ms": 0.0}
            )
        async with asyncio.timeout(60):
            while sum(1 for i in noop.STARTS if i >= first) < count:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        jobs = (await app.run_query("noop:jobs")).value
    scheduled = {job["args"][0]["i"]: job["scheduledTime"] for job in jobs}
    pending = sum(1 for job in jobs if job["state"]["kind"] == "pending")
    assert pending == queued, (pending, queued)
    return sorted(noop.STARTS[first + k] - scheduled[first + k] for k in range(count))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument("--queued", type=int, default=1000)
    parser.add_argument("--latency-jobs", type=int, default=500)
    parser.add_argument("--interval-ms", type=float, default=10.0)
    options = parser.parse_args()
    print(
        f"bench_scheduler: SQLite (WAL, synchronous=NORMAL), scheduler parallelism "
        f"{PARALLELISM}, in-process"
    )
    with tempfile.TemporaryDirectory() as folder:
        rates = asyncio.run(throughput(Path(folder) / "throughput", options.jobs))
        values = asyncio.run(
            latency(
                Path(folder) / "latency",
                options.queued,
                options.latency_jobs,
                options.interval_ms / 1000,
            )
        )
    print(f"{'no-op mutations':<44}{'per second':>12}")
    print(f"{'called directly (app.run_mutation), baseline':<44}{rates['direct']:>12,.0f}")
    print(
        f"{'scheduled with run_after(0), run by worker':<44}{rates['scheduled']:>12,.0f}"
        f"   ratio {rates['scheduled'] / rates['direct']:.2f}  "
        f"(scheduling {options.jobs} took {rates['schedule_seconds']:.2f} s of it)"
    )
    print(
        f"due-to-start latency of run_after(0), {options.latency_jobs} jobs one every "
        f"{options.interval_ms:g} ms, {options.queued} jobs queued for later:"
    )
    print(
        f"  p50 {percentile(values, 0.5):.2f} ms   p99 {percentile(values, 0.99):.2f} ms   "
        f"max {values[-1]:.2f} ms"
    )


if __name__ == "__main__":
    main()
