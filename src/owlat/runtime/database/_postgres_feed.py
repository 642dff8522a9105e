"""PostgreSQL's commit feed: every node's commits from the commit log, in timestamp order.

(The rule of commit feeds is `engine.CommitFeed`'s.) Each committing transaction appends
`(ts, write set)` to `owlat_commits` and `NOTIFY`s the schema's channel with its ts. Every
node runs:
- a listener: one dedicated connection that `LISTEN`s and wakes the fetcher on each
  announcement of another node's commit not delivered yet (the payload is its ts), and once
  after each (re)connection, to catch up on what it missed. Announcements sent by this
  node's pooled connections (`OwnCommits.backends`, by the notification's backend pid) are
  ignored: their committing tasks deliver them (`committed`); one whose task fails after
  COMMIT is fetched by the poll;
- a fetcher: woken by the listener, or every `POLL_SECONDS` as a safety net, it reads the
  commits after the last one it delivered with one autocommit statement and delivers them
  in order. A commit of this node is fetched at once by the committing task itself
  (`committed`), under the same lock, so fetches never overlap or reorder. One statement
  sees a prefix of the commits in timestamp order (see postgres.py), so a commit is never
  skipped: a commit the fetcher does not see yet has a greater ts than every one it saw.
- no fetch at all for a commit of this node that directly follows the last one delivered:
  the writer learns, under the commit lock, the timestamp drawn just before its own
  (`OwnCommits.previous`); every commit before it has a timestamp at most that one, so if
  that is the last delivered commit, nothing lies between them, and the committing task
  delivers its commit at once (`committed`). Otherwise (another node's commit, or a
  failed transaction's unused timestamp, came in between) it fetches as above.
The node's own commits are delivered as the Application made them (full documents), by the
committing task itself: the fetcher stops before such a commit (`HOLD_SECONDS` at most),
so that, as with SQLite, a mutation's listeners have run before its caller (a sync socket)
is answered. A committing task that fetches stops likewise before an earlier commit of this
node whose task has not handed it over yet (its COMMIT's answer came later), and waits for
it: otherwise that commit would be delivered as decoded from the log, without its documents.
Other nodes' commits are decoded from the log. Every `PRUNE_EVERY_SECONDS` the fetcher
deletes commits older than `RETENTION_NS` (always keeping the newest, which names the
latest snapshot).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, Literal

import psycopg
from psycopg import sql

from owlat.runtime.database._sql import Statements
from owlat.runtime.database.commit_feed import decode_write_set
from owlat.runtime.database.commits import Commit
from owlat.runtime.database.engine import Deliver
from owlat.runtime.errors import EngineError

logger = logging.getLogger("owlat.runtime")

BATCH = 500
POLL_SECONDS = 1.0
RECONNECT_SECONDS = 1.0
# How long a commit of this node may take to come back through the feed before the
# mutation returns anyway (the feed delivers it later).
OWN_COMMIT_WAIT_SECONDS = 5.0
# How long the fetcher leaves a commit of this process to its committing task (so that the
# commit's listeners run in that task, before the mutation's caller is answered).
HOLD_SECONDS = 2.0
RETENTION_NS = 10 * 60 * 10**9
PRUNE_EVERY_SECONDS = 60.0



class OwnCommits:
    """This process's commits as its writers record them, shared by its engine and feed."""

    def __init__(self) -> None:
        # ts → the timestamp drawn just before it under the commit lock, for each commit of
        # this process whose transaction has been sent COMMIT
        self.previous: dict[int, int] = {}
        # the backend pids of this process's pooled connections: a commit announced by one
        # of them is this process's, delivered by its committing task (no fetch)
        self.backends: set[int] = set()
        self._in_flight: set[int] = set()
        self._tokens = itertools.count()
        self._settled = asyncio.Event()

    @contextlib.contextmanager
    def committing(self) -> Iterator[None]:
        """Around a COMMIT that draws its own timestamp (the commit function), which is
        recorded only once its answer is read: the feed may read the commit in the log
        before that (`settle`)."""
        token = next(self._tokens)
        self._in_flight.add(token)
        try:
            yield
        finally:
            self._in_flight.discard(token)
            self._settled.set()

    @property
    def in_flight(self) -> bool:
        return bool(self._in_flight)

    async def settle(self) -> None:
        """Wait until the commits in flight now are recorded or failed (`HOLD_SECONDS` at
        most): a commit read in the log that is not recorded is then another node's."""
        waiting = set(self._in_flight)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(HOLD_SECONDS):
                while waiting & self._in_flight:
                    self._settled.clear()
                    await self._settled.wait()


Connect = Callable[[], Awaitable[psycopg.AsyncConnection[tuple[Any, ...]]]]
Fetch = Callable[[str, tuple[Any, ...]], Awaitable[list[tuple[Any, ...]]]]


