"""The SQLite engine's shared read snapshot: reads share one read transaction while nothing
commits, and the first read after any commit (of this engine, or of another connection or
process on the same file) sees it."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from owlat.runtime.database.commits import WriteSet
from owlat.runtime.database.sqlite import SqliteEngine

SET_LAST_TS = (
    "INSERT INTO owlat_globals (name, value) VALUES ('last_ts', ?) "
    "ON CONFLICT (name) DO UPDATE SET value = excluded.value"
)


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[SqliteEngine]:
    engine = SqliteEngine(tmp_path / "owlat.sqlite3")
    await engine.open()
    try:
        yield engine
    finally:
        await engine.close()


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
