"""Snapshot export and import: a deployment's documents and files in Convex's ZIP layout.

The layout is `npx convex export`'s:

    README.md
    _tables/documents.jsonl         {"name": table, "id": table number}, one line per table
    <table>/documents.jsonl         the table's documents, one export-JSON line each, by _id
    _storage/documents.jsonl        {"_id", "_creationTime", "sha256", "size", "contentType"?,
                                     "key", "owner"?}: the files' metadata
    _storage/<_id><.ext>            each file's contents (the extension guessed from its type)

Documents are Convex's export JSON (`values.convex_to_export_json`: int64 as a JSON integer,
floats with a decimal point). A snapshot holds the app's tables and, of the system tables,
`_storage` (with the files), `_scheduled_functions` (pending jobs and their history) and
`_cron_jobs` (each declared cron's next run); `_session_requests` and `_scheduler_claims` are
per-connection and per-node state and are left out.

**Export** (`export_snapshot`) reads every table in ONE read transaction of the engine, so
the snapshot is the deployment at one commit timestamp while servers keep committing
(SQLite: a WAL reader; PostgreSQL: REPEATABLE READ). Documents are paged by id (keyset), so
memory stays bounded; a page whose stored text holds no `{"$` object is written as stored
(it is its export JSON already). A file deleted after the snapshot's timestamp, before its
contents were read, is left out with its metadata, and counted.

**Import** (`import_snapshot`) checks the whole ZIP before touching the database, then
registers the snapshot's tables under their numbers (a document id holds its table's
number, so ids are kept only if the numbers agree), stores the files, and writes every
document in one exclusive write transaction: all or nothing. A table that already holds
documents is refused unless `replace` (its documents are then deleted in the same
transaction, and their files after it). `_cron_jobs` rows are always replaced: they are
the schedule of the declared crons, which a started deployment has already written.
Servers cache query results: import while no server serves the database, then start them.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import mimetypes
import os
import zipfile
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path, PurePosixPath
from typing import IO, Any

from owlat.runtime.app_package import AppPackage
from owlat.runtime.database.catalog import (
    NEXT_TABLE_NUMBER_GLOBAL,
    Catalog,
    TableInfo,
    sync_catalog,
)
from owlat.runtime.database.commits import WriteSet
from owlat.runtime.database.engine import KEY_MAX, Engine, EngineReader
from owlat.runtime.database.transaction import RetryPolicy
from owlat.runtime.errors import OwlatError, UserError
from owlat.runtime.schema import BY_CREATION_TIME, FIRST_USER_TABLE_NUMBER
from owlat.runtime.storage.blobstores import BlobStore
from owlat.runtime.storage.blobstores.types import BlobNotFoundError
from owlat.runtime.system_tables import (
    CRON_JOBS,
    SCHEDULED_FUNCTIONS,
    STORAGE,
    SYSTEM_TABLES,
)
from owlat.runtime.types import Document
from owlat.runtime.values import (
    convex_to_export_json,
    decode_stored,
    dumps,
    encode_stored,
    export_json_to_convex,
    loads,
)
from owlat.runtime.values.ids import table_number_of

# The system tables a snapshot holds, besides the app's tables.
SNAPSHOT_SYSTEM_TABLES = (SCHEDULED_FUNCTIONS, CRON_JOBS, STORAGE)
TABLES_ENTRY = "_tables/documents.jsonl"
DOCUMENTS = "documents.jsonl"
PAGE_SIZE = 1000
README = """# Welcome to your Owlat snapshot export!

This ZIP file contains a snapshot of the tables of an Owlat deployment, in the layout of a
Convex snapshot export, at one commit timestamp: {ts}.

