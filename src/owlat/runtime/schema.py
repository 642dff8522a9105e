"""Tables, fields and indexes; validation of documents against their table.

`define_schema({"contacts": define_table({...}).index("by_org", ["organizationId"])})`.
Every table also has the system indexes `by_id` and `by_creation_time`, and every index
implicitly ends with `_creationTime` then `_id`. Tables whose names start with `_` are
system tables, defined by the runtime itself (`SystemTable`, listed in system_tables.py).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from owlat.runtime.errors import DocumentValidationError, SchemaError, ValidationError
from owlat.runtime.types import Document
from owlat.runtime.values import IdResolver, ObjectValidator, Validator, normalize_value, v

SYSTEM_FIELDS = ("_id", "_creationTime")
BY_ID = "by_id"
BY_CREATION_TIME = "by_creation_time"
RESERVED_INDEX_NAMES = (BY_ID, BY_CREATION_TIME)
MAX_INDEXES_PER_TABLE = 32
MAX_FIELDS_PER_INDEX = 16
MAX_DOCUMENT_DEPTH = 16

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
_is_str = str.__instancecheck__
# User tables are numbered from here on, as on modern Convex deployments (32-char ids).
FIRST_USER_TABLE_NUMBER = 10001


def check_identifier(name: str, what: str) -> None:
    """Table, field and index names: a letter or `_` first, then `[A-Za-z0-9_]`, ≤ 64 chars."""
    if not isinstance(name, str) or not _IDENTIFIER.fullmatch(name) or set(name) == {"_"}:
        raise SchemaError(
            f"Invalid {what} name {name!r}: identifiers start with a letter or underscore, "
            "contain only letters, digits and underscores, are at most 64 characters long "
            "and are not all underscores"
        )


class TableDefinition:
    """One table: the validator of its documents (None: any document) and its indexes."""

    def __init__(self, fields: Mapping[str, Validator] | ObjectValidator | None = None) -> None:
        if fields is None:
            self.validator: ObjectValidator | None = None
        elif isinstance(fields, ObjectValidator):
            self.validator = fields
        elif isinstance(fields, Mapping):
            for name in fields:
                check_identifier(name, "field")
                if name.startswith("_"):
                    raise SchemaError(f"Field {name!r}: names starting with '_' are reserved")
            self.validator = v.object(dict(fields))
        else:
            raise SchemaError(
                f"define_table() takes a dict of validators or v.object(...), got {fields!r}"
            )
        self.indexes: dict[str, tuple[str, ...]] = {}
        # field names `validate` accepts without checking them again: the validator's
        # (valid identifiers not starting with '_'; others are checked and refused)
        self._valid_names = frozenset(
            name
            for name in (() if self.validator is None else self.validator.fields)
            if _IDENTIFIER.fullmatch(name) and not name.startswith("_")
        )
        # how deep a valid document nests (None: unbounded, measured per document)
        self._max_depth = None if self.validator is None else self.validator.max_depth()

    def index(self, name: str, fields: Sequence[str]) -> TableDefinition:
        """Add an index over `fields` (in order); returns the table for chaining."""
        check_identifier(name, "index")
        if name in RESERVED_INDEX_NAMES or name.startswith("_"):
            raise SchemaError(f"Index name {name!r} is reserved")
        if name in self.indexes:
            raise SchemaError(f"Index {name!r} is defined twice")
        if isinstance(fields, str) or not fields:
            raise SchemaError(f"Index {name!r} needs a non-empty list of field names")
        if len(fields) > MAX_FIELDS_PER_INDEX:
            raise SchemaError(f"Index {name!r} has more than {MAX_FIELDS_PER_INDEX} fields")
        if len(set(fields)) != len(fields):
            raise SchemaError(f"Index {name!r} lists a field twice: {list(fields)}")
        for field in fields:
            if field in SYSTEM_FIELDS:
                raise SchemaError(
                    f"Index {name!r}: {field!r} cannot be indexed explicitly; every index "
                    "already ends with _creationTime and _id"
                )
            top = field.split(".", 1)[0]
            if self.validator is not None and top not in self.validator.fields:
                raise SchemaError(f"Index {name!r} refers to unknown field {field!r}")
        if len(self.indexes) >= MAX_INDEXES_PER_TABLE:
            raise SchemaError(f"A table has at most {MAX_INDEXES_PER_TABLE} indexes")
        self.indexes[name] = tuple(fields)
        return self

    def all_indexes(self) -> dict[str, tuple[str, ...]]:
        """Every stored index of the table: `by_creation_time` and the declared ones."""
        return {BY_CREATION_TIME: (), **self.indexes}

    def validate(
        self,
        table: str,
        fields: Document,
        ids: IdResolver | None,
        patched: Collection[str] | None = None,
    ) -> Document:
        """Check and normalize a document's user fields (system fields excluded).

        `patched`: the document passed this validation when it was written and only the
        fields named here changed since (a patch; the schema of a running process does
        not change, and the stored documents were checked against it at start-up, see
        catalog.py): the others are not checked again. The result and any error are the
        same as without it."""
        if not (self._valid_names.issuperset(fields) and all(map(_is_str, fields))):
            self._check_names(table, fields)
        try:
            if self.validator is None:
                normalized: Document = normalize_value(fields)
                patched = None  # normalized (and measured) whole
            elif patched is None:
                normalized = self.validator.validate(fields, "", ids)
            else:
                normalized = self.validator.validate_patched(fields, patched, ids)
        except ValidationError as error:
            raise DocumentValidationError(
                f"Failed to insert or update a document in table {table!r} because it does "
                f"not match the schema: {error.message}"
            ) from None
        bound = self._max_depth
        if bound is None or bound > MAX_DOCUMENT_DEPTH:
            if patched is None:
                depth = _depth(normalized)
            else:  # the unchanged fields were within the limit: only a changed one can pass it
                depth = _depth({name: normalized[name] for name in patched if name in normalized})
            if depth > MAX_DOCUMENT_DEPTH:
                raise DocumentValidationError(
                    f"Document in table {table!r} is nested {depth} levels deep; "
                    f"the limit is {MAX_DOCUMENT_DEPTH}"
                )
        return normalized

    @staticmethod
    def _check_names(table: str, fields: Document) -> None:
        for name in fields:
            if not isinstance(name, str) or name.startswith("_"):
                raise DocumentValidationError(
                    f"Failed to insert or update a document in table {table!r}: field "
                    f"{name!r} is not allowed (field names starting with '_' are reserved)"
                )
            if not _IDENTIFIER.fullmatch(name):
                raise DocumentValidationError(
                    f"Failed to insert or update a document in table {table!r}: field name "
                    f"{name!r} is not a valid identifier (letters, digits and underscores, "
                    "at most 64 characters)"
                )


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(item) for item in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(item) for item in value), default=0)
    return 0


def define_table(
    fields: Mapping[str, Validator] | ObjectValidator | None = None,
) -> TableDefinition:
    """A table whose documents match `fields` (a dict of validators, or `v.object`)."""
    return TableDefinition(fields)


class SchemaDefinition:
    """The app's tables. Tables not listed here cannot be read or written."""

    def __init__(self, tables: Mapping[str, TableDefinition]) -> None:
        for name, table in tables.items():
            check_identifier(name, "table")
            if name.startswith("_"):
                raise SchemaError(f"Table {name!r}: names starting with '_' are reserved")
            if not isinstance(table, TableDefinition):
                raise SchemaError(f"Table {name!r} must be defined with define_table(...)")
        self.tables: dict[str, TableDefinition] = dict(tables)


def define_schema(tables: Mapping[str, TableDefinition]) -> SchemaDefinition:
    """The schema of an app: `{table name: define_table(...)}`."""
    return SchemaDefinition(tables)


@dataclasses.dataclass(frozen=True, slots=True)
class SystemTable:
    """A table of the runtime itself (name starting with `_`) under a fixed table number,
    so that its ids never change (system_tables.py lists them all)."""

    name: str
    number: int
    definition: TableDefinition

    def __post_init__(self) -> None:
        if not self.name.startswith("_"):
            raise SchemaError(f"System table {self.name!r} must start with '_'")
        if not 0 < self.number < FIRST_USER_TABLE_NUMBER:
            raise SchemaError(f"System table number {self.number} is out of range")
