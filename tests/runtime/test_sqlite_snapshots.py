"""The SQLite engine's shared read snapshot: reads share one read transaction while nothing
commits, and the first read after any commit (of this engine, or of another connection or
process on the same file) sees it."""

from __future__ import annotations

import asyncio
import sqlite3
import sys
import time
from pathlib import Path

import pytest

from owlat.runtime.database._sqlite_clock import LEASE_NS
from owlat.runtime.database.commits import WriteSet
from owlat.runtime.database.sqlite import SqliteEngine

SET_LAST_TS = (
    "INSERT INTO owlat_globals (name, value) VALUES ('last_ts', ?) "
    "ON CONFLICT (name) DO UPDATE SET value = excluded.value"
)


@pytest.fixture
def engine(sqlite_engine: SqliteEngine) -> SqliteEngine:
    return sqlite_engine


async def _last_ts(engine: SqliteEngine) -> int:
    async with engine.read() as reader:
        return await reader.last_ts()


async def test_reads_share_one_snapshot_while_nothing_commits(engine: SqliteEngine) -> None:
    async with engine.read() as first:
        pass
    async with engine.read() as second, engine.read() as third:
        assert first is second is third


async def test_a_commit_of_another_connection_is_seen_by_the_next_read(
    engine: SqliteEngine,
) -> None:
    assert await _last_ts(engine) == 0
    other = sqlite3.connect(engine.path, isolation_level=None)  # another process, as SQLite sees it
    try:
        async with engine.read() as before:
            other.execute(SET_LAST_TS, (42,))
            assert await _last_ts(engine) == 42
            assert await before.last_ts() == 0  # a read under way keeps its snapshot
        other.execute(SET_LAST_TS, (43,))
        assert await _last_ts(engine) == 43
    finally:
        other.close()


async def test_a_commit_of_the_engine_is_seen_by_the_next_read(engine: SqliteEngine) -> None:
    assert await _last_ts(engine) == 0
    async with engine.write() as writer:
        await writer.record_commit(7, WriteSet())
    assert await _last_ts(engine) == 7


async def test_no_snapshot_stays_open_after_a_commit(engine: SqliteEngine) -> None:
    """An idle shared snapshot would keep a checkpoint from reaching the WAL's end."""
    assert await _last_ts(engine) == 0
    async with engine.write() as writer:
        await writer.set_global("other", 1)
    checkpoint = sqlite3.connect(engine.path, isolation_level=None)
    try:
        busy, _, _ = checkpoint.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    finally:
        checkpoint.close()
    assert busy == 0


def _stored_bound(engine: SqliteEngine) -> int:
    """The stored `last_ts` global, read by another connection."""
    other = sqlite3.connect(engine.path, isolation_level=None)
    try:
        (value,) = other.execute(
            "SELECT value FROM owlat_globals WHERE name = 'last_ts'"
        ).fetchone()
    finally:
        other.close()
    return int(value)


async def _commit(engine: SqliteEngine, at_least: int = 0) -> int:
    async with engine.write() as writer:
        ts = await writer.allocate_ts(at_least=at_least)
        await writer.record_commit(ts, WriteSet())
    return ts


async def test_commits_within_the_stored_bound_write_no_timestamp(engine: SqliteEngine) -> None:
    """A commit stores a timestamp bound only when it passes the stored one (the commit's
    `owlat_globals` page is not written); readers still see each commit's exact timestamp,
    and the timestamps drawn keep increasing, within a transaction too."""
    later = time.time_ns() + 10**15  # days after now: the next commits draw last + 1
    first = await _commit(engine, at_least=later)
    assert first == later and _stored_bound(engine) == later + LEASE_NS
    statements: list[str] = []
    assert engine._writer is not None
    engine._writer.set_trace_callback(statements.append)
    drawn = []
    for _ in range(5):
        async with engine.write() as writer:
            drawn.append(await writer.allocate_ts())
            assert await writer.allocate_ts() == drawn[-1] + 1  # drawn twice: increasing
            await writer.record_commit(drawn[-1], WriteSet())
        assert await _last_ts(engine) == drawn[-1]
    engine._writer.set_trace_callback(None)
    assert drawn == [first + 1 + step for step in range(5)]
    assert not [statement for statement in statements if "owlat_globals" in statement]
    assert _stored_bound(engine) == later + LEASE_NS
    beyond = await _commit(engine, at_least=later + LEASE_NS + 1)  # passes the bound
    assert _stored_bound(engine) == beyond + LEASE_NS
    await engine.close()
    assert _stored_bound(engine) == beyond  # a clean close stores the exact last one


