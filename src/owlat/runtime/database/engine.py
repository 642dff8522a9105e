"""The narrow storage-engine contract that SQLite and PostgreSQL implement.

An engine stores the *current* state: live documents (their encoded JSON, keyed by id) and
index entries (order-preserving key bytes → document id), plus a few named integer globals
(the last commit timestamp, the next table number). Everything else — transactions' read
and write sets, validation, reactivity — is written once above this interface.

Concurrency is the engine's business: `write()` yields a writer inside one serializable
transaction (SQLite: one writer at a time; PostgreSQL: SERIALIZABLE, raising
`WriteConflictError` on a conflict so that the runtime re-runs the mutation); `read()`
yields a reader on one consistent snapshot.

Commit timestamps are the engine's business too, because only the engine can order them
with its commits. A writer that changed something calls `allocate_ts()` once, at the end,
then `record_commit()`: the engine guarantees that timestamps are strictly increasing in
commit order, so that a snapshot that sees the commit at T sees every commit before T, and
`last_ts()` (the newest commit a snapshot sees) names the snapshot.

The engine also keeps the catalog (tables, indexes, which indexes are still being
backfilled) and its version; `allocate_ts(catalog_version=...)` is where a writer learns that
another node changed the catalog since it loaded it (catalog.py).

Besides the engine itself, the contract names what an engine hands back: a `CommitFeed`
(how commits of every process sharing the database reach this one) and the `Dialect` its
SQL reads documents in, with which pushdown.py writes filters as `Predicate`s. Commits,
read sets and write sets are in commits.py.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

from owlat.runtime.database.commits import Commit, WriteSet
from owlat.runtime.errors import WriteConflictError

# An exclusive upper bound above every index key: keys start with a type tag ≤ 0x15.
KEY_MAX = b"\xff"


class CatalogChangedError(WriteConflictError):
    """The stored catalog changed since the writer loaded its own (another node added or
    removed an index): the transaction is rolled back and re-run on the reloaded catalog."""


@dataclasses.dataclass(frozen=True, slots=True)
class StoredIndex:
    """An index as the engine's catalog records it."""

    index_id: int
    table: str
    name: str
    fields: tuple[str, ...]
    ready: bool = True  # False while its backfill runs (writers maintain it already)


# -- filters pushed down into the engine's SQL (pushdown.py) ---------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Predicate:
    """A SQL boolean expression (TRUE/FALSE/NULL per row) and its parameters in order."""

    sql: str
    params: tuple[Any, ...]


class Dialect(Protocol):
    """How one engine's SQL reads a field of a stored document (pushdown.py).

    `branches` and results are `Predicate`s; `*_sql` arguments and results are SQL text
    whose parameters are the caller's (one `placeholder` per parameter)."""

    placeholder: str

    def by_type(self, field: str, branches: dict[str, Predicate]) -> Predicate:
        """CASE over the field's JSON type; `branches` has every type (pushdown.py)."""

    def text(self, field: str) -> str:
        """The field's string value."""

    def number(self, field: str) -> str:
        """The field's number value."""

    def lower(self, text_sql: str) -> str:
        """Lower-cased text exactly as Python's str.lower, or NULL where it may differ."""

    def string_test(self, field: str, test_sql: str) -> str:
        """A test on the text of string (or string array) `field`, NULL where the text may
        be cut short."""

    def contains(self, text_sql: str) -> str:
        """Whether the text contains the parameter."""

    def starts_with(self, text_sql: str) -> str:
        """Whether the text starts with the parameter."""

    def array_includes(self, field: str, value: Any) -> Predicate | None:
        """Whether the array field holds `value` (None: cannot be said in SQL)."""


# -- commit feeds (commit_feed.py, _postgres_feed.py) -----------------------------------------

Deliver = Callable[[Commit], None]


class CommitFeed(Protocol):
    """Delivers the commits of every node sharing the database, in timestamp order.

    The rule: a feed delivers every commit exactly once, in increasing timestamp order, to
    one `deliver(commit)` callback (the Application's publication to its commit listeners:
    the subscription cache, the scheduler). `committed(commit)` is called by the
    Application after each commit of its own and returns once that commit, and every
    earlier one, has been delivered; so when a mutation returns, its commit has been
    published in this process."""

    async def start(self, after_ts: int, deliver: Deliver) -> None:
        """Deliver every commit after `after_ts` from now on."""

    async def committed(self, commit: Commit) -> None:
        """A commit of this process: return once it has been delivered."""

    async def close(self) -> None:
        """Stop delivering."""


# -- the engine --------------------------------------------------------------------------------


