"""Recipient-local send time (reference §11.2.8), no I/O.

A campaign scheduled with `useRecipientTimezone` and `scheduledHour:scheduledMinute`
starts at its `scheduledAt` like any other; the walk then gives each recipient a due
time: the first moment at or after the start when the wall clock of the recipient's zone
shows HH:MM. The zone is the contact's `timezone` (IANA), else the campaign's
`timezone`, else the organization's, else UTC (a name `zoneinfo` does not know counts as
none). DST-aware through `zoneinfo`: a wall-clock time a spring-forward gap skips is sent
when the gap ends (02:30 on a day clocks jump from 02:00 to 03:00 → 03:30 is not used;
the instant is 02:30 at the old offset, i.e. 03:30 new time), an ambiguous one (fall
back) at its first occurrence. Sends due later wait `queued` with `dueAt` (workers are
woken at each distinct due time).
"""

from __future__ import annotations

import datetime as dt
from functools import cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

UTC = dt.UTC


@cache
def zone(name: str | None) -> ZoneInfo | None:
    """The IANA zone named `name`, or None (absent or unknown)."""
    if not name or len(name) > 64:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def first_zone(*names: str | None) -> ZoneInfo:
    """The first known zone of `names`, else UTC."""
    for name in names:
        found = zone(name)
        if found is not None:
            return found
    return ZoneInfo("UTC")


def due_at(start_ms: float, where: ZoneInfo, hour: int, minute: int) -> float:
    """The first instant (epoch ms) at or after `start_ms` when it is `hour:minute` in
    `where` (module docstring for DST gaps and repeats)."""
    start = dt.datetime.fromtimestamp(start_ms / 1000, tz=UTC)
    local = start.astimezone(where)
    day = local.date()
    for _ in range(3):
        wall = dt.datetime(day.year, day.month, day.day, hour, minute, tzinfo=where)
        instant = wall.astimezone(UTC)
        if instant >= start:
            return instant.timestamp() * 1000
        day += dt.timedelta(days=1)
    raise AssertionError("unreachable: a wall-clock time recurs within two days")
