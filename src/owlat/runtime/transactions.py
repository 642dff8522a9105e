"""Commit timestamps, read sets, write sets, and serializable execution with retries.

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
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from owlat.runtime.errors import WriteConflictError
from owlat.runtime.types import Document

if TYPE_CHECKING:
    from owlat.runtime.database.transaction import Transaction

_T = TypeVar("_T")
logger = logging.getLogger("owlat.runtime")


@dataclasses.dataclass(frozen=True, slots=True)
class Interval:
    """Index keys k with low <= k < high."""

    low: bytes
    high: bytes

    def contains(self, key: bytes) -> bool:
        return self.low <= key < self.high


def point_interval(key: bytes) -> Interval:
    """The interval holding exactly `key`."""
    return Interval(key, key + b"\x00")


class ReadSet:
    """The index intervals a function read, per (table, index)."""

    __slots__ = ("_intervals",)

    def __init__(self) -> None:
        self._intervals: dict[tuple[str, str], list[Interval]] = {}

    def add(self, table: str, index: str, interval: Interval) -> None:
        if interval.low < interval.high:
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


@dataclasses.dataclass(frozen=True, slots=True)
class IndexKeyChange:
    """One index entry a commit removed (old_key), added (new_key) or both."""

    table: str
    index: str
    old_key: bytes | None
    new_key: bytes | None


@dataclasses.dataclass(frozen=True, slots=True)
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


@dataclasses.dataclass(frozen=True, slots=True)
class TransactionLimits:
    """Per-transaction limits, as Convex's."""

    max_documents_read: int = 32_000
    max_bytes_read: int = 16 * 1024 * 1024
    max_index_ranges: int = 4_096
    max_documents_written: int = 16_000
    max_bytes_written: int = 16 * 1024 * 1024
    max_document_bytes: int = 1024 * 1024


class Clock:
    """The newest commit timestamp this process knows of, and document creation times."""

    # Creation times are float milliseconds (~0.25 µs resolution today): step ≥ 1 µs.
    CREATION_STEP_NS = 1_000

    def __init__(self, last_ts: int = 0) -> None:
        self.last_ts = last_ts
        self._last_creation_ns = last_ts

    def advance(self, ts: int) -> None:
        """Record a committed timestamp."""
        if ts > self.last_ts:
            self.last_ts = ts

    def next_creation_time(self) -> float:
        """`_creationTime` for a new document: ms since the epoch, distinct and increasing."""
        ns = max(time.time_ns(), self._last_creation_ns + self.CREATION_STEP_NS)
        self._last_creation_ns = ns
        return ns / 1_000_000


CommitListener = Callable[[Commit], None]


class RetryPolicy:
    """Bounded retries of conflicting transactions, as Convex's (4 retries, 100 ms → 2 s).

    Each wait is drawn between half and one and a half times the backoff, so that writers
    that conflicted together (PostgreSQL) do not all come back at the same moment."""

    def __init__(self, retries: int = 4, first_backoff: float = 0.1, max_backoff: float = 2.0):
        self.retries = retries
        self.first_backoff = first_backoff
        self.max_backoff = max_backoff

    async def run(self, attempt: Callable[[], Awaitable[_T]]) -> _T:
        backoff = self.first_backoff
        for retry in range(self.retries + 1):
            try:
                return await attempt()
            except WriteConflictError as error:
                if retry == self.retries:
                    raise WriteConflictError(
                        f"Transaction still conflicted after {self.retries} retries: "
                        f"{error.message}"
                    ) from error
                wait = backoff * random.uniform(0.5, 1.5)
                logger.info("write conflict, retrying in %.2fs", wait)
                await asyncio.sleep(wait)
                backoff = min(backoff * 2, self.max_backoff)
        raise AssertionError("unreachable")


@dataclasses.dataclass(frozen=True, slots=True)
class RecordedOutcome:
    """A mutation's result and commit timestamp, as recorded earlier."""

    value: Any
    ts: int


class MutationHook(Protocol):
    """Runtime code that runs inside a mutation's transaction, around its handler."""

    async def before(self, txn: Transaction) -> RecordedOutcome | None:
        """Return an earlier outcome to answer with instead of running (or raise to abort)."""

    async def after(self, txn: Transaction, value: Any, ts: int) -> None:
        """Write what must commit with the mutation (`ts` is its commit timestamp)."""
