"""The SQLite engine's shared read snapshot: reads share one read transaction while nothing
commits, and the first read after any commit (of this engine, or of another connection or
process on the same file) sees it."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

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


async def test_allocate_ts_stores_the_timestamp_it_draws(engine: SqliteEngine) -> None:
    """allocate_ts stores `last_ts` itself, so record_commit runs no statement for it; a
    savepoint rolled back after the allocation undoes the stored value, and record_commit
    then stores it again: timestamps keep increasing."""
    statements: list[str] = []
    async with engine.write() as writer:
        first = await writer.allocate_ts()
        assert engine._writer is not None
        engine._writer.set_trace_callback(statements.append)
        await writer.record_commit(first, WriteSet())
        engine._writer.set_trace_callback(None)
    assert statements == []
    assert await _last_ts(engine) == first

    drawn: list[int] = []

    async def allocate_then_fail(writer: Any) -> None:
        async with writer.savepoint():
            drawn.append(await writer.allocate_ts())
            raise RuntimeError("undo the savepoint")

    async with engine.write() as writer:
        with pytest.raises(RuntimeError):
            await allocate_then_fail(writer)
        (second,) = drawn
        assert await writer.last_ts() == first
        await writer.record_commit(second, WriteSet())
    assert await _last_ts(engine) == second > first

    later = second + 10**15  # ns: days after now
    async with engine.write() as writer:
        assert await writer.allocate_ts(at_least=later) == later
        assert await writer.allocate_ts() == later + 1  # drawn twice in one transaction
        await writer.record_commit(later, WriteSet())  # the value recorded is the one kept
    assert await _last_ts(engine) == later
