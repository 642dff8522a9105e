"""Live query subscriptions: a shared query cache, invalidated by commits' write sets.

The rule. A query's result computed at snapshot `ts` stays the result at every later
timestamp `T` until a commit with `ts < commit.ts <= T` changes a key inside the query's
read set: the commit's write set names, for every index of every document it changed, the
key of the old and of the new revision, and the read set names the index intervals the
query scanned (database/commits.py). One key of a commit inside one interval of a result ⇒
that result is *invalidated from* `commit.ts`; nothing else ever invalidates it.

The cache. Queries are deterministic, so a result is shared by every subscriber of the same
`QueryKey` (path, args, identity, journal). The manager keeps the newest result per key
while the key has subscribers. A result is `valid_at(T)` when it was computed at or before
`T` and no processed commit up to `T` touched it; a sync session needing a query at its
snapshot `T` reuses a valid result or computes a new one (at most one computation per key
and snapshot runs at a time; concurrent askers wait for it). `cached_result` answers without
touching the engine when it can, so the sessions woken by one commit run a shared query
once and the others reuse its result.

Matching a commit. Checking each commit against every live result would cost
O(subscriptions) per commit. Instead, each (table, index) has an `IntervalIndex`: the
endpoints of the intervals of all cached results cut the key space into elementary
segments, each segment holding the set of results covering it. A written key is found with
one bisect, so a commit costs O(keys written × log segments) plus the hits. Adding or
removing a result's intervals costs O(segments they span).

Results computed at a snapshot older than the newest processed commit are checked against
a short log of recent commits, so an invalidation that happened while a query was running
is not lost. Results the manager stops tracking (replaced or no longer subscribed) are
closed: `invalid_from` is set to the first timestamp their validity is not known for.
"""

from __future__ import annotations

import asyncio
import bisect
import collections
import contextlib
import dataclasses
import logging
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, Generic, NamedTuple, Protocol, TypeVar

from owlat.runtime.calls import FunctionOutcome
from owlat.runtime.database.commits import Commit, Interval, ReadSet, WriteSet
from owlat.runtime.errors import InvalidValueError
from owlat.runtime.types import JSONValue, Value
from owlat.runtime.values import convex_to_json, dumps, json_to_convex, loads

if TYPE_CHECKING:
    from owlat.runtime.application import Application, Snapshot

logger = logging.getLogger("owlat.runtime.subscriptions")

_M = TypeVar("_M")
Space = tuple[str, str]  # (table, index)

# How many recent commits (their index keys only) are kept to check results computed at an
# older snapshot, and how many index keys they may hold in all: a logged key costs about
# 200 bytes, and one commit can hold thousands (a campaign's audience walk creates 500
# `emailSends` with 6 keys each per commit), so a log bounded by commits alone held
# 512 × 3,000 keys: ~300 MB. A result older than the log is just recomputed.
COMMIT_LOG_SIZE = 512
COMMIT_LOG_KEYS = 20_000


class IntervalIndex(Generic[_M]):
    """Which members cover a key, for members registered with half-open byte intervals.

    `_bounds` holds every interval endpoint once (sorted, reference-counted); `_covers[i]`
    is the set of members whose intervals contain [bounds[i], bounds[i+1]). A member must
    not register overlapping intervals (merge them first), so removal is exact. When an
    endpoint is no longer used, the two segments it separated hold the same members and are
    merged back.
    """

    __slots__ = ("_bounds", "_covers", "_refs")

    def __init__(self) -> None:
        self._bounds: list[bytes] = []
        self._covers: list[set[_M]] = []
        self._refs: dict[bytes, int] = {}

    def __len__(self) -> int:
        """The number of elementary segments."""
        return len(self._bounds)

    def _boundary(self, key: bytes) -> int:
        i = bisect.bisect_left(self._bounds, key)
        if i < len(self._bounds) and self._bounds[i] == key:
            self._refs[key] += 1
            return i
        self._bounds.insert(i, key)
        self._covers.insert(i, set(self._covers[i - 1]) if i > 0 else set())
        self._refs[key] = 1
        return i

    def _release(self, key: bytes) -> None:
        count = self._refs[key] - 1
        if count:
            self._refs[key] = count
            return
        del self._refs[key]
        i = bisect.bisect_left(self._bounds, key)
        del self._bounds[i]
        del self._covers[i]

    def add(self, low: bytes, high: bytes, member: _M) -> None:
        """Register `member` as covering [low, high)."""
        start = self._boundary(low)
        end = self._boundary(high)
        for i in range(start, end):
            self._covers[i].add(member)

    def remove(self, low: bytes, high: bytes, member: _M) -> None:
        """Undo `add(low, high, member)`."""
        start = bisect.bisect_left(self._bounds, low)
        end = bisect.bisect_left(self._bounds, high)
        for i in range(start, end):
            self._covers[i].discard(member)
        self._release(high)
        self._release(low)

    def stab(self, key: bytes) -> set[_M]:
        """The members covering `key` (do not mutate the returned set)."""
        i = bisect.bisect_right(self._bounds, key) - 1
        return self._covers[i] if i >= 0 else _EMPTY


