"""Cron jobs: `crons.py` of an app package declares them, the scheduler runs them.

    crons = cron_jobs()
    crons.interval("purge deleted contacts", {"hours": 1}, internal.contacts.purge, {})
    crons.cron("nightly digest", "30 2 * * *", internal.digest.send)
    crons.daily("domain checks", {"hourUTC": 4, "minuteUTC": 0}, internal.domains.recheck)
    crons.at_start("resume imports", internal.imports.resume)

Schedules are in UTC. `cron` takes the classic five fields — minute, hour, day of month,
month, day of week (0 or 7 = Sunday) — each `*`, a number, a range `a-b`, a list `a,b`, or a
step `*/n` / `a-b/n`; when both day fields are restricted a day matches either (as in
Vixie cron). `interval` runs every N seconds/minutes/hours counted from when the cron was
first registered. At most one run of a cron is in flight; runs missed while the server was
down or while the previous run was still going are skipped, never queued.

`at_start` (an Owlat extension) schedules a function once every time a server process
starts its scheduler (each node, with several), right after the scheduler has failed the
actions a crash interrupted: for work a restart interrupted, which should not wait for the
next run of a cron.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Mapping
from typing import Any

from owlat.runtime.errors import DeveloperError
from owlat.runtime.functions import FunctionLike, path_of
from owlat.runtime.values import normalize_value

_DAYS = ("sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday")
_FIELDS = (
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day of month", 1, 31),
    ("month", 1, 12),
    ("day of week", 0, 7),
)
_PART = re.compile(r"^(\*|\d+(?:-\d+)?)(?:/(\d+))?$")


class CronSchedule:
    """When a cron runs: `next_after(ms)` is the first run time strictly after `ms`."""

    def next_after(self, after_ms: float, anchor_ms: float) -> float:
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError


@dataclasses.dataclass(frozen=True)
class IntervalSchedule(CronSchedule):
    """Every `seconds`, counted from the anchor (when the cron was first registered)."""

    seconds: float

    def next_after(self, after_ms: float, anchor_ms: float) -> float:
        period = self.seconds * 1000
        steps = max(0, int((after_ms - anchor_ms) // period) + 1)
        return anchor_ms + steps * period

    def describe(self) -> str:
        return f"every {self.seconds:g}s"


def _parse_field(text: str, name: str, low: int, high: int) -> frozenset[int]:
    values: set[int] = set()
    for part in text.split(","):
        match = _PART.match(part)
        if match is None:
            raise DeveloperError(f"Invalid cron {name} field {text!r}")
        span, step_text = match.groups()
        step = int(step_text) if step_text else 1
        if span == "*":
            start, end = low, high
        elif "-" in span:
            start, end = (int(x) for x in span.split("-"))
        else:
            start = end = int(span)
            if step_text:
                end = high
        if not (low <= start <= end <= high) or step < 1:
            raise DeveloperError(
                f"Invalid cron {name} field {text!r}: values must be within {low}-{high}"
            )
        values.update(range(start, end + 1, step))
    return frozenset(values)


@dataclasses.dataclass(frozen=True)
class CronExpression(CronSchedule):
    """A five-field cron expression, in UTC."""

    expression: str
    fields: tuple[frozenset[int], ...] = dataclasses.field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "fields", self._parse())

    def _parse(self) -> tuple[frozenset[int], ...]:
        parts = self.expression.split()
        if len(parts) != 5:
            raise DeveloperError(
                f"Invalid cron expression {self.expression!r}: expected 5 fields "
                "(minute hour day-of-month month day-of-week)"
            )
        fields = tuple(
            _parse_field(part, name, low, high)
            for part, (name, low, high) in zip(parts, _FIELDS, strict=True)
        )
        weekdays = frozenset(day % 7 for day in fields[4])
        return (*fields[:4], weekdays)

    def _day_matches(self, day: dt.date, fields: tuple[frozenset[int], ...]) -> bool:
        dom, dow = fields[2], fields[4]
        parts = self.expression.split()
        dom_any, dow_any = parts[2] == "*", parts[4] == "*"
        in_dom = day.day in dom
        in_dow = (day.isoweekday() % 7) in dow
        if dom_any or dow_any:
            return in_dom and in_dow
        return in_dom or in_dow

    def next_after(self, after_ms: float, anchor_ms: float) -> float:
        fields = self.fields
        minutes, hours, _, months, _ = fields
        start = dt.datetime.fromtimestamp(after_ms / 1000, dt.UTC).replace(second=0, microsecond=0)
        start += dt.timedelta(minutes=1)
        day = start.date()
        for _ in range(366 * 5):
            if day.month in months and self._day_matches(day, fields):
                first_hour = start.hour if day == start.date() else 0
                for hour in sorted(h for h in hours if h >= first_hour):
                    first_minute = start.minute if (day, hour) == (start.date(), start.hour) else 0
                    for minute in sorted(m for m in minutes if m >= first_minute):
                        moment = dt.datetime(
                            day.year, day.month, day.day, hour, minute, tzinfo=dt.UTC
                        )
                        return moment.timestamp() * 1000
            day += dt.timedelta(days=1)
        raise DeveloperError(f"Cron expression {self.expression!r} never matches")

    def describe(self) -> str:
        return self.expression


@dataclasses.dataclass(frozen=True)
class CronJob:
    """A declared cron: name, schedule, function path and arguments."""

    name: str
    schedule: CronSchedule
    function: str
    args: dict[str, Any]


@dataclasses.dataclass(frozen=True)
class StartJob:
    """A function scheduled each time a scheduler starts: name, function path, arguments."""

    name: str
    function: str
    args: dict[str, Any]


def _number(
    spec: Mapping[str, Any], key: str, low: int, high: int, default: int | None = None
) -> int:
    value = spec.get(key, default)
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or value != int(value)
        or (not low <= value <= high)
    ):
        raise DeveloperError(
            f"Cron schedule field {key!r} must be a whole number in {low}-{high}, got {value!r}"
        )
    return int(value)


def _time_of_day(spec: Mapping[str, Any]) -> str:
    """The minute and hour fields of `{"hourUTC": h, "minuteUTC": m}` (minute defaults to 0)."""
    return f"{_number(spec, 'minuteUTC', 0, 59, 0)} {_number(spec, 'hourUTC', 0, 23)}"


class CronJobs:
    """The crons of an app (`crons = cron_jobs()` in its `crons.py`)."""

    def __init__(self) -> None:
        self.jobs: dict[str, CronJob] = {}
        self.start_jobs: dict[str, StartJob] = {}

    def _add(
        self,
        name: str,
        schedule: CronSchedule,
        function: FunctionLike,
        args: Mapping[str, Any] | None,
    ) -> None:
        self._check(name, args)
        self.jobs[name] = CronJob(
            name, schedule, path_of(function), normalize_value(dict(args or {}))
        )

    def _check(self, name: str, args: Mapping[str, Any] | None) -> None:
        if not isinstance(name, str) or not name.strip():
            raise DeveloperError("A cron needs a non-empty name")
        if name in self.jobs or name in self.start_jobs:
            raise DeveloperError(f"Cron {name!r} is defined twice")
        if args is not None and not isinstance(args, Mapping):
            raise DeveloperError(f"Cron {name!r}: args must be a dict")

    def at_start(
        self, name: str, function: FunctionLike, args: Mapping[str, Any] | None = None
    ) -> None:
        """Run once each time a server process starts its scheduler (see the module)."""
        self._check(name, args)
        self.start_jobs[name] = StartJob(name, path_of(function), normalize_value(dict(args or {})))

    def interval(
        self,
        name: str,
        every: Mapping[str, float],
        function: FunctionLike,
        args: Mapping[str, Any] | None = None,
    ) -> None:
        """Run every `{"seconds"|"minutes"|"hours": n}`."""
        units = {"seconds": 1, "minutes": 60, "hours": 3600}
        unknown = set(every) - set(units)
        if unknown or len(every) != 1:
            raise DeveloperError(
                f"Cron {name!r}: interval takes exactly one of seconds, "
                f"minutes, hours; got {dict(every)!r}"
            )
        ((unit, amount),) = every.items()
        if isinstance(amount, bool) or not isinstance(amount, int | float) or amount <= 0:
            raise DeveloperError(f"Cron {name!r}: interval must be positive, got {amount!r}")
        self._add(name, IntervalSchedule(float(amount) * units[unit]), function, args)

    def cron(
        self,
        name: str,
        expression: str,
        function: FunctionLike,
        args: Mapping[str, Any] | None = None,
    ) -> None:
        """Run on a five-field cron expression (UTC)."""
        self._add(name, CronExpression(expression), function, args)

    def hourly(
        self,
        name: str,
        spec: Mapping[str, Any],
        function: FunctionLike,
        args: Mapping[str, Any] | None = None,
    ) -> None:
        """Every hour at `{"minuteUTC": m}`."""
        minute = _number(spec, "minuteUTC", 0, 59)
        self._add(name, CronExpression(f"{minute} * * * *"), function, args)

    def daily(
        self,
        name: str,
        spec: Mapping[str, Any],
        function: FunctionLike,
        args: Mapping[str, Any] | None = None,
    ) -> None:
        """Every day at `{"hourUTC": h, "minuteUTC": m}`."""
        self._add(name, CronExpression(f"{_time_of_day(spec)} * * *"), function, args)

    def weekly(
        self,
        name: str,
        spec: Mapping[str, Any],
        function: FunctionLike,
        args: Mapping[str, Any] | None = None,
    ) -> None:
        """Every week on `{"dayOfWeek": "monday", "hourUTC": h, "minuteUTC": m}`."""
        day = spec.get("dayOfWeek")
        if not isinstance(day, str) or day.lower() not in _DAYS:
            raise DeveloperError(f"Cron {name!r}: dayOfWeek must be one of {', '.join(_DAYS)}")
        expression = f"{_time_of_day(spec)} * * {_DAYS.index(day.lower())}"
        self._add(name, CronExpression(expression), function, args)

    def monthly(
        self,
        name: str,
        spec: Mapping[str, Any],
        function: FunctionLike,
        args: Mapping[str, Any] | None = None,
    ) -> None:
        """Every month on `{"day": d, "hourUTC": h, "minuteUTC": m}` (days 29–31 skip short
        months, as cron does)."""
        day = _number(spec, "day", 1, 31)
        self._add(name, CronExpression(f"{_time_of_day(spec)} {day} * *"), function, args)


def cron_jobs() -> CronJobs:
    """A new, empty set of crons."""
    return CronJobs()
