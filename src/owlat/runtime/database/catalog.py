"""The catalog: table numbers and indexes, kept in agreement with the app's schema while
other nodes on the same database keep serving.

Each table has a *table number* (part of every document id, so it never changes) and a
set of stored indexes, each with an engine-level index id. The stored catalog, not a node's
code, decides which index entries a write maintains: a node maintains every stored index of
the tables it knows, including indexes its own schema does not declare.

**Catalog version.** Every catalog change (a table or index added or removed, a backfill
finished) bumps a version stored in the database, inside the changing transaction. Every
write transaction compares the version of the catalog it loaded with the stored one where
no catalog change can commit until it ends (PostgreSQL: under the commit lock; SQLite:
inside `BEGIN IMMEDIATE`), in the same step that draws its commit timestamp. A writer on a
stale catalog gets `CatalogChangedError`: the Application reloads the catalog and re-runs
the transaction, which then maintains the new indexes.

**Start-up** (`sync_catalog`, several transactions):
1. register: number new tables, drop the indexes the schema no longer declares (and those
   whose fields changed), register new indexes as *backfilling*; bump the version. From
   then on every writer, on every node, maintains the new indexes.
2. backfill each backfilling index in batches (one short exclusive transaction per batch,
   `BACKFILL_BATCH` documents in id order, entries added unless already present: a writer
   may have added them since step 1); a node that died mid-backfill leaves the index
   backfilling and the next start resumes it; nodes starting together backfill together.
3. mark the index ready (bump the version). A query on a backfilling index fails with a
   clear error instead of answering from an incomplete index.
4. check stored documents against a table's validator when it changed (a fingerprint per
   table, kept with the catalog): documents that no longer match stop the start-up with an
   error naming them, instead of being served as if they matched.

**Removal.** A table that leaves the schema keeps its number and its documents (they come
back, re-indexed, if the table does); its indexes are dropped like any index the schema no
longer declares. A node still running code that declares a dropped index keeps writing
correctly (it maintains what is stored) but its queries on that index fail with an error
that says so. The catalog follows the schema of the node that started last.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
from collections.abc import Awaitable, Callable, Collection, Sequence
from typing import Protocol, TypeVar

from owlat.runtime.database.engine import Engine, EngineReader, EngineWriter, StoredIndex
from owlat.runtime.database.keys import encode_key, encode_value
from owlat.runtime.errors import DocumentValidationError, SchemaError
from owlat.runtime.schema import (
    BY_ID,
    FIRST_USER_TABLE_NUMBER,
    SchemaDefinition,
    SystemTable,
    TableDefinition,
)
from owlat.runtime.types import UNDEFINED, Document
from owlat.runtime.values import decode_stored
from owlat.runtime.values.ids import table_number_of, table_number_of_str

NEXT_TABLE_NUMBER_GLOBAL = "next_table_number"
VALIDATOR_GLOBAL_PREFIX = "validator:"  # + table name: fingerprint of the checked validator
BACKFILL_BATCH = 500
MOVED_BY_CACHED = 256  # sets of patched field names per table whose moved indexes are kept
MISMATCHES_SHOWN = 3
_T = TypeVar("_T")


class Retry(Protocol):
    """How catalog changes are re-run when the engine refuses them with a write conflict
    (`transaction.RetryPolicy`)."""

    async def run(self, attempt: Callable[[], Awaitable[_T]]) -> _T:
        """`attempt()`, re-run on a write conflict a bounded number of times."""


@dataclasses.dataclass(frozen=True, slots=True)
class IndexInfo:
    """A stored index: its engine id and the fields its keys are made of."""

    index_id: int
    table: str
    name: str
    fields: tuple[str, ...]
    ready: bool = True  # False while being backfilled: maintained, not yet queryable

    def key(self, document: Document) -> bytes:
        """The index key of a document: its field values, `_creationTime`, `_id`."""
        values = [field_value(document, field) for field in self.fields]
        values.append(document["_creationTime"])
        values.append(document["_id"])
        return encode_key(values)


def compile_index_keys(indexes: Sequence[IndexInfo]) -> Callable[[Document], tuple[bytes, ...]]:
    """`document -> (indexes[0].key(document), indexes[1].key(document), ...)`, fast: each
    indexed field is read and encoded once however many indexes list it, and the
    `_creationTime`, `_id` suffix once for all of them."""
    paths = list(dict.fromkeys(field for index in indexes for field in index.fields))
    top_level = tuple("." not in path for path in paths)
    # each index's fields as positions in `paths`; an index of one field (or none: the
    # position of an empty encoding appended after the fields) as that position alone, so
    # that its key is one concatenation, without joining a list
    empty = len(paths)
    layouts: list[int | tuple[int, ...]] = []
    for index in indexes:
        positions = tuple(paths.index(field) for field in index.fields)
        layouts.append(positions if len(positions) > 1 else (positions or (empty,))[0])

    def index_keys(document: Document) -> tuple[bytes, ...]:
        get = document.get
        encoded = [
            encode_value(get(path, UNDEFINED) if plain else field_value(document, path))
            for path, plain in zip(paths, top_level, strict=True)
        ]
        encoded.append(b"")
        suffix = encode_value(document["_creationTime"]) + encode_value(document["_id"])
        return tuple(
            [
                encoded[layout] + suffix
                if isinstance(layout, int)
                else b"".join(map(encoded.__getitem__, layout)) + suffix
                for layout in layouts
            ]
        )

    return index_keys


def field_value(document: Document, path: str) -> object:
    """The value at a dotted field path, or UNDEFINED when absent."""
    value: object = document
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return UNDEFINED
        value = value[part]
    return value


def id_key(document_id: str) -> bytes:
    """The `by_id` key of a document: its id's bytes."""
    return document_id.encode()