_EMPTY: set[Any] = set()


def merged_intervals(read_set: ReadSet) -> Iterator[tuple[Space, Interval]]:
    """A read set's intervals per (table, index), overlapping and adjacent ones merged."""
    for space, intervals in read_set.items():
        ordered = sorted(intervals, key=lambda interval: interval.low)
        low, high = ordered[0].low, ordered[0].high
        for interval in ordered[1:]:
            if interval.low <= high:
                high = max(high, interval.high)
            else:
                yield space, Interval(low, high)
                low, high = interval.low, interval.high
        yield space, Interval(low, high)


# -- keys and results --------------------------------------------------------------------


def canonical_json(value: JSONValue) -> str:
    """A stable text for encoded JSON: `1` and `1.0` agree, object keys are sorted."""
    with contextlib.suppress(InvalidValueError):  # else kept as sent: the run reports it
        value = convex_to_json(json_to_convex(value))
    return dumps(value, sort_keys=True).decode()


class QueryKey(NamedTuple):
    """What a query result depends on: path, args, caller and journal.

    A named tuple, not a frozen dataclass: a commit pushed to many sockets looks each
    socket's key up in the cache, and a tuple is hashed and compared in C.
    """

    path: str  # canonical `module:function`
    args: str  # canonical encoded JSON of the args object
    identity: str | None = None  # canonical JSON of the user identity, None when anonymous
    internal: bool = False  # admin callers may run internal queries
    journal: str | None = None

    def with_journal(self, journal: str | None) -> QueryKey:
        return self._replace(journal=journal)


@dataclasses.dataclass(eq=False, slots=True)
class QueryResult:
    """One execution of a query at snapshot `ts`: its value or error, and what it read.

    `invalid_from` is None while the result is valid at every processed timestamp; else
    the first timestamp at which it may be out of date. `encoded`, `digest` and `messages`
    are filled in by the sync layer (what it sends for this result, encoded once, its hash,
    and the message per queryId) and shared by every session.
    """

    key: QueryKey
    ts: int
    value: Value
    error: Exception | None
    log_lines: tuple[str, ...]
    journal: str | None
    read_set: ReadSet
    invalid_from: int | None = None
    encoded: bytes | None = None
    digest: bytes | None = None
    messages: dict[int, Any] | None = None
    spans: tuple[tuple[Space, Interval], ...] = ()


class Subscriber(Protocol):
    """A session told when a result of a key it subscribes to is invalidated."""

    def query_invalidated(self) -> None: ...


# -- journals (§4.3): a paginated query re-runs up to the end cursor it returned ----------


def _journal_end_cursor(journal: str | None) -> str | None:
    if journal is None:
        return None
    try:
        data = loads(journal)
    except InvalidValueError:
        return None
    cursor = data.get("endCursor") if isinstance(data, dict) else None
    return cursor if isinstance(cursor, str) else None


def apply_journal(args: Any, journal: str | None) -> Any:
    """The args to run with: a paginated query's `endCursor` pinned by its journal."""
    end_cursor = _journal_end_cursor(journal)
    options = args.get("paginationOpts") if isinstance(args, dict) else None
    if end_cursor is None or not isinstance(options, dict) or "endCursor" in options:
        return args
    return {**args, "paginationOpts": {**options, "endCursor": end_cursor}}


def journal_of(args: Any, value: Any) -> str | None:
    """The journal of a result: the end cursor of a page of a paginated query, else None."""
    if not (isinstance(args, dict) and isinstance(args.get("paginationOpts"), dict)):
        return None
    if not (isinstance(value, dict) and isinstance(value.get("page"), list)):
        return None
    cursor = value.get("continueCursor")
    return dumps({"endCursor": cursor}).decode() if isinstance(cursor, str) else None


# -- the manager -------------------------------------------------------------------------


