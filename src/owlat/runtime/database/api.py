"""`ctx.db`: the database API that app functions use.

`DatabaseReader` (queries) has `get`, `query`, `lookup` (many index prefixes at once),
`normalize_id` and `system` (read-only access to system tables such as `_storage`);
`DatabaseWriter` (mutations) adds `insert`, `insert_many`, `patch`, `replace`, `delete`
and `new_id`. Every method that takes an id also accepts the table name first, as newer
Convex clients do: `ctx.db.get("contacts", contact_id)`.

Patch spelling in Python: `ctx.db.patch(id, {"a": 1, "b": None, "c": UNDEFINED})` sets `a`,
sets `b` to null, and removes `c` (`UNDEFINED` is exported by `owlat.runtime`).

A mutation's writer fires the app's triggers (triggers.py) after each write to a table
that has some.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from owlat.runtime.database.catalog import TableInfo
from owlat.runtime.database.query import IndexRange, Query
from owlat.runtime.database.transaction import Transaction
from owlat.runtime.errors import (
    DocumentNotFoundError,
    InvalidIdError,
    QueryBuildError,
    ReadOnlyError,
    SchemaError,
)
from owlat.runtime.schema import SYSTEM_FIELDS
from owlat.runtime.triggers import Change, TriggerRunner
from owlat.runtime.types import UNDEFINED, Document
from owlat.runtime.values.ids import new_id, table_number_of, table_number_of_str

_WRITE_METHODS = frozenset({"insert", "insert_many", "patch", "replace", "delete", "new_id"})


class DatabaseReader:
    """Read access to the app's tables (or, as `.system`, to system tables)."""

    __slots__ = ("_system", "_txn")  # one per function call

    def __init__(self, transaction: Transaction, *, system: bool = False) -> None:
        self._txn = transaction
        self._system = system

    def __getattr__(self, name: str) -> Any:
        if name in _WRITE_METHODS:
            raise ReadOnlyError(
                f"ctx.db.{name}() is not available here: queries are read-only "
                "(write from a mutation)"
            )
        raise AttributeError(name)

    @property
    def system(self) -> DatabaseReader:
        """Read-only access to system tables (`_storage`, `_scheduled_functions`, ...)."""
        return DatabaseReader(self._txn, system=True)

    def _table(self, name: str) -> TableInfo:
        if not isinstance(name, str):
            raise SchemaError(f"A table name must be a string, got {name!r}")
        if name.startswith("_") != self._system:
            where = "ctx.db" if self._system is False else "ctx.db.system"
            raise SchemaError(f"Table {name!r} cannot be accessed through {where}")
        return self._txn.catalog.table(name)

    def _split(
        self, op: str, args: tuple[Any, ...], arity: int
    ) -> tuple[str | None, Any, tuple[Any, ...]]:
        """(table or None, id, remaining args) from `(id, ...)` or `(table, id, ...)`."""
        if len(args) == arity + 1:
            return args[0], args[1], args[2:]
        if len(args) == arity:
            return None, args[0], args[1:]
        raise TypeError(
            f"{op}() takes an id{', and a value' if arity > 1 else ''}, "
            f"optionally preceded by the table name"
        )

    def _resolve(self, op: str, table_name: str | None, document_id: Any) -> TableInfo | None:
        """The table of `document_id`, checking it against `table_name` if given."""
        if not isinstance(document_id, str):
            raise InvalidIdError(
                f"Invalid argument `id` for `{op}`: expected an id string, got {document_id!r}"
            )
        number = table_number_of_str(document_id)
        if number is None:
            raise InvalidIdError(
                f'Invalid argument `id` for `{op}`: "{document_id}" is not a valid id'
            )
        expected = self._table(table_name) if table_name is not None else None
        table = self._txn.catalog.by_number.get(number)
        if expected is not None and (table is None or table.number != expected.number):
            raise InvalidIdError(
                f'Invalid argument `id` for `{op}`: "{document_id}" is not an id of table '
                f'"{expected.name}"'
            )
        if table is not None and table.is_system != self._system:
            where = "ctx.db.system" if table.is_system else "ctx.db"
            raise InvalidIdError(
                f'Invalid argument `id` for `{op}`: "{document_id}" is an id of table '
                f'"{table.name}"; use {where}'
            )
        return table

    async def get(self, *args: Any) -> Document | None:
        """The document with this id, or None: `get(id)` or `get(table, id)`."""
        if len(args) == 1:  # get(id), the common spelling
            document_id = args[0]
            if type(document_id) is str:  # `_resolve` written out for an id of a known table
                number = table_number_of_str(document_id)
                table = None if number is None else self._txn.catalog.by_number.get(number)
                if table is not None and table.is_system == self._system:
                    return await self._txn.get(table, document_id)
            table_name = None
        else:
            table_name, document_id, _ = self._split("db.get", args, 1)
        table = self._resolve("db.get", table_name, document_id)
        if table is None:
            return None
        return await self._txn.get(table, document_id)

    def query(self, table: str) -> Query:
        """A query on `table`, by default in creation order."""
        return Query(self._txn, self._table(table))

    async def lookup(
        self, table: str, index: str, prefixes: Sequence[Sequence[Any]]
    ) -> list[list[Document]]:
        """For each of `prefixes` (values of the index's first fields, in order), the
        documents whose key starts with them, in index order: what
        `query(table).with_index(index, lambda q: q.eq(field, value)...).collect()` returns
        for each, read in one step (one engine call for all of them, e.g. the contacts of a
        batch of emails). Each prefix's range is in the read set as that query records it."""
        info = self._txn.catalog.index(self._table(table).name, index)
        fields = (*info.fields, "_creationTime")
        intervals = []
        for prefix in prefixes:
            if len(prefix) > len(fields):
                raise QueryBuildError(
                    f"lookup(): {len(prefix)} values for index {table}.{index} on {list(fields)}"
                )
            builder = IndexRange(info)
            for field, value in zip(fields, prefix, strict=False):
                builder.eq(field, value)
            intervals.append(builder.interval())
        return await self._txn.scan_ranges(info, intervals)

    def normalize_id(self, table: str, document_id: str) -> str | None:
        """`document_id` if it is a valid id of `table`, else None."""
        info = self._table(table)
        if not isinstance(document_id, str) or table_number_of(document_id) != info.number:
            return None
        return document_id