@dataclasses.dataclass(slots=True)
class TableInfo:
    """A table the app can use: its number, definition and stored indexes (every one of
    them is maintained by writes; queries may use those the definition declares)."""

    name: str
    number: int
    definition: TableDefinition
    indexes: dict[str, IndexInfo]
    # set from `indexes`, in their order: ids, names, None for each (no key), and the
    # function that computes a document's key in each of them
    index_ids: tuple[int, ...] = dataclasses.field(init=False, repr=False, compare=False)
    index_names: tuple[str, ...] = dataclasses.field(init=False, repr=False, compare=False)
    index_absent: tuple[None, ...] = dataclasses.field(init=False, repr=False, compare=False)
    index_keys: Callable[[Document], tuple[bytes, ...]] = dataclasses.field(
        init=False, repr=False, compare=False
    )
    # the indexes in `indexes` order, the top-level field names each reads, and which of
    # them (positions) a patch of a given set of top-level fields can move (filled as
    # patches come)
    index_infos: tuple[IndexInfo, ...] = dataclasses.field(init=False, repr=False, compare=False)
    index_tops: tuple[frozenset[str], ...] = dataclasses.field(
        init=False, repr=False, compare=False
    )
    _moved_by: dict[frozenset[str], tuple[int, ...]] = dataclasses.field(
        init=False, repr=False, compare=False
    )
    # a system table (`_storage`, ...): its name starts with "_" (asked on every `db.get`)
    is_system: bool = dataclasses.field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.index_infos = infos = tuple(self.indexes.values())
        self.index_ids = tuple(index.index_id for index in infos)
        self.index_names = tuple(index.name for index in infos)
        self.index_absent = (None,) * len(infos)
        self.index_keys = compile_index_keys(infos)
        self.index_tops = tuple(
            frozenset(field.split(".", 1)[0] for field in index.fields) for index in infos
        )
        self._moved_by = {}
        self.is_system = self.name.startswith("_")

    def patched_index_keys(
        self, document: Document, keys: tuple[bytes, ...], patched: Collection[str]
    ) -> tuple[bytes, ...]:
        """`index_keys(document)` for a patch of the revision whose keys are `keys`: the
        same `_id` and `_creationTime`, and no top-level field changed but those named in
        `patched`. An index reads only its fields and those two, so an index over none of
        the patched fields keeps its key and only the others are computed again."""
        names = frozenset(patched)
        moved = self._moved_by.get(names)
        if moved is None:
            moved = tuple(
                position for position, tops in enumerate(self.index_tops) if tops & names
            )
            if len(self._moved_by) < MOVED_BY_CACHED:  # a table without a validator
                self._moved_by[names] = moved  # takes any names: keep the cache bounded
        if not moved:
            return keys
        if len(moved) == len(keys):
            return self.index_keys(document)
        indexes = self.index_infos
        new = list(keys)
        for position in moved:
            new[position] = indexes[position].key(document)
        return tuple(new)


