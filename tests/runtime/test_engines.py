"""The engine contract under concurrency, on every engine: serializable writes with retried
conflicts, commit timestamps strictly increasing in commit order; and engine selection."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path

import psycopg
import pytest

from owlat.config import Settings
from owlat.runtime.application import Application
from owlat.runtime.database.commit_feed import decode_write_set, encode_write_set
from owlat.runtime.database.commits import Commit, DocumentChange, IndexKeyChange, WriteSet
from owlat.runtime.database.engines import create_engine
from owlat.runtime.database.postgres import PostgresEngine, PostgresWriter, _fetch
from owlat.runtime.database.sqlite import SqliteEngine
from owlat.runtime.errors import EngineError, OperatorError
from tests.postgres import PostgresForTests

WRITERS = 20


async def test_concurrent_increments_lose_no_update(app: Application) -> None:
    commits: list[Commit] = []
    app.on_commit(commits.append)
    await app.run_mutation("counters:increment", {"name": "hot"}, internal=True)
    results = await asyncio.gather(
        *(
            app.run_mutation("counters:increment", {"name": "hot"}, internal=True)
            for _ in range(WRITERS)
        )
    )
    assert sorted(result.value for result in results) == [float(n) for n in range(2, 22)]
    assert (await app.run_query("counters:get", {"name": "hot"})).value == WRITERS + 1
    # each mutation saw the one before it: timestamps follow the order of the values
    by_value = sorted(results, key=lambda result: result.value)
    stamps = [result.ts or 0 for result in by_value]
    assert all(a < b for a, b in itertools.pairwise(stamps))
    assert sorted(commit.ts for commit in commits) == [commits[0].ts, *stamps]


async def test_timestamps_increase_even_when_the_clock_is_behind(app: Application) -> None:
    far_future = 4_000_000_000_000_000_000
    assert await app.advance_ts(far_future) == far_future
    first = await app.run_mutation("messages:send", {"channel": "c", "body": "1"})
    second = await app.run_mutation("messages:send", {"channel": "c", "body": "2"})
    assert (first.ts, second.ts) == (far_future + 1, far_future + 2)
    async with app.snapshot() as snapshot:
        assert snapshot.ts == far_future + 2


async def test_a_mutation_that_writes_nothing_answers_with_a_committed_ts(
    app: Application,
) -> None:
    written = await app.run_mutation("messages:send", {"channel": "c", "body": "1"})
    unchanged = await app.run_mutation(
        "messages:sendMany", {"channel": "c", "bodies": [], "fail_at": -1}
    )
    assert unchanged.ts == written.ts


def test_the_database_url_selects_the_engine(tmp_path: Path) -> None:
    assert isinstance(create_engine(tmp_path), SqliteEngine)
    assert isinstance(create_engine(tmp_path, "postgresql://u@h/db"), PostgresEngine)
    assert isinstance(create_engine(tmp_path, "postgres://u@h/db"), PostgresEngine)
    with pytest.raises(OperatorError, match="Unsupported database URL scheme 'mysql'"):
        create_engine(tmp_path, "mysql://u@h/db")


def test_the_pool_size_setting_is_validated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OWLAT_DATABASE_POOL_SIZE", raising=False)
    assert Settings.from_env().database_pool_size == 16
    monkeypatch.setenv("OWLAT_DATABASE_POOL_SIZE", "4")
    assert Settings.from_env().database_pool_size == 4
    for wrong, message in (("0", "between 1 and 1000, got 0"), ("many", "whole number")):
        monkeypatch.setenv("OWLAT_DATABASE_POOL_SIZE", wrong)
        with pytest.raises(SystemExit, match=f"OWLAT_DATABASE_POOL_SIZE must be .*{message}"):
            Settings.from_env()
    with pytest.raises(OperatorError, match="at least one connection"):
        PostgresEngine("postgresql://u@h/db", pool_size=0)


async def test_the_pool_size_bounds_open_transactions(
    tmp_path: Path, postgres: PostgresForTests
) -> None:
    with postgres.schema() as url:
        engine = create_engine(tmp_path, url, pool_size=2)
        await engine.open()
        try:
            async with engine.read(), engine.read():
                with pytest.raises(TimeoutError):
                    async with asyncio.timeout(0.2), engine.read():
                        pass  # a third transaction waits for a connection
            async with asyncio.timeout(5), engine.read() as reader:
                assert await reader.last_ts() == 0
        finally:
            await engine.close()


async def test_a_transaction_cancelled_mid_statement_does_not_return_its_connection(
    tmp_path: Path, postgres: PostgresForTests
) -> None:
    """A cancelled task may leave its connection in any state inside the driver (e.g. still
    in pipeline mode, where the next transaction's statements get no rows): it is closed,
    never pooled again, and the next transactions work."""
    with postgres.schema() as url:
        engine = create_engine(tmp_path, url, pool_size=1)
        await engine.open()
        try:
            connections: list[psycopg.AsyncConnection[tuple[object, ...]]] = []

            async def slow_write() -> None:
                async with engine.write() as writer:
                    assert isinstance(writer, PostgresWriter)
                    connections.append(writer._db)
                    # BEGIN is deferred: it goes with this statement, in a pipeline
                    await _fetch(writer._db, "SELECT pg_sleep(5)")

            task = asyncio.create_task(slow_write())
            await asyncio.sleep(0.3)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert connections[0].closed
            async with asyncio.timeout(5), engine.write() as writer:
                assert await writer.allocate_ts() > 0
            async with engine.read() as reader:
                assert await reader.last_ts() == 0
        finally:
            await engine.close()


async def test_an_unreachable_database_is_an_engine_error() -> None:
    engine = PostgresEngine("postgresql://nobody@127.0.0.1:1/none?connect_timeout=2")
    with pytest.raises(EngineError, match="PostgreSQL: cannot connect"):
        await engine.open()


def test_the_commit_log_keeps_keys_and_which_documents_changed() -> None:
    write_set = WriteSet(
        (
            DocumentChange("t", "id1", None, {"_id": "id1", "x": 1}),
            DocumentChange("t", "id2", {"_id": "id2"}, None),
        ),
        (
            IndexKeyChange("t", "by_id", None, b"id1"),
            IndexKeyChange("t", "by_x", b"\x00\xff\x10", None),
        ),
    )
    decoded = decode_write_set(encode_write_set(write_set))
    assert decoded.index_keys == write_set.index_keys
    assert decoded.documents == (
        DocumentChange("t", "id1", None, {"_id": "id1"}),
        DocumentChange("t", "id2", {"_id": "id2"}, None),
    )
