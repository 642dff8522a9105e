"""Scheduled functions: atomic scheduling, exactly-once mutations, at-most-once actions,
failures, cancellation, limits, and the `_scheduled_functions` table."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from owlat.runtime import ConvexError, internal
from owlat.runtime.application import Application
from owlat.runtime.errors import DeveloperError, LimitExceededError
from owlat.runtime.testing import in_mutation, open_test_app

APP = "tests.fixtures.app"


async def eventually(check: Callable[[], Awaitable[bool]], within: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)


async def jobs(app: Application) -> dict[str, dict[str, Any]]:
    result = await app.run_query("jobs:jobs", {})
    return {job["_id"]: job for job in result.value}


async def states(app: Application) -> dict[str, str]:
    return {job_id: job["state"]["kind"] for job_id, job in (await jobs(app)).items()}


async def runs(app: Application) -> list[str]:
    return list((await app.run_query("jobs:runs", {})).value)


async def all_done(app: Application) -> bool:
    return all(state not in ("pending", "inProgress") for state in (await states(app)).values())


async def test_scheduled_mutations_run_once_each(app: Application) -> None:
    keys = [f"k{i}" for i in range(30)]
    job_ids = (await app.run_mutation("jobs:scheduleRecords", {"keys": keys, "delay_ms": 0})).value
    await eventually(lambda: all_done(app))
    assert sorted(await runs(app)) == sorted(keys)
    recorded = await jobs(app)
    assert set(recorded) == set(job_ids)
    for job in recorded.values():
        assert job["name"] == "jobs:record"
        assert job["state"] == {"kind": "success"}
        assert job["completedTime"] >= job["scheduledTime"]
        assert job["args"] == [{"key": job["args"][0]["key"]}]


async def test_scheduling_rolls_back_with_the_mutation(app: Application) -> None:
    with pytest.raises(ConvexError):
        await app.run_mutation("jobs:scheduleThenFail", {"key": "never"})
    await asyncio.sleep(0.05)
    assert await jobs(app) == {}
    assert await runs(app) == []


async def test_failed_scheduled_mutation_rolls_back_and_is_marked_failed(
    app: Application,
) -> None:
    job_id = (await app.run_mutation("jobs:scheduleFailing", {"key": "x", "fail": True})).value
    await eventually(lambda: all_done(app))
    job = (await jobs(app))[job_id]
    assert job["state"]["kind"] == "failed"
    assert '"code":"JOB_FAILED"' in job["state"]["error"]
    assert await runs(app) == [], "the failing mutation's insert must be rolled back"


async def test_cancel_before_start_means_it_never_runs(app: Application) -> None:
    job_ids = (
        await app.run_mutation("jobs:scheduleRecords", {"keys": ["later"], "delay_ms": 60_000})
    ).value
    await app.run_mutation("jobs:cancel", {"id": job_ids[0]})
    job = (await jobs(app))[job_ids[0]]
    assert job["state"] == {"kind": "canceled"}
    assert "completedTime" in job
    await app.run_mutation("jobs:cancel", {"id": job_ids[0]})  # cancelling twice is harmless
    assert await runs(app) == []


async def test_later_jobs_wait_for_their_time(app: Application) -> None:
    await app.run_mutation("jobs:scheduleRecords", {"keys": ["soon"], "delay_ms": 300})
    await asyncio.sleep(0.05)
    assert await runs(app) == []
    await eventually(lambda: all_done(app), within=5)
    assert await runs(app) == ["soon"]


async def test_actions_scheduled_from_an_action_run_and_record(
    app: Application, tmp_path: Path
) -> None:
    log = tmp_path / "side-effects.log"
    await app.run_action(
        "jobs:scheduleActions", {"keys": ["a1", "a2"], "sleep_ms": 10, "log": str(log)}
    )
    await eventually(lambda: all_done(app))
    assert sorted(await runs(app)) == ["a1", "a2"]
    assert sorted(line.split()[1] for line in log.read_text().splitlines()) == ["a1", "a2"]
    assert set((await states(app)).values()) == {"success"}


async def test_failing_action_is_marked_failed_with_its_error(app: Application) -> None:
    job_id = (await app.run_mutation("jobs:scheduleFailingAction", {"message": "no way"})).value
    await eventually(lambda: all_done(app))
    assert (await jobs(app))[job_id]["state"] == {
        "kind": "failed",
        "error": "Uncaught Error: no way",
    }


async def test_scheduling_limits_and_misuse(app: Application) -> None:
    with pytest.raises(LimitExceededError, match=r"Too many functions scheduled.*1000"):
        await app.run_mutation("jobs:scheduleTooMany", {"count": 1001})
    assert await jobs(app) == {}

    async def schedule_query(ctx: Any) -> Any:
        return await ctx.scheduler.run_after(0, internal.jobs.runs, {})

    with pytest.raises(DeveloperError, match="Only mutations and actions can be scheduled"):
        await in_mutation(app, schedule_query)

    async def schedule_bad_time(ctx: Any) -> Any:
        return await ctx.scheduler.run_at(float("nan"), internal.jobs.record, {"key": "x"})

    with pytest.raises(DeveloperError, match="finite number"):
        await in_mutation(app, schedule_bad_time)


async def test_jobs_survive_a_restart(tmp_path: Path, database_url: str) -> None:
    async with open_test_app(
        APP, tmp_path, scheduler_parallelism=None, database_url=database_url
    ) as app:
        await app.run_mutation("jobs:scheduleRecords", {"keys": ["x", "y"], "delay_ms": 0})
        await asyncio.sleep(0.05)
        assert await runs(app) == [], "no scheduler runs in this process"
    async with open_test_app(APP, tmp_path, database_url=database_url) as app:
        await eventually(lambda: all_done(app))
        assert sorted(await runs(app)) == ["x", "y"]


async def test_interrupted_actions_fail_and_never_rerun(tmp_path: Path, database_url: str) -> None:
    log = tmp_path / "side-effects.log"
    async with open_test_app(APP, tmp_path, database_url=database_url) as app:
        await app.run_action(
            "jobs:scheduleActions", {"keys": ["slow"], "sleep_ms": 60_000, "log": str(log)}
        )
        # in progress, and its side effect has happened (the state commits first)
        await eventually(lambda: _side_effect_started(app, log))
    # closing the application stopped the worker mid-action, like a crash would
    async with open_test_app(APP, tmp_path, database_url=database_url) as app:
        (job,) = (await jobs(app)).values()
        assert job["state"] == {"kind": "failed", "error": "Transient error while executing action"}
        await asyncio.sleep(0.1)
        assert await runs(app) == []
    assert log.read_text().count("start slow") == 1


async def _state_is(app: Application, kind: str) -> bool:
    return set((await states(app)).values()) == {kind}


async def _side_effect_started(app: Application, log: Path) -> bool:
    text = await asyncio.to_thread(lambda: log.read_text() if log.exists() else "")
    return "start slow" in text and await _state_is(app, "inProgress")


async def test_parallelism_is_bounded(tmp_path: Path, database_url: str) -> None:
    log = tmp_path / "side-effects.log"
    async with open_test_app(
        APP, tmp_path, scheduler_parallelism=2, database_url=database_url
    ) as app:
        await app.run_action(
            "jobs:scheduleActions",
            {"keys": [f"p{i}" for i in range(5)], "sleep_ms": 200, "log": str(log)},
        )
        await eventually(lambda: _count_state(app, "inProgress", 2))
        await asyncio.sleep(0.05)
        assert list((await states(app)).values()).count("inProgress") == 2
        await eventually(lambda: all_done(app))
        assert len(await runs(app)) == 5


async def _count_state(app: Application, kind: str, count: int) -> bool:
    return list((await states(app)).values()).count(kind) == count