class EngineReader(Protocol):
    """Reads at one snapshot."""

    @property
    def dialect(self) -> Dialect:
        """How filters are written in this engine's SQL (pushdown.py)."""

    async def get_global(self, name: str) -> int | None:
        """A persisted integer, or None if never set."""

    async def last_ts(self) -> int:
        """The timestamp of the newest commit this snapshot sees (0: none yet)."""

    async def get_document(self, document_id: str) -> bytes | None:
        """The stored value of a live document, or None."""

    async def scan(
        self,
        index_id: int,
        low: bytes,
        high: bytes,
        descending: bool,
        limit: int,
        predicate: Predicate | None,
    ) -> list[tuple[bytes, bytes]]:
        """Up to `limit` (key, document value) pairs of index range [low, high), in order,
        skipping rows where the pushed-down `predicate` (if any) is FALSE."""

    async def scan_ranges(
        self, index_id: int, ranges: Sequence[tuple[bytes, bytes]]
    ) -> list[list[tuple[bytes, bytes]]]:
        """Every (key, document value) pair of each index range [low, high), in key order:
        one list per range, in the order of `ranges` (many small ranges in one call)."""

    async def count_where(
        self, index_id: int, low: bytes, high: bytes, predicate: Predicate | None
    ) -> tuple[int, list[tuple[bytes, bytes]]]:
        """Rows of [low, high) where the predicate is TRUE (all rows if None), and the rows
        where it is NULL (for Python to decide)."""

    async def list_tables(self) -> dict[str, int]:
        """The table catalog: name → table number."""

    async def list_indexes(self) -> list[StoredIndex]:
        """The index catalog."""

    async def documents_after(
        self, table_number: int, after_id: str, limit: int
    ) -> list[tuple[str, bytes]]:
        """Up to `limit` (id, value) of a table's live documents with ids after `after_id`,
        in id order (index backfill, validation of stored documents)."""


class EngineWriter(EngineReader, Protocol):
    """Reads and writes inside one transaction; reads see the transaction's own writes.

    A document and its index entries are written by one call: index entries are
    `(index_id, key, document_id)` to add and `(index_id, key)` to remove."""

    async def set_global(self, name: str, value: int) -> None:
        """Persist an integer."""

    async def allocate_ts(self, at_least: int = 0, *, catalog_version: int | None = None) -> int:
        """This transaction's commit timestamp: greater than every committed one and at
        least `at_least`. Call it once, after the last read; until this transaction ends no
        other transaction can commit (so timestamps follow commit order).
        `catalog_version`: the version of the catalog this transaction maintained indexes
        for; raises `CatalogChangedError` if the stored catalog has another one (checked
        where no catalog change can commit until this transaction ends)."""

    async def record_commit(self, ts: int, write_set: WriteSet) -> None:
        """Record the commit at `ts` (from `allocate_ts`) with what it changed."""

    async def record_new_commit(self, write_set: WriteSet, *, catalog_version: int) -> int:
        """`allocate_ts(catalog_version=...)` then `record_commit`, for a transaction that
        has not drawn its timestamp, as its last call; returns the timestamp. An engine may
        commit the transaction here (PostgreSQL: with its pending writes, in one round
        trip), raising what COMMIT would; the end of the block then only releases it."""

    async def insert_documents(
        self,
        documents: Sequence[tuple[str, int, bytes]],
        entries: Sequence[tuple[int, bytes, str]],
    ) -> None:
        """Store new documents `(id, table_number, value)` and their index entries in one
        call (SQLite: executemany; PostgreSQL: multi-row statements)."""

    async def update_document(
        self,
        document_id: str,
        value: bytes,
        removed: Sequence[tuple[int, bytes]],
        added: Sequence[tuple[int, bytes, str]],
    ) -> None:
        """Replace a live document's stored value, and the index entries that changed."""

    async def delete_document(self, document_id: str, entries: Sequence[tuple[int, bytes]]) -> None:
        """Remove a document and its index entries."""

    def savepoint(self) -> AbstractAsyncContextManager[None]:
        """A nested sub-transaction: its writes are undone if the block raises."""

    # -- the catalog (catalog.py) --

    async def catalog_version(self) -> int:
        """The stored catalog's version (a write transaction sees the latest)."""

    async def bump_catalog_version(self) -> None:
        """Give the catalog a new version: part of every catalog change, so that writers on
        an older catalog reload it before they commit."""

    async def insert_table(self, name: str, number: int) -> None:
        """Register a table."""

    async def insert_index(self, table: str, name: str, fields: tuple[str, ...]) -> int:
        """Register an index and return its id."""

    async def delete_index(self, index_id: int) -> None:
        """Drop an index and all its entries."""

    async def set_index_ready(self, index_id: int, ready: bool) -> None:
        """Mark an index as being backfilled (False) or complete (True)."""

    async def backfill_index_entry(self, index_id: int, key: bytes, document_id: str) -> None:
        """Add an index entry unless it is already there."""


class Engine(Protocol):
    """A storage engine: opened once, then read and written through transactions."""

    async def open(self) -> None:
        """Connect and create the storage tables if needed."""

    async def close(self) -> None:
        """Release connections."""

    def read(self) -> AbstractAsyncContextManager[EngineReader]:
        """A read-only transaction on one snapshot."""

    def write(self, *, exclusive: bool = False) -> AbstractAsyncContextManager[EngineWriter]:
        """A serializable read-write transaction, committed when the block exits normally.
        `exclusive`: no other transaction may write until this one ends, and it sees every
        earlier commit, so no concurrent writer can make it conflict (the runtime asks for
        it when retrying a conflicted transaction; SQLite's writes are always exclusive)."""

    def commit_feed(self) -> CommitFeed:
        """A new feed of the commits of every process that shares this database."""