class DatabaseWriter(DatabaseReader):
    """Read and write access for mutations."""

    __slots__ = ("_triggers",)

    def __init__(self, transaction: Transaction, *, triggers: TriggerRunner | None = None) -> None:
        super().__init__(transaction)
        self._triggers = triggers

    async def _fire(self, table: TableInfo, document_id: str, old: Document | None) -> None:
        if self._triggers is not None and self._triggers.watches(table.name):
            new = self._txn.written(document_id)
            await self._triggers.fire(Change(table.name, document_id, old, new))

    def _fields(self, op: str, value: Any) -> Document:
        if not isinstance(value, dict):
            raise TypeError(f"{op}() takes a dict of fields, got {type(value).__name__}")
        return value

    async def insert(self, table: str, value: Document) -> str:
        """Insert a document (validated against the schema); returns its new id."""
        info = self._table(table)
        document_id = await self._txn.insert(info, self._new_fields("db.insert", info, value))
        await self._fire(info, document_id, None)
        return document_id

    def _new_fields(self, op: str, info: TableInfo, value: Any) -> Document:
        """A new document's fields, validated against the table's schema."""
        fields = self._fields(op, value)
        for name in SYSTEM_FIELDS:
            if name in fields:
                raise SchemaError(f"{op}(): {name} is a system field and cannot be set")
        return info.definition.validate(info.name, fields, self._txn.catalog.table_name_of_id)

    async def insert_many(self, table: str, values: Sequence[Document]) -> list[str]:
        """Insert documents into one table; returns their new ids, in order.

        What `insert` of each in turn does (each written and recorded in the commit's write
        set, the table's triggers run after each insert), except that every document is
        validated before any is written: one that fails writes nothing."""
        info = self._table(table)
        validated = [self._new_fields("db.insert_many", info, value) for value in values]
        document_ids = []
        for fields in validated:
            document_id = await self._txn.insert(info, fields)
            await self._fire(info, document_id, None)
            document_ids.append(document_id)
        return document_ids

    def new_id(self, table: str) -> str:
        """A fresh id of `table` that no document has, made as `insert` makes one (the time,
        then 80 random bits), without writing anything. For answers that must look like a new
        document's without creating one, e.g. a sign-up that must not tell that an email is
        taken."""
        return new_id(self._table(table).number)

    async def _existing(
        self, op: str, args: tuple[Any, ...], arity: int
    ) -> tuple[TableInfo, Document, tuple[Any, ...]]:
        table_name, document_id, rest = self._split(op, args, arity)
        table = self._resolve(op, table_name, document_id)
        # the transaction's own revision (not to be changed): patch and replace copy it
        old = None if table is None else await self._txn.get(table, document_id, current=True)
        if table is None or old is None:
            raise DocumentNotFoundError(f'{op}(): document "{document_id}" does not exist')
        return table, old, rest

    def _store(
        self,
        op: str,
        table: TableInfo,
        old: Document,
        fields: Document,
        patched: Collection[str] | None = None,
    ) -> Document:
        """The new revision of `old` with these user `fields`, validated (only the
        `patched` ones, if given: the others are `old`'s, validated when it was written)."""
        for name in SYSTEM_FIELDS:
            if name in fields:
                if fields[name] != old[name]:
                    raise SchemaError(f"{op}(): {name} cannot be changed")
                del fields[name]
        validated = table.definition.validate(
            table.name, fields, self._txn.catalog.table_name_of_id, patched
        )
        return {"_id": old["_id"], "_creationTime": old["_creationTime"], **validated}

    async def patch(self, *args: Any) -> None:
        """Shallow-merge fields into a document: `patch(id, {...})` or `patch(table, id, {...})`.

        A field set to `UNDEFINED` is removed; `None` stores null.
        """
        table, old, (value,) = await self._existing("db.patch", args, 2)
        changes = self._fields("db.patch", value)
        merged = dict(old)  # a copy: `old` is the transaction's own revision
        for name, item in changes.items():
            if item is UNDEFINED:
                merged.pop(name, None)
            else:
                merged[name] = item
        new = self._store("db.patch", table, old, merged, changes.keys())
        await self._txn.update(table, old, new, changes.keys())
        await self._fire(table, old["_id"], old)

    async def replace(self, *args: Any) -> None:
        """Replace a document's fields (keeps `_id` and `_creationTime`)."""
        table, old, (value,) = await self._existing("db.replace", args, 2)
        new = self._store("db.replace", table, old, dict(self._fields("db.replace", value)))
        await self._txn.update(table, old, new)
        await self._fire(table, old["_id"], old)

    async def delete(self, *args: Any) -> None:
        """Delete a document: `delete(id)` or `delete(table, id)`."""
        table, old, _ = await self._existing("db.delete", args, 1)
        await self._txn.delete(table, old)
        await self._fire(table, old["_id"], old)
