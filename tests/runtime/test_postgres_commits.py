"""PostgreSQL's one-round-trip commit and its commit feed, with two nodes on one database.

Two `Application`s in one process share one PostgreSQL schema, each with its own engine
and feed, as two `owlat serve` nodes would. Each test pins down a shortcut of the commit
path (postgres.py, _postgres_feed.py): the commit function that locks, checks, draws and
logs in one call; the own commit delivered without reading the log when nothing lies
between it and the last delivered one; announcements of already delivered commits
ignored; an own commit handed over late still delivered by its own task; the commit
functions created on an existing database."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path

import psycopg
import pytest

from owlat.runtime.application import Application
from owlat.runtime.database import _postgres_feed
from owlat.runtime.database.commits import Commit
from owlat.runtime.database.postgres import PostgresWriter
from owlat.runtime.testing import open_test_app
from tests.postgres import PostgresForTests

FIXTURE_APP = "tests.fixtures.app"
WRITERS = 12


@pytest.fixture
def url(postgres: PostgresForTests) -> AsyncIterator[str]:
    with postgres.schema() as schema_url:
        yield schema_url


@pytest.fixture
async def nodes(tmp_path: Path, url: str) -> AsyncIterator[tuple[Application, Application]]:
    async with AsyncExitStack() as stack:
        first = await stack.enter_async_context(
            open_test_app(FIXTURE_APP, tmp_path / "a", database_url=url)
        )
        second = await stack.enter_async_context(
            open_test_app(FIXTURE_APP, tmp_path / "b", database_url=url)
        )
        yield first, second


class Heard:
    """The commits a node's feed delivered, in order."""

    def __init__(self, app: Application) -> None:
        self.commits: list[Commit] = []
        self._more = asyncio.Event()
        app.on_commit(self._add)

    def _add(self, commit: Commit) -> None:
        self.commits.append(commit)
        self._more.set()

    @property
    def stamps(self) -> list[int]:
        return [commit.ts for commit in self.commits]

    async def reach(self, ts: int, seconds: float = 5.0) -> None:
        """Wait until the commit at `ts` (or a later one) has been delivered."""
        async with asyncio.timeout(seconds):
            while not self.commits or self.commits[-1].ts < ts:
                self._more.clear()
                await self._more.wait()


async def draw_and_roll_back(app: Application) -> None:
    """A transaction that draws a timestamp and fails: a gap in the timestamps."""
    async with app.engine.write() as writer:
        assert isinstance(writer, PostgresWriter)
        await writer.allocate_ts()
        raise RuntimeError("rolled back")


async def test_two_nodes_racing_on_one_document_lose_no_update(
    nodes: tuple[Application, Application],
) -> None:
    first, second = nodes
    seen = Heard(first), Heard(second)
    await first.run_mutation("counters:increment", {"name": "hot"}, internal=True)
    results = await asyncio.gather(
        *(
            app.run_mutation("counters:increment", {"name": "hot"}, internal=True)
            for app in (first, second)
            for _ in range(WRITERS)
        )
    )
    # every increment saw the one before it, whichever node ran it
    assert sorted(result.value for result in results) == [float(n) for n in range(2, 26)]
    stamps = [result.ts or 0 for result in sorted(results, key=lambda result: result.value)]
    assert all(a < b for a, b in itertools.pairwise(stamps))
    # both feeds deliver every commit once, in timestamp order
    for node in seen:
        await node.reach(stamps[-1])
        assert node.stamps[1:] == stamps


