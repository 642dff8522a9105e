"""The catalog: table numbers and indexes, kept in agreement with the app's schema.

Each table has a *table number* (part of every document id, so it never changes) and a
set of stored indexes, each with an engine-level index id. `sync_catalog` runs at start-up
inside one write transaction: it numbers new tables, registers and backfills new indexes
and drops indexes the schema no longer declares. Documents of a table that left the schema
stay stored but cannot be reached until it comes back.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from owlat.runtime.database.engine import EngineWriter, StoredIndex
from owlat.runtime.database.keys import encode_key
from owlat.runtime.errors import SchemaError
from owlat.runtime.ids import table_number_of
from owlat.runtime.schema import (
    BY_ID,
    FIRST_USER_TABLE_NUMBER,
    SchemaDefinition,
    TableDefinition,
    system_tables,
)
from owlat.runtime.types import UNDEFINED, Document
from owlat.runtime.values import decode_stored

NEXT_TABLE_NUMBER_GLOBAL = "next_table_number"


@dataclasses.dataclass(frozen=True, slots=True)
class IndexInfo:
    """A stored index: its engine id and the fields its keys are made of."""

    index_id: int
    table: str
    name: str
    fields: tuple[str, ...]

    def key(self, document: Document) -> bytes:
        """The index key of a document: its field values, `_creationTime`, `_id`."""
        values = [field_value(document, field) for field in self.fields]
        values.append(document["_creationTime"])
        values.append(document["_id"])
        return encode_key(values)


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
    """A table the app can use: its number, definition and stored indexes."""

    name: str
    number: int
    definition: TableDefinition
    indexes: dict[str, IndexInfo]

    @property
    def is_system(self) -> bool:
        return self.name.startswith("_")


class Catalog:
    """Tables by name and by number."""

    def __init__(self, tables: Sequence[TableInfo]) -> None:
        self.by_name: dict[str, TableInfo] = {table.name: table for table in tables}
        self.by_number: dict[int, TableInfo] = {table.number: table for table in tables}

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
        table = self.table_of_id(document_id)
        return None if table is None else table.name

    def index(self, table: str, name: str) -> IndexInfo:
        info = self.table(table)
        index = info.indexes.get(name)
        if index is None:
            known = ", ".join([BY_ID, *info.indexes])
            raise SchemaError(f"Index {table}.{name} not found (indexes of {table}: {known})")
        return index


async def sync_catalog(writer: EngineWriter, schema: SchemaDefinition) -> Catalog:
    """Bring the stored catalog in line with `schema` (plus system tables); return it."""
    numbers = await writer.list_tables()
    next_number = await writer.get_global(NEXT_TABLE_NUMBER_GLOBAL) or FIRST_USER_TABLE_NUMBER
    wanted: dict[str, tuple[int | None, TableDefinition]] = {
        name: (number, table) for name, (number, table) in system_tables().items()
    }
    wanted.update({name: (None, table) for name, table in schema.tables.items()})

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
    await writer.set_global(NEXT_TABLE_NUMBER_GLOBAL, next_number)

    stored: dict[tuple[str, str], StoredIndex] = {
        (index.table, index.name): index for index in await writer.list_indexes()
    }
    tables: list[TableInfo] = []
    for name, (_, definition) in wanted.items():
        indexes: dict[str, IndexInfo] = {}
        for index_name, fields in definition.all_indexes().items():
            existing = stored.pop((name, index_name), None)
            if existing is not None and existing.fields != fields:
                await writer.delete_index(existing.index_id)
                existing = None
            if existing is None:
                index_id = await writer.insert_index(name, index_name, fields)
                info = IndexInfo(index_id, name, index_name, fields)
                await _backfill(writer, numbers[name], info)
            else:
                info = IndexInfo(existing.index_id, name, index_name, fields)
            indexes[index_name] = info
        tables.append(TableInfo(name, numbers[name], definition, indexes))
    for leftover in stored.values():
        await writer.delete_index(leftover.index_id)
    return Catalog(tables)


async def _backfill(writer: EngineWriter, table_number: int, index: IndexInfo) -> None:
    for value in await writer.table_documents(table_number):
        document = decode_stored(value)
        await writer.insert_index_entry(index.index_id, index.key(document), document["_id"])
