"""One transaction's access to the engine: decoded documents, index maintenance,
read-set recording, write tracking and per-transaction limits.

Writes go into the engine transaction (so reads see the transaction's own writes and a
rollback undoes them). New documents are held back (`pending.PendingInserts`) and handed
over together, with all their index entries, when a range read could see one of them, at a
savepoint and before the commit (`flush`); an update writes a document's changed index
entries with one engine call. The transaction also remembers each written document's
revision before its first write, which is what the commit's write set is made of, and the
value it last wrote, which answers a point read of that document without asking the engine
for the same bytes. A point read is recorded in the read set (and counted against
`max_index_ranges`) once per document however often it is repeated.

After-commit callbacks (`after_commit`) are side effects outside the database that must
happen only if the transaction commits, such as removing a deleted file's blob. They are
dropped with the transaction when it rolls back, and with a sub-transaction (`nested`) when
that is rolled back; the Application runs them once the commit has succeeded
(`run_after_commit`), in registration order, logging rather than raising their errors: the
commit stands whatever they do.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from owlat.runtime.database.catalog import Catalog, IndexInfo, TableInfo, id_key
from owlat.runtime.database.engine import EngineReader, EngineWriter
from owlat.runtime.database.pending import PendingInserts
from owlat.runtime.database.pushdown import Predicate
from owlat.runtime.errors import LimitExceededError, ReadOnlyError
from owlat.runtime.schema import BY_ID
from owlat.runtime.transactions import (
    Clock,
    DocumentChange,
    IndexKeyChange,
    Interval,
    ReadSet,
    TransactionLimits,
    WriteSet,
    point_interval,
)
from owlat.runtime.types import Document
from owlat.runtime.values import decode_stored, encode_stored
from owlat.runtime.values.ids import new_id

logger = logging.getLogger("owlat.runtime")
_savepoint_names = itertools.count()

# A document revision and its index keys, in the order of its table's indexes.
_Revision = tuple[Document, tuple[bytes, ...]]
# A side effect to run once the transaction has committed.
AfterCommit = Callable[[], Awaitable[None]]


class Transaction:
    """A query's snapshot or a mutation's read-write transaction."""

    def __init__(
        self,
        engine: EngineReader,
        catalog: Catalog,
        clock: Clock,
        *,
        ts: int,
        writable: bool,
        limits: TransactionLimits | None = None,
    ) -> None:
        self.engine = engine
        self.catalog = catalog
        self.clock = clock
        self.ts = ts
        self.writable = writable
        self.limits = limits or TransactionLimits()
        self.read_set = ReadSet()
        self._point_reads: set[str] = set()  # ids whose by_id point the read set holds
        self._original: dict[str, tuple[TableInfo, _Revision | None]] = {}
        self._current: dict[str, _Revision | None] = {}
        # the stored value of each document this transaction wrote (None: deleted), which
        # is what the engine would return for it: `get` answers from here
        self._written_values: dict[str, bytes | None] = {}
        self._pending = PendingInserts()  # inserted documents not yet in the engine
        self.documents_read = 0
        self.bytes_read = 0
        self.index_ranges_read = 0
        self.documents_written = 0
        self.bytes_written = 0
        self._after_commit: list[AfterCommit] = []
        self.scheduled_jobs = 0  # counted by ctx.scheduler against its per-transaction limits
        self.scheduled_bytes = 0
        self._commit_ts: int | None = None

    # -- reads -------------------------------------------------------------------------

    def record_range(self, index: IndexInfo, interval: Interval) -> None:
        """Add a scanned index range to the read set."""
        self._count_range()
        self.read_set.add(index.table, index.name, interval)

    def _count_range(self) -> None:
        self.index_ranges_read += 1
        if self.index_ranges_read > self.limits.max_index_ranges:
            raise LimitExceededError(
                f"Too many index ranges read in one transaction "
                f"(limit: {self.limits.max_index_ranges})"
            )

    def _count_read(self, size: int) -> None:
        self.documents_read += 1
        self.bytes_read += size
        if self.documents_read > self.limits.max_documents_read:
            raise LimitExceededError(
                f"Too many documents read in a single function execution "
                f"(limit: {self.limits.max_documents_read})"
            )
        if self.bytes_read > self.limits.max_bytes_read:
            raise LimitExceededError(
                f"Too many bytes read in a single function execution "
                f"(limit: {self.limits.max_bytes_read} bytes)"
            )

    async def get(self, table: TableInfo, document_id: str) -> Document | None:
        """Point read by id; recorded even when the document does not exist, once per id
        (reading the same document again adds no range to the read set or the limit)."""
        if document_id not in self._point_reads:
            self._count_range()
            self.read_set.add(table.name, BY_ID, point_interval(id_key(document_id)))
            self._point_reads.add(document_id)
        if document_id in self._written_values:
            value = self._written_values[document_id]
        else:
            value = await self.engine.get_document(document_id)
        if value is None:
            return None
        self._count_read(len(value))
        document: Document = decode_stored(value)
        return document

    async def scan(
        self, index: IndexInfo, low: bytes, high: bytes, descending: bool, limit: int
    ) -> list[tuple[bytes, Document]]:
        """Up to `limit` documents of an index range; the caller records the range read."""
        await self._flush_for(index, low, high)
        rows = await self.engine.scan(index.index_id, low, high, descending, limit)
        result: list[tuple[bytes, Document]] = []
        for key, value in rows:
            self._count_read(len(value))
            result.append((key, decode_stored(value)))
        return result

    async def scan_where(
        self,
        index: IndexInfo,
        low: bytes,
        high: bytes,
        descending: bool,
        limit: int,
        predicate: Predicate,
    ) -> list[tuple[bytes, Document]]:
        """`scan` without the rows the pushed-down predicate rules out (the database
        skips them; only returned documents count toward the read limits)."""
        await self._flush_for(index, low, high)
        rows = await self.engine.scan_where(index.index_id, low, high, descending, limit, predicate)
        result: list[tuple[bytes, Document]] = []
        for key, value in rows:
            self._count_read(len(value))
            result.append((key, decode_stored(value)))
        return result

    async def count_where(
        self, index: IndexInfo, low: bytes, high: bytes, predicate: Predicate | None
    ) -> tuple[int, list[Document]]:
        """Rows of the range the predicate accepts (all if None) counted in the database,
        and the documents it cannot decide; the caller records the range read."""
        await self._flush_for(index, low, high)
        count, rows = await self.engine.count_where(index.index_id, low, high, predicate)
        undecided = []
        for _, value in rows:
            self._count_read(len(value))
            undecided.append(decode_stored(value))
        return count, undecided

    # -- writes ------------------------------------------------------------------------

    def _writer(self) -> EngineWriter:
        if not self.writable:
            raise ReadOnlyError()
        engine: EngineWriter = self.engine  # type: ignore[assignment]
        return engine

    def _encode(self, table: TableInfo, document: Document) -> bytes:
        value = encode_stored(document)
        if len(value) > self.limits.max_document_bytes:
            raise LimitExceededError(
                f"Document in table {table.name!r} is {len(value)} bytes; the limit is "
                f"{self.limits.max_document_bytes} bytes"
            )
        self.documents_written += 1
        self.bytes_written += len(value)
        if self.documents_written > self.limits.max_documents_written:
            raise LimitExceededError(
                f"Too many documents written in a single function execution "
                f"(limit: {self.limits.max_documents_written})"
            )
        if self.bytes_written > self.limits.max_bytes_written:
            raise LimitExceededError(
                f"Too many bytes written in a single function execution "
                f"(limit: {self.limits.max_bytes_written} bytes)"
            )
        return value

    def _track(
        self, table: TableInfo, document_id: str, old: _Revision | None, new: _Revision | None
    ) -> None:
        if document_id not in self._original:
            self._original[document_id] = (table, old)
        self._current[document_id] = new

    def _revision(self, table: TableInfo, document: Document) -> _Revision:
        """A document with its index keys (in `table.indexes` order), computed once."""
        return document, table.index_keys(document)

    def _stored_revision(self, table: TableInfo, document: Document) -> _Revision:
        """The revision of a document read from the engine, reusing keys computed here."""
        tracked = self._current.get(document["_id"])
        if tracked is not None and tracked[0] == document:
            return tracked
        return self._revision(table, document)

    async def _flush_for(self, index: IndexInfo, low: bytes, high: bytes) -> None:
        """Hand the held inserts to the engine if a read of `[low, high)` could see one."""
        if self._pending and self._pending.in_range(index.index_id, low, high):
            await self.flush()

    async def flush(self) -> None:
        """Write the held inserts into the engine transaction (before committing it)."""
        if self._pending:
            documents, entries = self._pending.drain()
            writer = self._writer()
            await writer.insert_documents(documents)
            await writer.insert_index_entries(entries)

    async def insert(self, table: TableInfo, fields: Document) -> str:
        """Store a new document with validated `fields`; returns its id."""
        self._writer()
        document_id = new_id(table.number)
        document = {"_id": document_id, "_creationTime": self.clock.next_creation_time()}
        document.update(fields)
        value = self._encode(table, document)
        self._written_values[document_id] = value
        revision = self._revision(table, document)
        entries = list(zip(table.index_ids, revision[1], strict=True))
        self._pending.add(document_id, table.number, value, entries)
        self._track(table, document_id, None, revision)
        return document_id

    def written(self, document_id: str) -> Document | None:
        """The document as this transaction last wrote it (None: deleted or not written)."""
        revision = self._current.get(document_id)
        return None if revision is None else revision[0]

    async def update(self, table: TableInfo, old: Document, new: Document) -> None:
        """Replace a live document (same `_id` and `_creationTime`) by `new`."""
        writer = self._writer()
        document_id = old["_id"]
        value = self._encode(table, new)
        self._written_values[document_id] = value
        before, after = self._stored_revision(table, old), self._revision(table, new)
        changed = [
            (index_id, old_key, new_key)
            for index_id, old_key, new_key in zip(table.index_ids, before[1], after[1], strict=True)
            if old_key != new_key
        ]
        if document_id in self._pending:
            self._pending.replace(document_id, value, changed)
        else:
            await writer.update_document(document_id, value)
            if changed:
                await writer.delete_index_entries([(i, key) for i, key, _ in changed])
                await writer.insert_index_entries([(i, key, document_id) for i, _, key in changed])
        self._track(table, document_id, before, after)

    async def delete(self, table: TableInfo, old: Document) -> None:
        """Remove a live document and its index entries."""
        writer = self._writer()
        document_id = old["_id"]
        before = self._stored_revision(table, old)
        if document_id in self._pending:
            self._pending.discard(document_id)
        else:
            await writer.delete_index_entries(list(zip(table.index_ids, before[1], strict=True)))
            await writer.delete_document(document_id)
        self._written_values[document_id] = None
        self._track(table, document_id, before, None)

    @asynccontextmanager
    async def nested(self) -> AsyncIterator[None]:
        """A sub-transaction: its writes are undone if the block raises."""
        writer = self._writer() if self.writable else None
        if writer is None:
            yield
            return
        name = f"owlat_{next(_savepoint_names)}"
        original, current = dict(self._original), dict(self._current)
        written_values = dict(self._written_values)
        counters = (
            self.documents_written,
            self.bytes_written,
            self.scheduled_jobs,
            self.scheduled_bytes,
        )
        callbacks = len(self._after_commit)
        await self.flush()  # from here on, what is held was inserted inside the block
        await writer.savepoint(name)
        try:
            yield
        except BaseException:
            self._pending = PendingInserts()
            await writer.rollback_to_savepoint(name)
            self._original, self._current = original, current
            self._written_values = written_values
            (
                self.documents_written,
                self.bytes_written,
                self.scheduled_jobs,
                self.scheduled_bytes,
            ) = counters
            del self._after_commit[callbacks:]
            raise
        await writer.release_savepoint(name)

    # -- commit --------------------------------------------------------------------------

    async def commit_ts(self) -> int:
        """The timestamp this transaction will commit at, drawn from the engine on the first
        call (late: the engine orders commits from then on, see `EngineWriter.allocate_ts`)."""
        if self._commit_ts is None:
            writer = self._writer()  # checks that the stored catalog is still ours
            self._commit_ts = await writer.allocate_ts(catalog_version=self.catalog.version)
        return self._commit_ts

    @property
    def has_commit_ts(self) -> bool:
        return self._commit_ts is not None

    # -- after commit --------------------------------------------------------------------

    def after_commit(self, callback: AfterCommit) -> None:
        """Run `callback()` once this transaction has committed (never if it rolls back)."""
        self._writer()
        self._after_commit.append(callback)

    async def run_after_commit(self) -> None:
        """Run the after-commit callbacks; called by the Application after the commit."""
        callbacks, self._after_commit = self._after_commit, []
        for callback in callbacks:
            try:
                await callback()
            except Exception:
                logger.exception("an after-commit callback failed (the commit stands)")

    def write_set(self) -> WriteSet:
        """What this transaction changed, with old and new keys for every index."""
        documents: list[DocumentChange] = []
        keys: list[IndexKeyChange] = []
        for document_id, (table, old) in self._original.items():
            new = self._current[document_id]
            old_document = None if old is None else old[0]
            new_document = None if new is None else new[0]
            if old_document == new_document:
                continue
            name = table.name
            documents.append(DocumentChange(name, document_id, old_document, new_document))
            key = id_key(document_id)
            keys.append(IndexKeyChange(name, BY_ID, key if old else None, key if new else None))
            absent = table.index_absent
            old_keys = absent if old is None else old[1]
            new_keys = absent if new is None else new[1]
            keys.extend(
                [
                    IndexKeyChange(name, index, old_key, new_key)
                    for index, old_key, new_key in zip(
                        table.index_names, old_keys, new_keys, strict=True
                    )
                ]
            )
        return WriteSet(tuple(documents), tuple(keys))
