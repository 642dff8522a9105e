"""What a transaction read and what a commit changed: the vocabulary of reactivity.

*Read set*: while a query or mutation runs, every index range it scans is recorded as a
half-open interval [low, high) of index-key bytes on (table, index); a point read by id is
the interval [key, key + 0x00) on `by_id` (recorded even when the document is missing).
A scan that stops early records only the part it actually walked.

*Write set*: for every document a commit changed, its old and new revision, and for each
index of its table the old and new index key. A commit *touches* a read set when one of
those keys lies in one of its intervals; that single test drives reactivity (subscriptions)
and, on engines with concurrent writers, optimistic concurrency control.

*Timestamps*: 64-bit nanoseconds since the epoch, strictly increasing in commit order. The
engine draws them at the end of a writing transaction and persists them with the commit
(`EngineWriter.allocate_ts`, `record_commit`), so they stay monotonic across restarts and,
on PostgreSQL, across nodes.

This module imports nothing of the runtime but its plain type aliases: the engine, the
transaction and the subscription layer all speak it.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Iterator
from typing import NamedTuple

from owlat.runtime.types import Document

# Intervals and changes are made by the thousand per transaction (one per point read, one
# per index of a written document): a NamedTuple or a slotted class is built several
# times faster than a frozen dataclass, whose `__init__` goes through
# `object.__setattr__` for each field. The changes are not frozen: nothing changes them.


class Interval(NamedTuple):
    """Index keys k with low <= k < high."""

    low: bytes
    high: bytes

    def contains(self, key: bytes) -> bool:
        return self.low <= key < self.high


# `Interval(low, high)` without the Python frame of a NamedTuple's `__new__` (`add_point`)
_new_interval = functools.partial(tuple.__new__, Interval)


def point_interval(key: bytes) -> Interval:
    """The interval holding exactly `key` (`ReadSet.add_point`'s, on no hot path)."""
    return Interval(key, key + b"\x00")


class ReadSet:
    """The index intervals a function read, per (table, index)."""

    __slots__ = ("_intervals",)

    def __init__(self) -> None:
        self._intervals: dict[tuple[str, str], list[Interval]] = {}

    def add(self, table: str, index: str, interval: Interval) -> None:
        if interval.low < interval.high:
            self._intervals.setdefault((table, index), []).append(interval)

    def add_point(self, table: str, index: str, key: bytes) -> None:
        """`add(table, index, point_interval(key))`, for the hottest read (`db.get`)."""
        interval: Interval = _new_interval((key, key + b"\x00"))
        self._intervals.setdefault((table, index), []).append(interval)

    def update(self, other: ReadSet) -> None:
        for space, intervals in other._intervals.items():
            self._intervals.setdefault(space, []).extend(intervals)

    def items(self) -> Iterator[tuple[tuple[str, str], list[Interval]]]:
        return iter(self._intervals.items())

    def intervals(self, table: str, index: str) -> list[Interval]:
        return list(self._intervals.get((table, index), ()))

    def __len__(self) -> int:
        return sum(len(intervals) for intervals in self._intervals.values())

    def overlaps(self, write_set: WriteSet) -> bool:
        """Whether any key the write set changed lies in an interval of this read set."""
        for change in write_set.index_keys:
            intervals = self._intervals.get((change.table, change.index))
            if not intervals:
                continue
            for key in (change.old_key, change.new_key):
                if key is not None and any(interval.contains(key) for interval in intervals):
                    return True
        return False


@dataclasses.dataclass(slots=True)
class IndexKeyChange:
    """One index entry a commit removed (old_key), added (new_key) or both."""

    table: str
    index: str
    old_key: bytes | None
    new_key: bytes | None


@dataclasses.dataclass(slots=True)
class DocumentChange:
    """A document's revision before and after a commit (None: did not exist)."""

    table: str
    id: str
    old: Document | None
    new: Document | None


@dataclasses.dataclass(frozen=True, slots=True)
class WriteSet:
    """What one commit changed: documents, and the index keys (by_id included)."""

    documents: tuple[DocumentChange, ...] = ()
    index_keys: tuple[IndexKeyChange, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.documents)


@dataclasses.dataclass(frozen=True, slots=True)
class Commit:
    """A committed transaction: its timestamp and write set."""

    ts: int
    write_set: WriteSet


# Called with every commit, in timestamp order (Application.on_commit).
CommitListener = Callable[[Commit], None]
