"""Retries of conflicting transactions, the clock, and read-set interval logic."""

from __future__ import annotations

import itertools

import pytest

from owlat.runtime.database.commits import Interval, ReadSet, point_interval
from owlat.runtime.database.transaction import Clock, RetryPolicy
from owlat.runtime.errors import WriteConflictError


async def test_conflicts_are_retried_then_reported_clearly() -> None:
    attempts = 0

    async def conflicting_twice() -> str:
        nonlocal attempts
        attempts += 1
        if attempts <= 2:
            raise WriteConflictError("documents changed underneath")
        return "done"

    policy = RetryPolicy(retries=4, first_backoff=0.001)
    assert await policy.run(conflicting_twice) == "done"
    assert attempts == 3

    async def always() -> None:
        raise WriteConflictError("still changing")

    with pytest.raises(WriteConflictError, match="still conflicted after 2 retries: still"):
        await RetryPolicy(retries=2, first_backoff=0.001).run(always)


async def test_other_errors_are_not_retried() -> None:
    attempts = 0

    async def broken() -> None:
        nonlocal attempts
        attempts += 1
        raise ValueError("bug")

    with pytest.raises(ValueError, match="bug"):
        await RetryPolicy(first_backoff=0.001).run(broken)
    assert attempts == 1


def test_creation_times_are_strictly_increasing_even_if_the_wall_clock_is_behind() -> None:
    clock = Clock(4_000_000_000_000_000_000)
    creation = [clock.next_creation_time() for _ in range(1000)]
    assert all(a < b for a, b in itertools.pairwise(creation))


def test_intervals_are_half_open_and_empty_ones_are_dropped() -> None:
    interval = Interval(b"b", b"d")
    assert interval.contains(b"b") and interval.contains(b"c\xff")
    assert not interval.contains(b"d") and not interval.contains(b"a")
    point = point_interval(b"k")
    assert point.contains(b"k") and not point.contains(b"k\x00")
    read_set = ReadSet()
    read_set.add("t", "i", Interval(b"x", b"x"))
    assert len(read_set) == 0