Documents for each table are listed as lines of JSON (Convex's export JSON) in
<table_name>/documents.jsonl files; _tables/documents.jsonl names every table with its
number; _storage/documents.jsonl holds the files' metadata and _storage/ their contents.

Load it with `owlat import FILE.zip` (into an empty deployment, or `--replace`).
"""

# (step, done, total): "contacts", 2000, 100000 — called after each page or file.
Progress = Callable[[str, int, int], None]


class SnapshotError(UserError):
    """The snapshot cannot be written or loaded as asked (the message says why)."""


@dataclasses.dataclass
class SnapshotSummary:
    """What an export wrote or an import loaded."""

    ts: int = 0
    documents: dict[str, int] = dataclasses.field(default_factory=dict)
    files: int = 0
    file_bytes: int = 0
    missing_files: int = 0  # export: deleted after the snapshot's timestamp, left out


def _no_progress(step: str, done: int, total: int) -> None:
    pass


# -- export ------------------------------------------------------------------------------------


def exportable_tables(stored: dict[str, int]) -> dict[str, int]:
    """The tables of `stored` (name → number) a snapshot holds, in table-number order."""
    return {
        name: number
        for name, number in sorted(stored.items(), key=lambda item: item[1])
        if not name.startswith("_") or name in SNAPSHOT_SYSTEM_TABLES
    }


def _selected(available: dict[str, int], tables: list[str] | None) -> dict[str, int]:
    if tables is None:
        return available
    unknown = [name for name in tables if name not in available]
    if unknown:
        raise SnapshotError(
            f"unknown table{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}; "
            f"the deployment has: {', '.join(available)}"
        )
    return {name: number for name, number in available.items() if name in tables}


async def export_snapshot(
    engine: Engine,
    blobs: BlobStore | None,
    path: Path,
    *,
    tables: list[str] | None = None,
    progress: Progress = _no_progress,
    page_size: int = PAGE_SIZE,
) -> SnapshotSummary:
    """Write a snapshot of the opened `engine` (all exportable tables, or `tables`) and the
    files of `_storage` from `blobs` to `path`, written as `<path>.partial` then renamed:
    a failed export leaves no file. Raises `SnapshotError` for an unknown table."""
    partial = path.with_name(path.name + ".partial")
    try:
        with zipfile.ZipFile(
            partial, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1, allowZip64=True
        ) as archive:
            async with engine.read() as reader:
                chosen = _selected(exportable_tables(await reader.list_tables()), tables)
                if STORAGE in chosen and blobs is None:
                    raise SnapshotError("the file storage is needed to export _storage")
                export = _Export(reader, archive, progress, page_size)
                await export.run(chosen, blobs)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return export.summary


# A table to read: its number, and its `by_creation_time` index (None: it has none).
_Source = tuple[int, int | None]


class _Export:
    """One export: the reader of its snapshot, the ZIP it writes, its progress."""

    def __init__(
        self, reader: EngineReader, archive: zipfile.ZipFile, progress: Progress, page_size: int
    ) -> None:
        self.reader = reader
        self.archive = archive
        self.progress = progress
        self.page_size = page_size
        self.summary = SnapshotSummary()
        self.done = 0
        self.total = 0

    async def run(self, tables: dict[str, int], blobs: BlobStore | None) -> None:
        self.summary.ts = await self.reader.last_ts()
        indexes = {
            index.table: index.index_id
            for index in await self.reader.list_indexes()
            if index.name == BY_CREATION_TIME
        }
        # A table that left the schema keeps its documents but not its indexes: read by id.
        sources = {name: (number, indexes.get(name)) for name, number in tables.items()}
        counts = {
            name: None if index_id is None else await self._count(index_id)
            for name, (_, index_id) in sources.items()
        }
        # files, then their metadata
        self.total = sum(filter(None, counts.values())) + (counts.get(STORAGE) or 0)
        self.archive.writestr("README.md", README.format(ts=self.summary.ts))
        self.archive.writestr(
            TABLES_ENTRY,
            b"".join(dumps({"name": n, "id": i}) + b"\n" for n, i in tables.items()),
        )
        for name, source in sources.items():
            if counts[name] == 0:
                self.archive.writestr(f"{name}/{DOCUMENTS}", b"")
                self.summary.documents[name] = 0
            elif name == STORAGE:
                assert blobs is not None
                await self._storage(source, blobs)
            else:
                await self._table(name, source, lambda value: True)

    async def _count(self, index_id: int) -> int:
        return (await self.reader.count_where(index_id, b"", KEY_MAX, None))[0]

    async def _pages(self, source: _Source) -> AsyncIterator[list[tuple[bytes | str, bytes]]]:
        """A table's documents a page at a time, keyset-paged: by `_creationTime` (its
        `by_creation_time` index, after the last key), or by id when it has no index;
        letting other work run between pages."""
        number, index_id = source
        low, after = b"", ""
        while True:
            rows: list[tuple[bytes | str, bytes]]
            if index_id is None:
                rows = list(await self.reader.documents_after(number, after, self.page_size))
            else:
                rows = list(
                    await self.reader.scan(index_id, low, KEY_MAX, False, self.page_size, None)
                )
            if rows:
                yield rows
            if len(rows) < self.page_size:
                return
            last = rows[-1][0]
            if isinstance(last, bytes):
                low = last + b"\x00"
            else:
                after = last
            await asyncio.sleep(0)

    def _advance(self, step: str, count: int) -> None:
        self.done += count
        self.progress(step, self.done, max(self.total, self.done))

    async def _table(self, name: str, source: _Source, keep: Callable[[bytes], bool]) -> None:
        """`<name>/documents.jsonl`: the documents whose stored value `keep` accepts."""
        written = 0
        with self.archive.open(f"{name}/{DOCUMENTS}", "w", force_zip64=True) as entry:
            async for rows in self._pages(source):
                lines = [_export_line(value) for _, value in rows if keep(value)]
                entry.write(b"".join(lines))
                written += len(lines)
                self._advance(name, len(rows))
        self.summary.documents[name] = written

    async def _storage(self, source: _Source, blobs: BlobStore) -> None:
        """The files first (leaving out those deleted since the snapshot's timestamp), then
        the metadata of those written."""
        missing: set[str] = set()
        async for rows in self._pages(source):
            for _, value in rows:
                document = decode_stored(value)
                try:
                    async with blobs.read(str(document["key"])) as chunks:
                        name = _file_name(document)
                        with self.archive.open(name, "w", force_zip64=True) as entry:
                            async for chunk in chunks:
                                entry.write(chunk)
                                self.summary.file_bytes += len(chunk)
                    self.summary.files += 1
                except BlobNotFoundError:
                    missing.add(document["_id"])
                self._advance("files", 1)
        self.summary.missing_files = len(missing)
        await self._table(STORAGE, source, lambda value: decode_stored(value)["_id"] not in missing)


def _export_line(value: bytes) -> bytes:
    """A stored document as one line of export JSON: the stored text itself when it holds no
    `{"$...}` object (no int64, bytes or special float)."""
    if b'{"$' not in value:
        return value + b"\n"
    return dumps(convex_to_export_json(decode_stored(value))) + b"\n"


def _file_name(document: Document) -> str:
    content_type = document.get("contentType")
    extension = mimetypes.guess_extension(content_type) if isinstance(content_type, str) else None
    return f"{STORAGE}/{document['_id']}{extension or ''}"


# -- import ------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Layout:
    """A checked snapshot: its tables (name → number) and where each file's contents are."""

    tables: dict[str, int]
    files: dict[str, str]  # _storage id → ZIP entry name


def _open_archive(path: Path) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(path)
    except FileNotFoundError:
        raise SnapshotError(f"{path}: no such file") from None
    except (zipfile.BadZipFile, OSError) as error:
        raise SnapshotError(f"{path} is not a ZIP file ({error})") from None


def _check_layout(archive: zipfile.ZipFile, path: Path, known: set[str]) -> _Layout:
    """The snapshot's tables, refusing what is not a snapshot of this app."""
    names = set(archive.namelist())
    if TABLES_ENTRY not in names:
        raise SnapshotError(
            f"{path} is not a snapshot: it has no {TABLES_ENTRY} (expected the layout of "
            "`owlat export` / `npx convex export`)"
        )
    tables: dict[str, int] = {}
    for number_of_line, line in enumerate(_lines(archive, TABLES_ENTRY), 1):
        row = _json_line(line, TABLES_ENTRY, number_of_line)
        if not (
            isinstance(row, dict)
            and isinstance(row.get("name"), str)
            and isinstance(row.get("id"), int)
        ):
            raise SnapshotError(
                f'{TABLES_ENTRY} line {number_of_line}: expected {{"name": ..., "id": ...}}'
            )
        tables[row["name"]] = row["id"]
    unknown = sorted(name for name in tables if name not in known)
    if unknown:
        raise SnapshotError(
            f"the snapshot holds table{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(map(repr, unknown))}, which this app's schema does not declare"
        )
    listed = {f"{name}/{DOCUMENTS}" for name in tables}
    missing = sorted(entry for entry in listed if entry not in names)
    if missing:
        raise SnapshotError(f"{path} lists a table without its documents: no {missing[0]}")
    strays = sorted(
        name
        for name in names
        if name.endswith("/" + DOCUMENTS) and name not in listed and name != TABLES_ENTRY
    )
    if strays:
        raise SnapshotError(f"{strays[0]} belongs to a table {TABLES_ENTRY} does not list")
    files = {
        PurePosixPath(name).name.split(".")[0]: name
        for name in names
        if name.startswith(f"{STORAGE}/") and name != f"{STORAGE}/{DOCUMENTS}"
    }
    return _Layout(tables, files)


def _lines(archive: zipfile.ZipFile, name: str) -> Iterator[bytes]:
    with archive.open(name) as entry:
        for line in entry:
            if line.strip():
                yield line


def _json_line(line: bytes, entry: str, number: int) -> Any:
    try:
        return loads(line)
    except OwlatError as error:
        raise SnapshotError(f"{entry} line {number}: {error.message}") from None


def _document(line: bytes, entry: str, number: int, table: TableInfo, catalog: Catalog) -> Document:
    """A snapshot line as a checked document of `table`."""
    try:
        document = export_json_to_convex(_json_line(line, entry, number))
        if not isinstance(document, dict):
            raise SnapshotError("expected a document (a JSON object)")
        document_id = document.get("_id")
        if not isinstance(document_id, str) or table_number_of(document_id) != table.number:
            raise SnapshotError(f"_id {document_id!r} is not an id of table {table.name!r}")
        if not isinstance(document.get("_creationTime"), float):
            raise SnapshotError("_creationTime must be a number")
        fields = {key: item for key, item in document.items() if not key.startswith("_")}
        table.definition.validate(table.name, fields, catalog.table_name_of_id)
    except OwlatError as error:
        raise SnapshotError(f"{entry} line {number}: {error.message}") from None
    return document


async def import_snapshot(
    package: AppPackage,
    engine: Engine,
    blobs: BlobStore | None,
    path: Path,
    *,
    replace: bool = False,
    progress: Progress = _no_progress,
    batch_size: int = PAGE_SIZE,
) -> SnapshotSummary:
    """Load the snapshot at `path` into the deployment of `package` on `engine` (opened
    here; the caller closes it), keeping ids, `_creationTime` and storage ids. Refusals
    (`SnapshotError`) leave the database as it was."""
    with _open_archive(path) as archive:
        known = set(package.schema.tables) | set(SNAPSHOT_SYSTEM_TABLES)
        layout = _check_layout(archive, path, known)
        if STORAGE in layout.tables and blobs is None:
            raise SnapshotError("the file storage is needed to import _storage")
        await engine.open()
        retry = RetryPolicy()
        await retry.run(lambda: _register_tables(engine, layout.tables))
        catalog = await sync_catalog(engine, package.schema, SYSTEM_TABLES, retry)
        old_keys = await _check_target(engine, catalog, layout.tables, replace)
        summary = SnapshotSummary()
        new_keys: set[str] = set()
        if STORAGE in layout.tables:
            assert blobs is not None
            try:
                await _import_files(archive, layout, catalog, blobs, summary, new_keys, progress)
            except BaseException:
                await _delete_blobs(blobs, new_keys - old_keys)
                raise
        try:
            await _load_documents(archive, layout, catalog, engine, summary, progress, batch_size)
        except BaseException:
            if blobs is not None:
                await _delete_blobs(blobs, new_keys - old_keys)
            raise
        if blobs is not None:
            await _delete_blobs(blobs, old_keys - new_keys)
    return summary


async def _register_tables(engine: Engine, tables: dict[str, int]) -> None:
    """Give the snapshot's tables their numbers here (before the schema numbers them)."""
    fixed = {table.name: table.number for table in SYSTEM_TABLES}
    async with engine.write(exclusive=True) as writer:
        stored = await writer.list_tables()
        owners = {number: name for name, number in stored.items()}
        for name, number in tables.items():
            here = stored.get(name, fixed.get(name))
            if here is not None and here != number:
                raise SnapshotError(
                    f"table {name!r} is table number {here} here and {number} in the snapshot, "
                    "so its ids cannot be kept: import into an empty database"
                )
            if here is None and number in owners:
                raise SnapshotError(
                    f"table {name!r} has number {number} in the snapshot, which is table "
                    f"{owners[number]!r} here: import into an empty database"
                )
            if name not in stored and name not in fixed:
                if number < FIRST_USER_TABLE_NUMBER:
                    raise SnapshotError(f"table {name!r} has a system table's number {number}")
                await writer.insert_table(name, number)
                owners[number] = name
        next_number = await writer.get_global(NEXT_TABLE_NUMBER_GLOBAL) or FIRST_USER_TABLE_NUMBER
        highest = max(
            [number + 1 for number in owners if number >= FIRST_USER_TABLE_NUMBER],
            default=next_number,
        )
        if highest > next_number:
            await writer.set_global(NEXT_TABLE_NUMBER_GLOBAL, highest)


async def _check_target(
    engine: Engine, catalog: Catalog, tables: dict[str, int], replace: bool
) -> set[str]:
    """Refuse tables that hold documents unless `replace`; the blob keys of the files that
    the import replaces."""
    keys: set[str] = set()
    async with engine.read() as reader:
        holding = [
            name
            for name in tables
            if name != CRON_JOBS and await reader.documents_after(catalog.table(name).number, "", 1)
        ]
        if holding and not replace:
            raise SnapshotError(
                f"the deployment already holds documents in {', '.join(holding)}: pass "
                "--replace to replace them (or import into an empty deployment)"
            )
        if STORAGE in holding:
            after = ""
            while rows := await reader.documents_after(
                catalog.table(STORAGE).number, after, PAGE_SIZE
            ):
                keys.update(str(decode_stored(value)["key"]) for _, value in rows)
                after = rows[-1][0]
    return keys


def _by_creation_time(catalog: Catalog, table: str) -> int:
    return catalog.table(table).indexes[BY_CREATION_TIME].index_id


async def _import_files(
    archive: zipfile.ZipFile,
    layout: _Layout,
    catalog: Catalog,
    blobs: BlobStore,
    summary: SnapshotSummary,
    keys: set[str],
    progress: Progress,
) -> None:
    """Store each file's contents under its key, checked against its SHA-256."""
    entry = f"{STORAGE}/{DOCUMENTS}"
    table = catalog.table(STORAGE)
    total = len(layout.files)
    progress("files", 0, total)
    for number, line in enumerate(_lines(archive, entry), 1):
        document = _document(line, entry, number, table, catalog)
        name = layout.files.get(str(document["_id"]))
        if name is None:
            raise SnapshotError(f"{entry} line {number}: no file {STORAGE}/{document['_id']}")
        key = str(document["key"])
        keys.add(key)
        try:
            sha256 = base64.b64decode(str(document["sha256"]), validate=True)
            with archive.open(name) as contents:
                info = await blobs.put(key, _read_chunks(contents), sha256=sha256)
        except (OwlatError, ValueError) as error:
            raise SnapshotError(f"{name}: {getattr(error, 'message', error)}") from None
        summary.files += 1
        summary.file_bytes += info.size
        progress("files", summary.files, total)


async def _read_chunks(contents: IO[bytes]) -> AsyncIterator[bytes]:
    while chunk := contents.read(256 * 1024):
        yield chunk


async def _load_documents(
    archive: zipfile.ZipFile,
    layout: _Layout,
    catalog: Catalog,
    engine: Engine,
    summary: SnapshotSummary,
    progress: Progress,
    batch_size: int,
) -> None:
    """One exclusive transaction: the replaced documents deleted, the snapshot's inserted
    (progress: documents so far, of an unknown total)."""
    async with engine.write(exclusive=True) as writer:
        for name in layout.tables:
            table = catalog.table(name)
            index_id = _by_creation_time(catalog, name)
            while rows := await writer.scan(index_id, b"", KEY_MAX, False, batch_size, None):
                for _, value in rows:
                    document = decode_stored(value)
                    entries = zip(table.index_ids, table.index_keys(document), strict=True)
                    await writer.delete_document(document["_id"], list(entries))
        done = 0
        for name in layout.tables:
            table = catalog.table(name)
            entry = f"{name}/{DOCUMENTS}"
            summary.documents[name] = 0
            batch: list[tuple[str, int, bytes]] = []
            index_entries: list[tuple[int, bytes, str]] = []
            for number, line in enumerate(_lines(archive, entry), 1):
                document = _document(line, entry, number, table, catalog)
                document_id = str(document["_id"])
                batch.append((document_id, table.number, encode_stored(document)))
                index_entries.extend(
                    (index_id, key, document_id)
                    for index_id, key in zip(
                        table.index_ids, table.index_keys(document), strict=True
                    )
                )
                if len(batch) >= batch_size:
                    await writer.insert_documents(batch, index_entries)
                    done += len(batch)
                    summary.documents[name] += len(batch)
                    progress(name, done, 0)
                    batch, index_entries = [], []
            if batch:
                await writer.insert_documents(batch, index_entries)
                done += len(batch)
                summary.documents[name] += len(batch)
                progress(name, done, 0)
        summary.ts = await writer.allocate_ts()
        await writer.record_commit(summary.ts, WriteSet())


async def _delete_blobs(blobs: BlobStore, keys: set[str]) -> None:
    for key in keys:
        await blobs.delete(key)
