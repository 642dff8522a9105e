"""The SQLite engine's commit timestamps, kept in memory by the process that writes the file.

One process writes a SQLite file at a time (commit_feed.py), so the newest commit timestamp
needs no row written by every commit (that row's page was a quarter of a commit's WAL
frames). The stored `last_ts` global is instead a *bound*: at least every committed
timestamp. A commit whose timestamp passes the stored bound stores a new one,
`ts + LEASE_NS`, in its own transaction; the others store nothing. So:

- a restarted process (after a crash too) starts from the stored bound, which is at least
  every committed timestamp, and draws above it: timestamps never go back. A file written
  by the code before holds the exact last timestamp there, a bound as good as any;
- the process that commits knows its own newest commit exactly (`last`), and its readers
  name their snapshot with it: a snapshot begins (its first statement) with no commit of
  this process in flight between that statement and the reading of `last`, as both run on
  the event loop thread without a pause;
- a process that has not committed (an export while a server runs) names its snapshot with
  the bound stored in it: at least every commit it sees;
- a writer that finds another connection committed since its own last transaction
  (`PRAGMA data_version`) learns the stored bound again before it draws a timestamp. It
  asks only when the WAL-index header (sqlite.py `_WalIndexWatch`) is not the one its own
  last commit left: every commit rewrites it, so an unchanged header means none since.

Timestamps are ns since the epoch, as before: `max(now, last + 1)`.
"""

from __future__ import annotations

import time

# How far ahead of a commit's timestamp the stored bound goes: a new bound at most every
# 0.1 s of commit timestamps; a restart draws at most 0.1 s ahead of the clock.
LEASE_NS = 100_000_000


class CommitClock:
    """What the writing process knows of the stored commit state."""

    __slots__ = ("bound", "catalog_version", "data_version", "header", "last", "own")

    def __init__(self) -> None:
        self.last = 0  # the newest commit timestamp known (exact once `own`)
        self.bound = 0  # the stored `last_ts` bound, as last read or written
        self.own = False  # this process committed since it last learned the bound
        self.data_version: int | None = None  # the writer's PRAGMA data_version then
        # the WAL-index header right after the writer's own last commit (None: unknown)
        self.header: bytes | None = None
        self.catalog_version: int | None = None  # the stored catalog version (None: read it)

    def learn(self, stored_bound: int) -> None:
        """The stored bound, read with no commit of this process in flight (at open, or by
        a writer after another connection committed)."""
        self.bound = stored_bound
        self.last = max(self.last, stored_bound)
        self.own = False
        self.catalog_version = None

    def snapshot_ts(self, stored_bound: int) -> int:
        """The timestamp naming a read snapshot that holds `stored_bound`."""
        return self.last if self.own else max(self.last, stored_bound)

    def draw(self, at_least: int) -> int:
        """A timestamp after every committed one, at least now and `at_least`."""
        return max(time.time_ns(), at_least, self.last + 1, 1)

    def bound_for(self, ts: int) -> int | None:
        """The bound a commit at `ts` must store with itself (None: the stored one holds)."""
        return ts + LEASE_NS if ts > self.bound else None

    def committed(self, ts: int, bound: int | None) -> None:
        """A commit at `ts` (with the bound it stored, if any) succeeded."""
        self.last = max(self.last, ts)
        if bound is not None:
            self.bound = bound
        self.own = True