class PostgresCommitFeed:
    """Delivers every node's commits in order (see the module doc)."""

    def __init__(
        self,
        connect: Connect,
        fetch: Fetch,
        statements: Statements,
        own_commits: OwnCommits,
    ) -> None:
        self._connect = connect
        self._fetch = fetch
        self._sql = statements
        self._own_commits = own_commits
        self._recorded = own_commits.previous  # ts → previous, recorded by its writer
        self._deliver: Deliver | None = None
        self._delivered = 0
        self._wake = asyncio.Event()
        self._announced = 0  # the newest ts announced by NOTIFY
        self._catch_up = False  # fetch even if every announced commit was delivered
        self._own: dict[int, Commit] = {}  # commits handed over by their committing tasks
        self._handed = asyncio.Event()  # set when a commit is added to `_own`
        self._held_since: dict[int, float] = {}  # a held commit of this process → first seen
        self._fetching = asyncio.Lock()  # one fetch at a time, in order
        self._tasks: list[asyncio.Task[None]] = []
        self._last_prune = time.monotonic()

    async def start(self, after_ts: int, deliver: Deliver) -> None:
        self._delivered, self._deliver = after_ts, deliver
        self._tasks = [
            asyncio.create_task(self._listen(), name="owlat-commit-listener"),
            asyncio.create_task(self._fetch_loop(), name="owlat-commit-fetcher"),
        ]

    async def committed(self, commit: Commit) -> None:
        """Fetch and deliver up to `commit` in the caller's task: like SQLite's in-process
        publication, the commit's listeners have run when the mutation returns, before
        anything else (e.g. its sync socket) gets to run."""
        if commit.ts <= self._delivered:
            return
        self._own[commit.ts] = commit
        self._handed.set()
        try:
            async with asyncio.timeout(OWN_COMMIT_WAIT_SECONDS), self._fetching:
                while self._delivered < commit.ts:
                    if self._deliver_own():
                        continue
                    if await self._deliver_next(hold=False) == "held":
                        self._handed.clear()  # no await since the held commit was seen
                        with contextlib.suppress(TimeoutError):
                            async with asyncio.timeout(HOLD_SECONDS):
                                await self._handed.wait()
            if self._announced > self._delivered:
                self._wake.set()  # another node's commit the fetcher held back for this one
        except (TimeoutError, EngineError) as error:
            logger.warning("commit %d not delivered yet (%r): the feed will", commit.ts, error)
            self._fetch_soon()

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    # -- fetching ------------------------------------------------------------------------

    def _fetch_soon(self) -> None:
        """Wake the fetcher for a fetch whatever was announced."""
        self._catch_up = True
        self._wake.set()

    def _heard(self, ts: int) -> None:
        """A commit announced by NOTIFY: wake the fetcher unless it was delivered."""
        self._announced = max(self._announced, ts)
        if ts > self._delivered:
            self._wake.set()

    async def _fetch_loop(self) -> None:
        while True:
            try:
                async with asyncio.timeout(POLL_SECONDS):
                    await self._wake.wait()
            except TimeoutError:
                self._catch_up = True  # the safety net: fetch whatever was announced
            self._wake.clear()
            try:
                async with self._fetching:
                    more = False
                    if self._catch_up or self._announced > self._delivered:
                        self._catch_up = False
                        more = await self._deliver_next(hold=True) == "more"
                await self._prune_now_and_then()
            except EngineError as error:
                logger.warning("commit feed: %s; retrying", error)
                await asyncio.sleep(RECONNECT_SECONDS)
                self._fetch_soon()
                continue
            if more:
                self._fetch_soon()

    def _deliver_own(self) -> bool:
        """Deliver the commits of this process that directly follow the last one delivered
        (see the module doc), without reading the log; whether there was one."""
        delivered = False
        while True:
            following = [
                ts
                for ts in self._own
                if self._recorded.get(ts) == self._delivered
            ]
            if not following:
                return delivered
            ts = following[0]
            del self._recorded[ts]
            self._delivered = ts
            assert self._deliver is not None
            self._deliver(self._own.pop(ts))
            delivered = True

    async def _deliver_next(self, *, hold: bool) -> Literal["more", "done", "held"]:
        """Deliver the next batch of commits: "more" if there may be more, "held" if it
        stopped at a commit of this process whose committing task has not handed it over
        (`committed`) or, with `hold`, at any commit of this process, which its task
        delivers; a task that has not come for its commit within `HOLD_SECONDS` of the
        commit being seen in the log is not waited for."""
        rows = await self._fetch(self._sql.commits_after, (self._delivered, BATCH))
        assert self._deliver is not None
        now = time.monotonic()
        for ts, data in rows:
            ts = int(ts)
            if ts not in self._recorded and self._own_commits.in_flight:
                await self._own_commits.settle()  # it may be one of them, answered later
                now = time.monotonic()
            if (
                ts in self._recorded
                and (hold or ts not in self._own)
                and now - self._held_since.setdefault(ts, now) < HOLD_SECONDS
            ):
                return "held"
            self._recorded.pop(ts, None)
            commit = self._own.pop(ts, None)
            if commit is None:
                commit = Commit(ts, decode_write_set(bytes(data)))
            self._delivered = ts
            self._deliver(commit)
        for ts in [ts for ts in self._own if ts <= self._delivered]:
            del self._own[ts]  # rolled into a batch before `committed` was called
        for ts in [ts for ts in self._recorded if ts <= self._delivered]:
            del self._recorded[ts]  # its transaction failed after recording it
        for ts in [ts for ts in self._held_since if ts <= self._delivered]:
            del self._held_since[ts]
        return "more" if len(rows) == BATCH else "done"

    async def _prune_now_and_then(self) -> None:
        if time.monotonic() - self._last_prune < PRUNE_EVERY_SECONDS:
            return
        self._last_prune = time.monotonic()
        await self._fetch(self._sql.prune_commits, (self._delivered - RETENTION_NS,))

    # -- listening -----------------------------------------------------------------------

    async def _listen(self) -> None:
        while True:
            try:
                connection = await self._connect()
                async with connection:
                    cursor = await connection.execute(self._sql.commit_channel)
                    row = await cursor.fetchone()
                    assert row is not None
                    await connection.execute(sql.SQL("LISTEN {}").format(sql.Identifier(row[0])))
                    self._fetch_soon()  # catch up on commits made while not listening
                    async for notify in connection.notifies():
                        if notify.pid not in self._own_commits.backends:
                            self._heard(int(notify.payload))
            except (psycopg.Error, EngineError) as error:
                logger.warning("commit feed: listener lost (%s); reconnecting", error)
            await asyncio.sleep(RECONNECT_SECONDS)
