"""Schema evolution while other nodes keep serving: the catalog version, index backfill
against concurrent writers, index removal, and stored documents checked at start-up.

Two `Application`s in one process share one database (the same SQLite file, or the same
PostgreSQL schema), each with its own engine, as two nodes with different code would."""

from __future__ import annotations

import asyncio
import random
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest

from owlat.runtime import define_schema, define_table, v
from owlat.runtime.app_package import AppPackage
from owlat.runtime.application import Application
from owlat.runtime.database import catalog as catalog_module
from owlat.runtime.database.engine import KEY_MAX
from owlat.runtime.database.engines import SQLITE_FILE, create_engine
from owlat.runtime.errors import SchemaError
from owlat.runtime.functions import FunctionRegistry, internal_mutation, internal_query
from owlat.runtime.values import Validator, decode_stored, encode_stored

NOTE_FIELDS: dict[str, Validator] = {"title": v.string(), "rank": v.number()}


def note_app(name: str, *, by_rank: bool, fields: dict[str, Validator] | None = None) -> AppPackage:
    """An app with one `notes` table (indexed by rank or not) and a few functions."""
    table = define_table(fields or NOTE_FIELDS)
    if by_rank:
        table = table.index("by_rank", ["rank"])
    functions = FunctionRegistry()

    @internal_mutation
    async def add(ctx: Any, args: Any) -> Any:
        return await ctx.db.insert("notes", {"title": args["title"], "rank": args["rank"]})

    @internal_mutation
    async def rerank(ctx: Any, args: Any) -> None:
        if await ctx.db.get(args["id"]) is not None:
            await ctx.db.patch(args["id"], {"rank": args["rank"]})

    @internal_mutation
    async def remove(ctx: Any, args: Any) -> None:
        if await ctx.db.get(args["id"]) is not None:
            await ctx.db.delete(args["id"])

    @internal_query
    async def by_rank_titles(ctx: Any, args: Any) -> Any:
        notes = await ctx.db.query("notes").with_index("by_rank").collect()
        return [note["title"] for note in notes]

    for path, definition in (
        ("notes:add", add),
        ("notes:rerank", rerank),
        ("notes:remove", remove),
        ("notes:byRankTitles", by_rank_titles),
    ):
        functions.add(path, definition)
    return AppPackage(name, define_schema({"notes": table}), functions)


@asynccontextmanager
async def node(package: AppPackage, data: Path, url: str) -> AsyncIterator[Application]:
    """A started node of `package` on the shared database."""
    app = Application(package, create_engine(data, url))
    try:
        await app.start()
        yield app
    finally:
        await app.close()


async def index_rows(app: Application, index: str) -> list[tuple[bytes, dict[str, Any]]]:
    """Every (key, document) of a stored index, read through the engine."""
    info = app.catalog.table("notes").indexes[index]
    async with app.engine.read() as reader:
        rows = await reader.scan(info.index_id, b"", KEY_MAX, False, 1_000_000, None)
    return [(key, decode_stored(value)) for key, value in rows]


async def all_notes(app: Application) -> list[dict[str, Any]]:
    info = app.catalog.table("notes").indexes["by_creation_time"]
    async with app.engine.read() as reader:
        rows = await reader.scan(info.index_id, b"", KEY_MAX, False, 1_000_000, None)
    return [decode_stored(value) for _, value in rows]


def count_entries(data: Path, url: str, index_id: int) -> int:
    """Entries of an index in the storage table itself (no join: orphans count too)."""
    statement = "SELECT count(*) FROM owlat_index_entries WHERE index_id = "
    if not url:
        with sqlite3.connect(data / SQLITE_FILE) as db:
            return int(db.execute(statement + "?", (index_id,)).fetchone()[0])
    with psycopg.connect(url) as db:
        row = db.execute(statement + "%s", (index_id,)).fetchone()
        assert row is not None
        return int(row[0])


async def assert_index_consistent(app: Application, data: Path, url: str) -> None:
    """The by_rank index holds exactly one entry per note, with the note's current key,
    in (rank, _creationTime, _id) order: an index scan equals a sorted full scan."""
    notes = await all_notes(app)
    rows = await index_rows(app, "by_rank")
    info = app.catalog.table("notes").indexes["by_rank"]
    assert [key for key, _ in rows] == [info.key(document) for _, document in rows]
    expected = sorted(notes, key=lambda n: (n["rank"], n["_creationTime"], n["_id"]))
    assert [document for _, document in rows] == expected
    assert count_entries(data, url, info.index_id) == len(notes)


class Churn:
    """Writers on one node that insert, re-rank and delete notes until stopped."""

    def __init__(self, app: Application, ids: list[str], writers: int = 4) -> None:
        self.app = app
        self.ids = ids
        self.random = random.Random(7)
        self.stop = asyncio.Event()
        self.done = 0
        self._progress = asyncio.Condition()
        self.tasks = [asyncio.create_task(self._write()) for _ in range(writers)]

    async def _write(self) -> None:
        while not self.stop.is_set():
            choice = self.random.random()
            rank = self.random.randrange(1000)
            if choice < 0.4 or not self.ids:
                result = await self.app.run_mutation(
                    "notes:add", {"title": f"n{rank}", "rank": rank}, internal=True
                )
                self.ids.append(result.value)
            elif choice < 0.85:
                target = self.random.choice(self.ids)
                await self.app.run_mutation(
                    "notes:rerank", {"id": target, "rank": rank}, internal=True
                )
            else:
                target = self.ids.pop(self.random.randrange(len(self.ids)))
                await self.app.run_mutation("notes:remove", {"id": target}, internal=True)
            async with self._progress:
                self.done += 1
                self._progress.notify_all()
            await asyncio.sleep(0)  # SQLite never suspends inside a mutation

    async def wait_for(self, writes: int) -> None:
        target = self.done + writes
        async with asyncio.timeout(30), self._progress:
            await self._progress.wait_for(lambda: self.done >= target)

    async def finish(self) -> None:
        self.stop.set()
        await asyncio.gather(*self.tasks)