async def test_an_own_commit_waits_for_the_other_nodes_commit_drawn_before_it(
    nodes: tuple[Application, Application], monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = nodes
    seen = Heard(first)
    a1 = await first.run_mutation("messages:send", {"channel": "c", "body": "a1"})
    # the first node does not hear of b1 (no announcement, no poll) before a2 commits
    monkeypatch.setattr(first._feed, "_heard", lambda ts: None)
    monkeypatch.setattr(_postgres_feed, "POLL_SECONDS", 60.0)
    await asyncio.sleep(1.5)  # the fetchers' waits begun before the patch are over
    b1 = await second.run_mutation("messages:send", {"channel": "c", "body": "b1"})
    a2 = await first.run_mutation("messages:send", {"channel": "c", "body": "a2"})
    # a2 follows b1, not a1: b1 is read from the log and delivered first
    assert seen.stamps == [a1.ts, b1.ts, a2.ts]
    bodies = [change.new for commit in seen.commits for change in commit.write_set.documents]
    assert [body and body.get("body") for body in bodies] == ["a1", None, "a2"]


async def test_an_own_commit_handed_over_late_is_delivered_with_its_documents(
    nodes: tuple[Application, Application], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A later commit's task that reaches the feed first waits for the earlier commit's
    task (its COMMIT's answer came later) instead of delivering that commit from the log,
    where it has no documents."""
    first, _ = nodes
    seen = Heard(first)
    feed = first._feed
    assert feed is not None
    hand_over = feed.committed
    later: list[asyncio.Task[object]] = []

    async def late(commit: Commit) -> None:
        if not later:  # the first commit: the next one commits while this one is on its way
            later.append(
                asyncio.create_task(
                    first.run_mutation("messages:send", {"channel": "c", "body": "b"})
                )
            )
            await asyncio.sleep(0.3)
        await hand_over(commit)

    monkeypatch.setattr(feed, "committed", late)
    a = await first.run_mutation("messages:send", {"channel": "c", "body": "a"})
    await later[0]
    await seen.reach(a.ts or 0)
    bodies = [change.new for commit in seen.commits for change in commit.write_set.documents]
    assert [body and body.get("body") for body in bodies] == ["a", "b"]


async def test_an_unused_timestamp_between_two_commits_is_read_past(
    nodes: tuple[Application, Application],
) -> None:
    first, _ = nodes
    seen = Heard(first)
    a1 = await first.run_mutation("messages:send", {"channel": "c", "body": "a1"})
    with pytest.raises(RuntimeError):
        await draw_and_roll_back(first)
    a2 = await first.run_mutation("messages:send", {"channel": "c", "body": "a2"})
    assert seen.stamps == [a1.ts, a2.ts]
    (change,) = seen.commits[1].write_set.documents
    assert change.new is not None and change.new["body"] == "a2"


async def test_another_nodes_commit_is_heard_without_waiting_for_the_poll(
    nodes: tuple[Application, Application], monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = nodes
    seen = Heard(second)
    monkeypatch.setattr(_postgres_feed, "POLL_SECONDS", 60.0)
    await asyncio.sleep(1.5)  # the fetchers' waits begun before the patch are over
    for body in ("one", "two", "three"):
        own = await second.run_mutation("messages:send", {"channel": "c", "body": body})
        other = await first.run_mutation("messages:send", {"channel": "c", "body": body})
        await seen.reach(other.ts or 0, seconds=10.0)
        assert seen.stamps[-2:] == [own.ts, other.ts]


async def test_an_existing_database_gets_the_commit_functions_at_open(
    tmp_path: Path, url: str
) -> None:
    async with open_test_app(FIXTURE_APP, tmp_path / "a", database_url=url) as app:
        await app.run_mutation("messages:send", {"channel": "c", "body": "before"})
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as db:
        # as a database made by the code before them: no commit functions
        await db.execute("DROP FUNCTION owlat_commit_v1, owlat_draw_ts_v1")
    async with open_test_app(FIXTURE_APP, tmp_path / "a", database_url=url) as app:
        sent = await app.run_mutation("messages:send", {"channel": "c", "body": "after"})
        listed = await app.run_query("messages:list", {"channel": "c"})
    assert sent.ts and [message["body"] for message in listed.value] == ["before", "after"]


async def test_a_dropped_connections_backend_is_no_longer_taken_for_this_nodes(
    nodes: tuple[Application, Application], url: str
) -> None:
    """A node ignores announcements from its own pooled connections' backends (their
    commits' tasks deliver them). Once a connection is dropped, PostgreSQL may give its
    backend's pid to another node's connection, whose announcements must then be heard."""
    first, _ = nodes
    await first.run_mutation("messages:send", {"channel": "c", "body": "a"})
    own = first.engine._own_commits.backends  # type: ignore[attr-defined]
    dropped = set(own)
    assert dropped
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as db:
        await db.execute(
            "SELECT pg_terminate_backend(pid) FROM unnest(%s::int[]) AS pid", [list(dropped)]
        )
    for _ in range(len(dropped) + 1):  # each broken connection fails one mutation
        with contextlib.suppress(Exception):
            await first.run_mutation("messages:send", {"channel": "c", "body": "b"})
    assert own and not own & dropped