class Catalog:
    """Tables by name and by number, as stored at `version`."""

    def __init__(self, tables: Sequence[TableInfo], version: int = 0) -> None:
        self.by_name: dict[str, TableInfo] = {table.name: table for table in tables}
        self.by_number: dict[int, TableInfo] = {table.number: table for table in tables}
        self.version = version

    def table(self, name: str) -> TableInfo:
        table = self.by_name.get(name)
        if table is None:
            raise SchemaError(f"Table {name!r} is not defined in the schema")
        return table

    def table_of_id(self, document_id: str) -> TableInfo | None:
        """The table an id belongs to, or None for malformed ids and unknown tables."""
        number = table_number_of(document_id)
        return None if number is None else self.by_number.get(number)

    def table_name_of_id(self, document_id: str) -> str | None:
        """The table name of id `document_id` (a `str`: `v.id` checked it), or None."""
        number = table_number_of_str(document_id)  # `table_of_id` written out: every v.id check
        table = None if number is None else self.by_number.get(number)
        return None if table is None else table.name

    def index(self, table: str, name: str) -> IndexInfo:
        """An index a query may read: declared by this node's schema, stored with the same
        fields, and fully backfilled."""
        info = self.table(table)
        declared = info.definition.all_indexes()
        if name not in declared:
            known = ", ".join([BY_ID, *declared])
            raise SchemaError(f"Index {table}.{name} not found (indexes of {table}: {known})")
        index = info.indexes.get(name)
        if index is None or index.fields != declared[name]:
            raise SchemaError(
                f"Index {table}.{name} is not stored as this node's schema declares it: a node "
                "with another schema changed the catalog since this one started; restart this "
                "node with the current code"
            )
        if not index.ready:
            raise SchemaError(
                f"Index {table}.{name} is still being backfilled; it can be queried once the "
                "node that added it has finished starting"
            )
        return index


def _wanted_tables(
    schema: SchemaDefinition, system_tables: Sequence[SystemTable]
) -> dict[str, tuple[int | None, TableDefinition]]:
    """System tables (with their fixed numbers) and the schema's tables."""
    wanted: dict[str, tuple[int | None, TableDefinition]] = {
        table.name: (table.number, table.definition) for table in system_tables
    }
    wanted.update({name: (None, table) for name, table in schema.tables.items()})
    return wanted


async def sync_catalog(
    engine: Engine,
    schema: SchemaDefinition,
    system_tables: Sequence[SystemTable],
    retry: Retry,
) -> Catalog:
    """Bring the stored catalog in line with `schema` and `system_tables`, backfilling new
    indexes while other nodes keep writing, and check stored documents against changed
    validators; return the catalog as stored."""
    wanted = _wanted_tables(schema, system_tables)

    async def register() -> list[tuple[int, StoredIndex]]:
        async with engine.write(exclusive=True) as writer:
            return await _register(writer, wanted)

    for table_number, index in await retry.run(register):
        await _backfill(engine, table_number, index, retry)
    catalog = await load_catalog(engine, schema, system_tables)
    await _check_documents(engine, catalog, retry)
    return catalog


async def load_catalog(
    engine: Engine, schema: SchemaDefinition, system_tables: Sequence[SystemTable]
) -> Catalog:
    """The stored catalog and its version, for the tables this node knows. Read in an
    exclusive write transaction: no catalog change is half-way while it runs."""
    async with engine.write(exclusive=True) as writer:
        version = await writer.catalog_version()
        numbers = await writer.list_tables()
        stored = await writer.list_indexes()
    tables: list[TableInfo] = []
    for name, (_, definition) in _wanted_tables(schema, system_tables).items():
        if name not in numbers:
            continue
        indexes = {
            index.name: IndexInfo(index.index_id, name, index.name, index.fields, index.ready)
            for index in sorted(stored, key=lambda index: index.index_id)
            if index.table == name
        }
        tables.append(TableInfo(name, numbers[name], definition, indexes))
    return Catalog(tables, version)