async def seed(app: Application, count: int) -> list[str]:
    ids = []
    for number in range(count):
        result = await app.run_mutation(
            "notes:add", {"title": f"seed{number}", "rank": number % 97}, internal=True
        )
        ids.append(result.value)
    return ids


async def test_index_added_by_one_node_while_another_keeps_writing(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(catalog_module, "BACKFILL_BATCH", 40)  # many batches to interleave
    data = tmp_path / "data"
    async with node(note_app("old", by_rank=False), data, database_url) as old:
        churn = Churn(old, await seed(old, 300))
        await churn.wait_for(20)
        version_before = old.catalog.version
        async with node(note_app("new", by_rank=True), data, database_url) as new:
            await churn.wait_for(50)  # the old node writes on, now on the new catalog
            await churn.finish()
            await assert_index_consistent(new, data, database_url)
            assert old.catalog.version != version_before  # it reloaded the stored catalog
            # ... and maintains the index its own schema does not declare
            assert "by_rank" in old.catalog.table("notes").indexes
            with pytest.raises(SchemaError, match=r"Index notes.by_rank not found"):
                await old.run_query("notes:byRankTitles", {}, internal=True)
            titles = (await new.run_query("notes:byRankTitles", {}, internal=True)).value
            assert len(titles) == len(churn.ids)


async def test_index_removed_by_one_node_while_another_keeps_writing(
    tmp_path: Path, database_url: str
) -> None:
    data = tmp_path / "data"
    async with node(note_app("with", by_rank=True), data, database_url) as first:
        churn = Churn(first, await seed(first, 50))
        await churn.wait_for(10)
        dropped = first.catalog.table("notes").indexes["by_rank"].index_id
        async with node(note_app("without", by_rank=False), data, database_url) as second:
            await churn.wait_for(30)
            await churn.finish()
            assert "by_rank" not in first.catalog.table("notes").indexes
            assert count_entries(data, database_url, dropped) == 0  # no orphans written
            with pytest.raises(SchemaError, match="restart this node with the current code"):
                await first.run_query("notes:byRankTitles", {}, internal=True)
            assert len(await all_notes(second)) == len(churn.ids)


async def test_query_on_a_backfilling_index_fails_and_a_restart_resumes_the_backfill(
    tmp_path: Path, database_url: str
) -> None:
    data = tmp_path / "data"
    package = note_app("app", by_rank=True)
    async with node(package, data, database_url) as app:
        await seed(app, 30)
        index_id = app.catalog.table("notes").indexes["by_rank"].index_id
        # A node that registered the index and died mid-backfill leaves this state.
        async with app.engine.write(exclusive=True) as writer:
            await writer.set_index_ready(index_id, False)
            for _, document in (await index_rows(app, "by_rank"))[10:]:
                info = app.catalog.table("notes").indexes["by_rank"]
                # the document rewritten unchanged, without its by_rank entry
                removed = [(index_id, info.key(document))]
                await writer.update_document(document["_id"], encode_stored(document), removed, [])
            await writer.bump_catalog_version()
        await app.run_mutation("notes:add", {"title": "late", "rank": 5}, internal=True)
        assert not app.catalog.table("notes").indexes["by_rank"].ready  # reloaded
        with pytest.raises(SchemaError, match="still being backfilled"):
            await app.run_query("notes:byRankTitles", {}, internal=True)
    async with node(package, data, database_url) as app:
        assert app.catalog.table("notes").indexes["by_rank"].ready
        assert len((await app.run_query("notes:byRankTitles", {}, internal=True)).value) == 31
        await assert_index_consistent(app, data, database_url)


async def test_a_table_removed_from_the_schema_keeps_its_documents(
    tmp_path: Path, database_url: str
) -> None:
    data = tmp_path / "data"
    package = note_app("app", by_rank=True)
    async with node(package, data, database_url) as app:
        await seed(app, 12)
    other = AppPackage("other", define_schema({"other": define_table({})}), FunctionRegistry())
    async with node(other, data, database_url) as app:
        with pytest.raises(SchemaError, match="'notes' is not defined"):
            app.catalog.table("notes")
    async with node(package, data, database_url) as app:
        assert len((await app.run_query("notes:byRankTitles", {}, internal=True)).value) == 12
        await assert_index_consistent(app, data, database_url)


async def test_stored_documents_that_no_longer_match_are_reported_at_start(
    tmp_path: Path, database_url: str
) -> None:
    data = tmp_path / "data"
    async with node(note_app("v1", by_rank=False), data, database_url) as app:
        await seed(app, 4)
    stricter = {**NOTE_FIELDS, "color": v.string()}
    with pytest.raises(SchemaError) as raised:
        async with node(note_app("v2", by_rank=False, fields=stricter), data, database_url):
            pass
    message = raised.value.message
    assert "table 'notes' does not match 4 stored document(s)" in message
    assert "color" in message and "v.optional" in message
    compatible = {**NOTE_FIELDS, "color": v.optional(v.string())}
    async with node(note_app("v3", by_rank=True, fields=compatible), data, database_url) as app:
        await assert_index_consistent(app, data, database_url)  # nothing was lost
