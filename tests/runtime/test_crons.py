"""Cron schedules, definitions, and crons running: at most one run at a time, missed runs
skipped, not queued."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from owlat.runtime import cron_jobs, internal
from owlat.runtime.errors import DeveloperError
from owlat.runtime.scheduler.crons import CronExpression, IntervalSchedule
from owlat.runtime.testing import open_test_app
from tests.runtime.test_scheduler import eventually

APP = "tests.fixtures.cron_app"


def ms(*parts: int) -> float:
    return dt.datetime(*parts, tzinfo=dt.UTC).timestamp() * 1000


def at(value: float) -> str:
    return dt.datetime.fromtimestamp(value / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M %a")


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        ("30 2 * * *", (2026, 11, 25, 3, 0), "2026-11-26 02:30 Thu"),
        ("*/15 * * * *", (2026, 11, 25, 3, 0), "2026-11-25 03:15 Wed"),
        ("0 9 * * 1", (2026, 11, 25, 3, 0), "2026-11-30 09:00 Mon"),
        ("0 9 * * 7", (2026, 11, 25, 3, 0), "2026-11-29 09:00 Sun"),
        ("0 0 31 * *", (2026, 11, 25, 3, 0), "2026-12-31 00:00 Thu"),
        ("0 0 13 * 5", (2026, 11, 25, 3, 0), "2026-11-27 00:00 Fri"),  # day fields OR
        ("0 0 29 2 *", (2026, 11, 25, 3, 0), "2028-02-29 00:00 Tue"),
        ("5-10/5 1,13 * 1-3 *", (2026, 11, 25, 3, 0), "2027-01-01 01:05 Fri"),
        ("59 23 31 12 *", (2026, 12, 31, 23, 59), "2027-12-31 23:59 Fri"),
    ],
)
def test_cron_expressions(expression: str, after: tuple[int, ...], expected: str) -> None:
    assert at(CronExpression(expression).next_after(ms(*after), 0)) == expected


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("* * * *", "expected 5 fields"),
        ("60 * * * *", "within 0-59"),
        ("* 24 * * *", "within 0-23"),
        ("a * * * *", "Invalid cron minute field"),
        ("*/0 * * * *", "within 0-59"),
        ("0 0 31 2 *", "never matches"),
    ],
)
def test_invalid_cron_expressions(expression: str, message: str) -> None:
    with pytest.raises(DeveloperError, match=message):
        CronExpression(expression).next_after(0, 0)


def test_interval_counts_from_its_anchor() -> None:
    every_minute = IntervalSchedule(60)
    anchor = ms(2026, 1, 1, 0, 0)
    assert every_minute.next_after(anchor, anchor) == anchor + 60_000
    assert every_minute.next_after(anchor + 90_000, anchor) == anchor + 120_000


def test_definitions_are_checked() -> None:
    crons = cron_jobs()
    crons.weekly("w", {"dayOfWeek": "Tuesday", "hourUTC": 8}, internal.x.y)
    assert isinstance(crons.jobs["w"].schedule, CronExpression)
    assert crons.jobs["w"].schedule.expression == "0 8 * * 2"
    crons.monthly("m", {"day": 1, "hourUTC": 0, "minuteUTC": 5}, internal.x.y, {"n": 1})
    assert crons.jobs["m"].args == {"n": 1.0}
    with pytest.raises(DeveloperError, match="defined twice"):
        crons.hourly("w", {"minuteUTC": 0}, internal.x.y)
    with pytest.raises(DeveloperError, match="exactly one of seconds, minutes, hours"):
        crons.interval("i", {"days": 1}, internal.x.y)
    with pytest.raises(DeveloperError, match="dayOfWeek must be one of"):
        crons.weekly("x", {"dayOfWeek": "someday", "hourUTC": 1}, internal.x.y)
    with pytest.raises(DeveloperError, match="'hourUTC' must be a whole number in 0-23"):
        crons.daily("d", {"hourUTC": 25}, internal.x.y)
    crons.at_start("s", internal.x.y, {"n": 2})
    assert crons.start_jobs["s"].function == "x:y" and crons.start_jobs["s"].args == {"n": 2.0}
    with pytest.raises(DeveloperError, match="defined twice"):
        crons.at_start("w", internal.x.y)
    with pytest.raises(DeveloperError, match="defined twice"):
        crons.hourly("s", {"minuteUTC": 0}, internal.x.y)


async def count(app: object, name: str) -> float:
    result = await app.run_query("ticks:count", {"name": name})  # type: ignore[attr-defined]
    value: float = result.value
    return value


async def test_crons_run_one_at_a_time_and_skip_missed_runs(
    tmp_path: Path, database_url: str
) -> None:
    async with open_test_app(APP, tmp_path, database_url=database_url) as app:
        await asyncio.sleep(1.3)
        # an interval cron of 0.2 s runs repeatedly (waited for: a loaded machine is slow)
        await eventually(lambda: _at_least(app, "fast", 3))
        fast = await count(app, "fast")
        slow_jobs = [
            job
            for job in (await app.run_query("ticks:jobs", {})).value
            if job["name"] == "ticks:slowTick"
        ]
        assert len(slow_jobs) <= 2, "a cron whose run is still going is skipped, not queued"
        assert sum(job["state"]["kind"] == "inProgress" for job in slow_jobs) <= 1
        assert await count(app, "nightly") == 0
    await asyncio.sleep(1.0)  # five runs of "fast" are missed while nothing runs
    async with open_test_app(APP, tmp_path, database_url=database_url) as app:
        await asyncio.sleep(0.1)
        # five runs were missed: replaying them would add five at once
        assert await count(app, "fast") <= fast + 2, "missed runs are not replayed"
        await eventually(lambda: _at_least(app, "fast", fast + 2))  # it goes on after a restart


async def test_start_jobs_run_once_each_time_the_scheduler_starts(
    tmp_path: Path, database_url: str
) -> None:
    for starts in (1, 2):
        async with open_test_app(APP, tmp_path, database_url=database_url) as app:
            await eventually(lambda app=app, starts=starts: _at_least(app, "started", starts))
            await asyncio.sleep(0.5)
            assert await count(app, "started") == starts
    async with open_test_app(
        APP, tmp_path, database_url=database_url, scheduler_parallelism=None
    ) as app:  # a process that runs no scheduler (`owlat run`) schedules none
        assert not [
            job
            for job in (await app.run_query("ticks:jobs", {})).value
            if job["state"]["kind"] == "pending" and job["args"] == [{"name": "started"}]
        ]


async def _at_least(app: Any, name: str, runs: int) -> bool:
    return await count(app, name) >= runs


async def test_two_nodes_on_one_database_run_each_cron_occurrence_once(
    tmp_path: Path, database_url: str
) -> None:
    async with (
        open_test_app(APP, tmp_path, database_url=database_url) as first,
        open_test_app(APP, tmp_path, database_url=database_url) as second,
    ):
        await asyncio.sleep(1.3)
        runs = await count(first, "fast")
        assert runs == await count(second, "fast")
    # an interval of 0.2 s fits at most 7 times in 1.3 s, however many nodes run crons
    assert 3 <= runs <= 7