async def _register(
    writer: EngineWriter, wanted: dict[str, tuple[int | None, TableDefinition]]
) -> list[tuple[int, StoredIndex]]:
    """Step 1: tables numbered, stale indexes dropped, new ones registered as backfilling.
    Returns every backfilling index of a wanted table (new, or left by a node that died)."""
    changed = False
    numbers = await writer.list_tables()
    next_number = await writer.get_global(NEXT_TABLE_NUMBER_GLOBAL) or FIRST_USER_TABLE_NUMBER
    for name, (fixed_number, _) in wanted.items():
        if name in numbers:
            if fixed_number is not None and numbers[name] != fixed_number:
                raise SchemaError(
                    f"System table {name!r} is stored as table {numbers[name]}, "
                    f"expected {fixed_number}"
                )
            continue
        if fixed_number is None:
            fixed_number, next_number = next_number, next_number + 1
        await writer.insert_table(name, fixed_number)
        numbers[name] = fixed_number
        changed = True
    if next_number != await writer.get_global(NEXT_TABLE_NUMBER_GLOBAL):
        await writer.set_global(NEXT_TABLE_NUMBER_GLOBAL, next_number)

    stored = {(index.table, index.name): index for index in await writer.list_indexes()}
    backfilling: list[tuple[int, StoredIndex]] = []
    for name, (_, definition) in wanted.items():
        for index_name, fields in definition.all_indexes().items():
            existing = stored.pop((name, index_name), None)
            if existing is not None and existing.fields != fields:
                await writer.delete_index(existing.index_id)
                existing = None
            if existing is None:
                index_id = await writer.insert_index(name, index_name, fields)
                # An empty table's index is complete as soon as this transaction commits.
                empty = not await writer.documents_after(numbers[name], "", 1)
                if not empty:
                    await writer.set_index_ready(index_id, False)
                existing = StoredIndex(index_id, name, index_name, fields, ready=empty)
                changed = True
            if not existing.ready:
                backfilling.append((numbers[name], existing))
    for leftover in stored.values():
        await writer.delete_index(leftover.index_id)
        changed = True
    if changed:
        await writer.bump_catalog_version()
    return backfilling


async def _backfill(engine: Engine, table_number: int, index: StoredIndex, retry: Retry) -> None:
    """Steps 2 and 3: add the entries of the documents that existed when the index was
    registered (later writes maintain it themselves), then mark it ready."""
    info = IndexInfo(index.index_id, index.table, index.name, index.fields)
    after = ""
    while True:

        async def batch(after: str = after) -> str | None:
            """One batch; the id to continue after, or None when done or dropped."""
            async with engine.write(exclusive=True) as writer:
                if not await _still_backfilling(writer, info.index_id):
                    return None  # finished by a node starting with this one, or dropped
                rows = await writer.documents_after(table_number, after, BACKFILL_BATCH)
                for document_id, value in rows:
                    key = info.key(decode_stored(value))
                    await writer.backfill_index_entry(info.index_id, key, document_id)
                if len(rows) < BACKFILL_BATCH:
                    await writer.set_index_ready(info.index_id, True)
                    await writer.bump_catalog_version()
                    return None
                return rows[-1][0]

        next_after = await retry.run(batch)
        if next_after is None:
            return
        after = next_after
        await asyncio.sleep(0)  # let this process's other work run between batches


async def _still_backfilling(writer: EngineWriter, index_id: int) -> bool:
    return any(
        index.index_id == index_id and not index.ready for index in await writer.list_indexes()
    )


def validator_fingerprint(definition: TableDefinition) -> int:
    """A signed 64-bit digest of a table's validator (None: any document)."""
    described = None if definition.validator is None else definition.validator.to_json()
    digest = hashlib.sha256(json.dumps(described, sort_keys=True).encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


async def _check_documents(engine: Engine, catalog: Catalog, retry: Retry) -> None:
    """Step 4: for each app table whose validator changed since the last check, validate
    every stored document; raise SchemaError naming the documents that do not match."""
    changed: dict[str, int] = {}
    async with engine.read() as reader:
        for table in catalog.by_name.values():
            fingerprint = validator_fingerprint(table.definition)
            name = VALIDATOR_GLOBAL_PREFIX + table.name
            if not table.is_system and await reader.get_global(name) != fingerprint:
                await _validate_stored(reader, catalog, table)
                changed[name] = fingerprint
    if not changed:
        return

    async def remember() -> None:
        async with engine.write() as writer:
            for name, fingerprint in changed.items():
                await writer.set_global(name, fingerprint)

    await retry.run(remember)


async def _validate_stored(reader: EngineReader, catalog: Catalog, table: TableInfo) -> None:
    mismatches: list[str] = []
    count = 0
    after = ""
    while True:
        rows = await reader.documents_after(table.number, after, BACKFILL_BATCH)
        for document_id, value in rows:
            document = decode_stored(value)
            fields = {key: item for key, item in document.items() if not key.startswith("_")}
            try:
                table.definition.validate(table.name, fields, catalog.table_name_of_id)
            except DocumentValidationError as error:
                count += 1
                if len(mismatches) < MISMATCHES_SHOWN:
                    mismatches.append(f"{document_id}: {error.message}")
        if len(rows) < BACKFILL_BATCH:
            break
        after = rows[-1][0]
    if count:
        raise SchemaError(
            f"The schema of table {table.name!r} does not match {count} stored document(s), "
            f"e.g. " + "; ".join(mismatches) + ". Change the schema so that it accepts them "
            "(e.g. v.optional for a new field) or fix the documents, then start again"
        )