class _Abandoned(Exception):
    """The task computing a shared result was cancelled; a waiter computes it itself."""


class SubscriptionManager:
    """Subscriptions and the shared query cache of one Application (see the module doc)."""

    def __init__(self, application: Application) -> None:
        self.application = application
        self._processed = 0
        self._subscribers: dict[QueryKey, collections.Counter[Subscriber]] = {}
        self._cache: dict[QueryKey, QueryResult] = {}
        self._indexes: dict[Space, IntervalIndex[QueryResult]] = {}
        self._log: collections.deque[Commit] = collections.deque()
        self._log_keys = 0  # index keys held by the commits in the log
        self._log_floor = 0  # commits at or below this ts may have left the log
        self._inflight: dict[tuple[QueryKey, int], asyncio.Future[QueryResult]] = {}
        self.computations = 0  # queries actually run (for tests and benchmarks)
        application.on_commit(self._on_commit)

    def close(self) -> None:
        """Stop listening to commits."""
        self.application.remove_commit_listener(self._on_commit)

    def count(self) -> int:
        """Subscriptions held (a query subscribed to by two sockets counts twice)."""
        return sum(sum(subscribers.values()) for subscribers in self._subscribers.values())

    @property
    def processed_ts(self) -> int:
        """Every commit up to this timestamp has been matched against the cache."""
        return self._processed

    def catch_up(self) -> None:
        """Count commits made before the manager saw any (call once the app has started)."""
        if not self._log and self._processed < self.application.latest_ts:
            self._processed = self._log_floor = self.application.latest_ts

    # -- subscribers -------------------------------------------------------------------

    def subscribe(self, key: QueryKey, subscriber: Subscriber) -> None:
        self._subscribers.setdefault(key, collections.Counter())[subscriber] += 1

    def unsubscribe(self, key: QueryKey, subscriber: Subscriber) -> None:
        counter = self._subscribers.get(key)
        if counter is None or counter[subscriber] <= 0:
            return
        counter[subscriber] -= 1
        if counter[subscriber] <= 0:
            del counter[subscriber]
        if not counter:
            del self._subscribers[key]
            result = self._cache.pop(key, None)
            if result is not None:
                self._untrack(result)

    def subscriber_count(self) -> int:
        return sum(len(counter) for counter in self._subscribers.values())

    def cached_keys(self) -> int:
        return len(self._cache)

    # -- validity ----------------------------------------------------------------------

    def valid_at(self, result: QueryResult, ts: int) -> bool:
        """Whether `result` is the query's result at snapshot `ts`."""
        if result.ts > ts:
            return False
        if result.invalid_from is not None:
            return ts < result.invalid_from
        return ts <= self._processed or ts == result.ts

    async def result_at(self, snapshot: Snapshot, key: QueryKey) -> QueryResult:
        """The result of `key` at `snapshot.ts`: from the cache, or computed once."""
        ts = snapshot.ts
        current = self._cache.get(key)
        if current is not None and self.valid_at(current, ts):
            return current
        while (pending := self._inflight.get((key, ts))) is not None:
            try:
                return await asyncio.shield(pending)
            except _Abandoned:
                continue
        future: asyncio.Future[QueryResult] = asyncio.get_running_loop().create_future()
        self._inflight[(key, ts)] = future
        try:
            result = await self._compute(snapshot, key)
        except BaseException as error:
            future.set_exception(
                _Abandoned() if isinstance(error, asyncio.CancelledError) else error
            )
            future.exception()  # retrieved: waiters re-raise it themselves
            raise
        else:
            future.set_result(result)
        finally:
            del self._inflight[(key, ts)]
        self._install(result)
        return result

    def cached_now(self, key: QueryKey, ts: int) -> QueryResult | None:
        """The cached result of `key` when it is the result at `ts`, else None."""
        current = self._cache.get(key)
        return current if current is not None and self.valid_at(current, ts) else None

    async def cached_result(self, key: QueryKey, ts: int) -> QueryResult | None:
        """The result of `key` at `ts` without reading the engine: the cached one, or the
        one being computed at `ts` (awaited); None when it would have to be computed."""
        current = self.cached_now(key, ts)
        if current is not None:
            return current
        pending = self._inflight.get((key, ts))
        if pending is None:
            return None
        try:
            return await asyncio.shield(pending)
        except _Abandoned:
            return None

    async def _compute(self, snapshot: Snapshot, key: QueryKey) -> QueryResult:
        self.computations += 1
        args: Any = None
        try:
            args = apply_journal(json_to_convex(loads(key.args)), key.journal)
            identity = None if key.identity is None else loads(key.identity)
        except Exception as failure:
            outcome = FunctionOutcome(error=failure)
        else:
            outcome = await snapshot.execute_query(
                key.path, args, identity=identity, internal=key.internal
            )
        error = outcome.error
        return QueryResult(
            key=key,
            ts=snapshot.ts,
            value=outcome.value,
            error=error,
            log_lines=outcome.log_lines,
            journal=None if error is not None else journal_of(args, outcome.value),
            read_set=outcome.read_set if outcome.read_set is not None else ReadSet(),
        )

    def adopt(self, result: QueryResult, key: QueryKey) -> QueryResult:
        """`result` under another key (a paginated query's first page under its journal)."""
        current = self._cache.get(key)
        if current is not None and self.valid_at(current, result.ts):
            return current
        copy = dataclasses.replace(
            result, key=key, spans=(), encoded=None, digest=None, messages=None
        )
        self._install(copy)
        return copy

    # -- tracking ----------------------------------------------------------------------

    def _install(self, result: QueryResult) -> None:
        """Make `result` the cached result of its key, or close it if it can't be."""
        if result.invalid_from is None:
            self._check_recent(result)
        current = self._cache.get(result.key)
        if (
            result.invalid_from is not None
            or result.key not in self._subscribers
            or (current is not None and current.invalid_from is None and current.ts >= result.ts)
        ):
            if result is not current:
                self._close(result)
            return
        if current is not None:
            self._untrack(current)
        self._cache[result.key] = result
        spans = tuple(merged_intervals(result.read_set))
        for space, interval in spans:
            index = self._indexes.get(space)
            if index is None:
                index = self._indexes[space] = IntervalIndex()
            index.add(interval.low, interval.high, result)
        result.spans = spans

    def _check_recent(self, result: QueryResult) -> None:
        """Invalidate a result computed at an older snapshot by commits made since."""
        if result.ts >= self._processed:
            return
        if result.ts < self._log_floor:
            result.invalid_from = result.ts + 1
            return
        for commit in self._log:
            if commit.ts > result.ts and result.read_set.overlaps(commit.write_set):
                result.invalid_from = commit.ts
                return

    def _close(self, result: QueryResult) -> None:
        if result.invalid_from is None:
            result.invalid_from = max(self._processed, result.ts) + 1

    def _untrack(self, result: QueryResult) -> None:
        for space, interval in result.spans:
            index = self._indexes[space]
            index.remove(interval.low, interval.high, result)
            if not len(index):
                del self._indexes[space]
        result.spans = ()
        self._close(result)

    # -- commits -----------------------------------------------------------------------

    def _on_commit(self, commit: Commit) -> None:
        if commit.ts <= self._processed:
            return
        self._processed = commit.ts
        self._log_commit(commit)
        hits: set[QueryResult] = set()
        for change in commit.write_set.index_keys:
            index = self._indexes.get((change.table, change.index))
            if index is None:
                continue
            if change.old_key is not None:
                hits.update(index.stab(change.old_key))
            if change.new_key is not None and change.new_key != change.old_key:
                hits.update(index.stab(change.new_key))
        keys: list[QueryKey] = []
        for result in hits:
            if result.ts < commit.ts and result.invalid_from is None:
                result.invalid_from = commit.ts
                self._untrack(result)
                keys.append(result.key)
        self._notify(keys)

    def _log_commit(self, commit: Commit) -> None:
        """Log a commit's index keys, dropping the oldest commits beyond the log's bounds
        (the newest one stays, however large)."""
        log = self._log
        log.append(Commit(commit.ts, WriteSet(index_keys=commit.write_set.index_keys)))
        self._log_keys += len(commit.write_set.index_keys)
        while len(log) > 1 and (len(log) > COMMIT_LOG_SIZE or self._log_keys > COMMIT_LOG_KEYS):
            dropped = log.popleft()
            self._log_keys -= len(dropped.write_set.index_keys)
            self._log_floor = dropped.ts

    def logged_keys(self) -> int:
        """The index keys the log of recent commits holds."""
        return self._log_keys

    def _notify(self, keys: Iterable[QueryKey]) -> None:
        woken: set[Subscriber] = set()
        for key in keys:
            woken.update(self._subscribers.get(key, ()))
        for subscriber in woken:
            try:
                subscriber.query_invalidated()
            except Exception:
                logger.exception("subscriber failed to take an invalidation")