CRASHING_WRITER = """
import asyncio, os, sys
from owlat.runtime.database._sqlite_clock import LEASE_NS
from owlat.runtime.database.commits import WriteSet
from owlat.runtime.database.sqlite import SqliteEngine

async def main():
    engine = SqliteEngine(sys.argv[1])
    await engine.open()
    for at_least in (int(sys.argv[2]), 0, 0):
        async with engine.write() as writer:
            ts = await writer.allocate_ts(at_least=at_least)
            await writer.record_commit(ts, WriteSet())
    print(ts, flush=True)
    os._exit(0)  # no close: as a killed process

asyncio.run(main())
"""


async def test_a_restart_after_a_crash_draws_above_every_committed_timestamp(
    tmp_path: Path,
) -> None:
    path = tmp_path / "owlat.sqlite3"
    later = time.time_ns() + 10**15  # ahead of the clock: only the stored bound can tell
    writer = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CRASHING_WRITER, str(path), str(later), stdout=asyncio.subprocess.PIPE
    )
    output, _ = await writer.communicate()
    assert writer.returncode == 0
    crashed_last = int(output)
    assert crashed_last == later + 2
    engine = SqliteEngine(path)
    await engine.open()
    try:
        assert await _last_ts(engine) >= crashed_last
        assert await _commit(engine) > crashed_last
    finally:
        await engine.close()


async def test_a_file_of_the_code_before_opens_at_its_last_ts(tmp_path: Path) -> None:
    """The code before stored the exact last timestamp: read as a bound, it still names
    the snapshot and every new timestamp is drawn above it."""
    path = tmp_path / "owlat.sqlite3"
    engine = SqliteEngine(path)
    await engine.open()
    await engine.close()
    before = time.time_ns() + 10**15
    old = sqlite3.connect(path, isolation_level=None)
    old.execute(SET_LAST_TS, (before,))
    old.close()
    engine = SqliteEngine(path)
    await engine.open()
    try:
        assert await _last_ts(engine) == before
        assert await _commit(engine) == before + 1
        assert await _last_ts(engine) == before + 1
    finally:
        await engine.close()


async def test_a_writer_learns_the_commits_of_another_connection(engine: SqliteEngine) -> None:
    """Two engines on one file (two processes, as SQLite sees it) taking turns: each writer
    learns the other's stored bound before it draws, so timestamps keep increasing."""
    other = SqliteEngine(engine.path)
    await other.open()
    try:
        later = time.time_ns() + 10**15
        drawn = [await _commit(engine, at_least=later)]
        drawn.append(await _commit(other))
        drawn.append(await _commit(engine))
        drawn.append(await _commit(other))
        assert drawn == sorted(drawn) and len(set(drawn)) == 4
        assert await _last_ts(other) == drawn[-1]
    finally:
        await other.close()


async def test_a_writer_asks_for_data_version_only_after_another_connection_committed(
    engine: SqliteEngine,
) -> None:
    """After its own commit a writer skips `PRAGMA data_version` (the WAL-index header is
    the one its commit left); once another connection has committed (a raw sqlite3 one that
    raises the stored bound far ahead), the next writer asks again, learns the bound and
    draws above it."""
    assert engine._writer is not None
    statements: list[str] = []
    engine._writer.set_trace_callback(statements.append)
    await _commit(engine)
    statements.clear()
    await _commit(engine)
    assert not [s for s in statements if "data_version" in s]

    later = time.time_ns() + 10**15
    other = sqlite3.connect(engine.path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        other.execute(SET_LAST_TS, (later,))
        other.execute("COMMIT")
    finally:
        other.close()
    statements.clear()
    assert await _commit(engine) > later
    assert [s for s in statements if "data_version" in s]
