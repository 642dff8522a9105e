"""Snapshots: `restore(export(x)) == x` on both engines, one timestamp while writes go on,
and the refusals of bad input (owlat/runtime/snapshots.py)."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from owlat.runtime.application import Application
from owlat.runtime.context import MutationCtx
from owlat.runtime.database.engine import Engine
from owlat.runtime.snapshots import (
    SnapshotError,
    export_snapshot,
    exportable_tables,
    import_snapshot,
)
from owlat.runtime.storage.blobstores import BlobStore
from owlat.runtime.testing import in_mutation, open_test_app
from owlat.runtime.types import Int64

FIXTURE_APP = "tests.fixtures.app"


@asynccontextmanager
async def deployment(data_dir: Path, url: str) -> AsyncIterator[Application]:
    async with open_test_app(
        FIXTURE_APP, data_dir, scheduler_parallelism=None, database_url=url
    ) as app:
        yield app


def blobs_of(app: Application) -> BlobStore:
    assert app.storage is not None
    return app.storage.blobs


async def contents(engine: Engine, blobs: BlobStore) -> dict[str, Any]:
    """Every exportable table's stored documents (bytes, by id) and every file's bytes."""
    state: dict[str, Any] = {}
    async with engine.read() as reader:
        for name, number in exportable_tables(await reader.list_tables()).items():
            rows = await reader.documents_after(number, "", 1_000_000)
            state[name] = dict(rows)
            if name == "_storage":
                for _, value in rows:
                    key = json.loads(value)["key"]
                    async with blobs.read(key) as chunks:
                        state["file:" + key] = b"".join([chunk async for chunk in chunks])
    return state


async def populate(app: Application) -> None:
    """Documents of every kind of value, a file, a pending scheduled job."""
    await app.run_mutation("messages:send", {"channel": "a", "body": "hello"})

    async def odd_values(ctx: MutationCtx) -> None:
        await ctx.db.insert(
            "people", {"name": "Ann", "profile": {"age": 41.0, "city": "Oslo"}, "big": Int64(2**62)}
        )
        for value in (b"\x00\xff", float("nan"), float("-inf"), -0.0, 1.5, [Int64(-3), "x"]):
            await ctx.db.insert("items", {"value": value, "tag": "odd"})

    await in_mutation(app, odd_values)
    storage_id = (
        await app.run_action("files:storeText", {"text": "file body", "contentType": "text/plain"})
    ).value
    await app.run_mutation("files:save", {"storageId": storage_id, "name": "notes.txt"})
    await app.run_mutation("jobs:scheduleRecords", {"keys": ["later"], "delay_ms": 3_600_000})


async def test_restore_of_an_export_is_the_same_deployment(
    tmp_path: Path, database_url: str, target_url: str
) -> None:
    zip_path = tmp_path / "snapshot.zip"
    async with deployment(tmp_path / "source", database_url) as source:
        await populate(source)
        before = await contents(source.engine, blobs_of(source))
        summary = await export_snapshot(source.engine, blobs_of(source), zip_path)
    assert summary.documents["items"] == 6 and summary.files == 1
    with zipfile.ZipFile(zip_path) as archive:
        names = set(archive.namelist())
        assert {"README.md", "_tables/documents.jsonl", "people/documents.jsonl"} <= names
        assert (
            "_storage/documents.jsonl" in names and "_session_requests/documents.jsonl" not in names
        )
        person = json.loads(archive.read("people/documents.jsonl"))
        assert person["big"] == 2**62 and person["profile"]["age"] == 41.0  # export JSON
        assert any(name.endswith(".txt") for name in names if name.startswith("_storage/"))

    async with deployment(tmp_path / "target", target_url) as target:
        loaded = await import_snapshot(target.package, target.engine, blobs_of(target), zip_path)
        assert loaded.documents == summary.documents
        assert await contents(target.engine, blobs_of(target)) == before
        # the restored deployment serves them: ids, files and jobs included
        (message,) = (await target.run_query("messages:list", {"channel": "a"})).value
        assert message["body"] == "hello"
        (file,) = (await target.run_query("files:allMetadata", {})).value
        text = await target.run_action("files:readText", {"storageId": file["_id"]})
        assert text.value == "file body"


class CommitsBetweenPages:
    """A real engine whose read transactions commit a write (through the application, in
    a transaction of its own) before reading each page of an index: an export that read
    each page at a new timestamp would see the writes."""

    def __init__(self, engine: Engine, write: Callable[[], Awaitable[object]]) -> None:
        self.engine = engine
        self.write = write
        self.commits = 0

    @asynccontextmanager
    async def read(self) -> AsyncIterator[Any]:
        async with self.engine.read() as reader:
            yield _WritingReader(self, reader)


class _WritingReader:
    def __init__(self, owner: CommitsBetweenPages, reader: Any) -> None:
        self._owner = owner
        self._reader = reader

    def __getattr__(self, name: str) -> Any:
        return getattr(self._reader, name)

    async def scan(self, *args: Any) -> Any:
        await self._owner.write()
        self._owner.commits += 1
        return await self._reader.scan(*args)


async def test_export_reads_one_timestamp_while_writes_continue(
    tmp_path: Path, database_url: str, target_url: str
) -> None:
    """Each mutation adds a message and counts it: a snapshot of one timestamp has exactly
    the messages its counter counts, whatever commits during the export."""

    async def write(ctx: MutationCtx) -> None:
        counter = await ctx.db.query("counters").first()
        count = 0.0 if counter is None else counter["count"]
        await ctx.db.insert("messages", {"channel": "w", "body": str(int(count))})
        if counter is None:
            await ctx.db.insert("counters", {"name": "n", "count": 1.0})
        else:
            await ctx.db.patch(counter["_id"], {"count": count + 1})

    zip_path = tmp_path / "snapshot.zip"
    async with deployment(tmp_path / "source", database_url) as source:
        for _ in range(30):
            await in_mutation(source, write)
        engine = CommitsBetweenPages(source.engine, lambda: in_mutation(source, write))
        await export_snapshot(engine, blobs_of(source), zip_path, page_size=3)  # type: ignore[arg-type]
        assert engine.commits >= 10  # every page was read after another commit
        total = (await source.run_query("messages:list", {"channel": "w"})).value

    with zipfile.ZipFile(zip_path) as archive:
        bodies = [
            json.loads(line)["body"]
            for line in archive.read("messages/documents.jsonl").splitlines()
        ]
        (counter,) = [
            json.loads(line) for line in archive.read("counters/documents.jsonl").splitlines()
        ]
    assert sorted(int(body) for body in bodies) == list(range(int(counter["count"])))
    assert counter["count"] <= 30 < len(total)

    async with deployment(tmp_path / "target", target_url) as target:
        await import_snapshot(target.package, target.engine, blobs_of(target), zip_path)
        listed = (await target.run_query("messages:list", {"channel": "w"})).value
        assert len(listed) == counter["count"]


async def test_import_refuses_a_deployment_with_documents_unless_replace(
    tmp_path: Path, database_url: str
) -> None:
    zip_path = tmp_path / "snapshot.zip"
    async with deployment(tmp_path / "source", database_url) as app:
        await populate(app)
        before = await contents(app.engine, blobs_of(app))
        await export_snapshot(app.engine, blobs_of(app), zip_path)
        await app.run_mutation("messages:send", {"channel": "a", "body": "after"})
        with pytest.raises(SnapshotError, match="already holds documents in .*messages.*--replace"):
            await import_snapshot(app.package, app.engine, blobs_of(app), zip_path)
        assert len((await app.run_query("messages:list", {"channel": "a"})).value) == 2
        await import_snapshot(app.package, app.engine, blobs_of(app), zip_path, replace=True)
        assert await contents(app.engine, blobs_of(app)) == before


def _zip(path: Path, entries: dict[str, bytes]) -> Path:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    path.write_bytes(buffer.getvalue())
    return path


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        (None, "is not a ZIP file"),
        ({"README.md": b"hi"}, "is not a snapshot: it has no _tables/documents.jsonl"),
        ({"_tables/documents.jsonl": b'{"name": "nope", "id": 10001}\n'}, "'nope', which this app"),
        (
            {"_tables/documents.jsonl": b'{"name": "messages", "id": 10001}\n'},
            "lists a table without its documents: no messages/documents.jsonl",
        ),
        (
            {"_tables/documents.jsonl": b"", "messages/documents.jsonl": b""},
            "messages/documents.jsonl belongs to a table _tables/documents.jsonl does not list",
        ),
        ({"_tables/documents.jsonl": b"{oops\n"}, "_tables/documents.jsonl line 1: Malformed JSON"),
    ],
)
async def test_import_refuses_what_is_not_a_snapshot_of_this_app(
    tmp_path: Path, database_url: str, entries: dict[str, bytes] | None, message: str
) -> None:
    path = tmp_path / "bad.zip"
    if entries is None:
        path.write_bytes(b"not a zip at all")
    else:
        _zip(path, entries)
    async with deployment(tmp_path / "target", database_url) as app:
        await app.run_mutation("messages:send", {"channel": "a", "body": "kept"})
        with pytest.raises(SnapshotError, match=message.replace("(", r"\(")):
            await import_snapshot(app.package, app.engine, blobs_of(app), path)
        assert len((await app.run_query("messages:list", {"channel": "a"})).value) == 1


async def test_a_bad_document_leaves_the_deployment_as_it_was(
    tmp_path: Path, database_url: str, target_url: str
) -> None:
    zip_path = tmp_path / "snapshot.zip"
    async with deployment(tmp_path / "source", database_url) as source:
        for n in range(5):
            await source.run_mutation("messages:send", {"channel": "a", "body": str(n)})
        await export_snapshot(source.engine, blobs_of(source), zip_path)
    with zipfile.ZipFile(zip_path) as archive:
        entries = {name: archive.read(name) for name in archive.namelist()}
    entries["messages/documents.jsonl"] += b'{"_id": "x", "_creationTime": 1.0}\n'
    _zip(zip_path, entries)
    async with deployment(tmp_path / "target", target_url) as target:
        with pytest.raises(SnapshotError, match=r"messages/documents.jsonl line 6: _id 'x' is not"):
            await import_snapshot(target.package, target.engine, blobs_of(target), zip_path)
        assert (await target.run_query("messages:list", {"channel": "a"})).value == []


async def test_export_of_selected_tables_refuses_an_unknown_one(
    tmp_path: Path, database_url: str
) -> None:
    async with deployment(tmp_path, database_url) as app:
        await app.run_mutation("messages:send", {"channel": "a", "body": "x"})
        summary = await export_snapshot(
            app.engine, blobs_of(app), tmp_path / "m.zip", tables=["messages"]
        )
        assert summary.documents == {"messages": 1}
        with pytest.raises(SnapshotError, match="unknown table 'nope'; the deployment has: "):
            await export_snapshot(app.engine, blobs_of(app), tmp_path / "x.zip", tables=["nope"])
        assert not (tmp_path / "x.zip").exists() and not (tmp_path / "x.zip.partial").exists()


def test_cli_exports_and_imports_and_says_what_it_refuses(tmp_path: Path) -> None:
    from tests.runtime.test_cli import owlat

    assert (
        owlat(tmp_path / "a", "run", "messages:send", '{"channel": "c", "body": "x"}').returncode
        == 0
    )
    none = owlat(tmp_path / "empty", "export", str(tmp_path / "e.zip"))
    assert none.returncode == 2 and "no database in" in none.stderr
    done = owlat(tmp_path / "a", "export", str(tmp_path / "a.zip"), "--tables", "messages")
    assert done.returncode == 0 and "Exported 1 documents of 1 tables" in done.stdout
    unknown = owlat(tmp_path / "a", "export", str(tmp_path / "x.zip"), "--tables", "nope")
    assert unknown.returncode == 2 and "unknown table 'nope'" in unknown.stderr
    (tmp_path / "junk.zip").write_text("junk")
    junk = owlat(tmp_path / "b", "import", str(tmp_path / "junk.zip"))
    assert junk.returncode == 2 and "is not a ZIP file" in junk.stderr
    loaded = owlat(tmp_path / "b", "import", str(tmp_path / "a.zip"))
    assert loaded.returncode == 0 and "Imported 1 documents" in loaded.stdout
    listed = owlat(tmp_path / "b", "run", "messages:list", '{"channel": "c"}')
    assert json.loads(listed.stdout)[0]["body"] == "x"
    refused = owlat(tmp_path / "b", "import", str(tmp_path / "a.zip"))
    assert refused.returncode == 2 and "pass --replace" in refused.stderr
    assert owlat(tmp_path / "b", "import", str(tmp_path / "a.zip"), "--replace").returncode == 0


async def test_a_table_without_its_indexes_is_exported_by_id(
    tmp_path: Path, database_url: str
) -> None:
    """A table that left the schema keeps its documents but loses its indexes."""
    async with deployment(tmp_path, database_url) as app:
        for body in ("a", "b", "c"):
            await app.run_mutation("messages:send", {"channel": "x", "body": body})
        async with app.engine.write(exclusive=True) as writer:
            for index in await writer.list_indexes():
                if index.table == "messages":
                    await writer.delete_index(index.index_id)
        summary = await export_snapshot(app.engine, blobs_of(app), tmp_path / "s.zip", page_size=2)
    assert summary.documents["messages"] == 3
    with zipfile.ZipFile(tmp_path / "s.zip") as archive:
        lines = archive.read("messages/documents.jsonl").splitlines()
    assert sorted(json.loads(line)["body"] for line in lines) == ["a", "b", "c"]
