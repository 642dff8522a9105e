"""One transaction's access to the engine: decoded documents, index maintenance,
read-set recording, write tracking and per-transaction limits.

Writes go into the engine transaction (so reads see the transaction's own writes and a
rollback undoes them). New documents are held back (`pending.PendingInserts`) and handed
over together, with all their index entries, when a range read could see one of them, at a
savepoint and before the commit (`flush`); an update writes a document's changed index
entries with one engine call. The transaction also remembers each written document's
revision before its first write, which is what the commit's write set is made of.

Point reads go through a per-transaction cache of stored values (`_values`): each document
this transaction read or wrote, by id, as the engine would return it now (None: missing or
deleted). A write replaces the entry, so the transaction's own writes win; a read of an
entry asks the engine nothing, and the transaction's snapshot cannot change under it
(SQLite: one writer; PostgreSQL: one serializable snapshot). The cache holds bytes: `get`
decodes a new document for every caller, which may change it freely; `get(current=True)`, for a
write of that document (patch, replace, delete), hands out the transaction's own last
written revision instead of decoding again, and its caller must not change it. Either way
a point read is recorded in the read set (and counted against `max_index_ranges`) once per
document however often it is repeated, so a cached read is still in the read set.

After-commit callbacks (`after_commit`) are side effects outside the database that must
happen only if the transaction commits, such as removing a deleted file's blob. They are
dropped with the transaction when it rolls back, and with a sub-transaction (`nested`) when
that is rolled back; the Application runs them once the commit has succeeded
(`run_after_commit`), in registration order, logging rather than raising their errors: the
commit stands whatever they do.

Around the transaction: its `TransactionLimits`, the `Clock` it draws creation times from,
the `RetryPolicy` that re-runs a transaction the engine refused with a write conflict, and
the `MutationHook` runtime code may run inside a mutation's transaction.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, Protocol, TypeVar

from owlat.runtime.database.catalog import Catalog, IndexInfo, TableInfo, id_key
from owlat.runtime.database.commits import (
    DocumentChange,
    IndexKeyChange,
    Interval,
    ReadSet,
    WriteSet,
)
from owlat.runtime.database.engine import EngineReader, EngineWriter, Predicate
from owlat.runtime.database.pending import PendingInserts
from owlat.runtime.errors import LimitExceededError, ReadOnlyError, WriteConflictError
from owlat.runtime.schema import BY_ID
from owlat.runtime.types import Document
from owlat.runtime.values import decode_stored, encode_stored
from owlat.runtime.values.ids import new_id

logger = logging.getLogger("owlat.runtime")
_T = TypeVar("_T")

# A document revision and its index keys, in the order of its table's indexes.
_Revision = tuple[Document, tuple[bytes, ...]]
# A side effect to run once the transaction has committed.
AfterCommit = Callable[[], Awaitable[None]]


@dataclasses.dataclass(frozen=True, slots=True)
class TransactionLimits:
    """Per-transaction limits, as Convex's."""

    max_documents_read: int = 32_000
    max_bytes_read: int = 16 * 1024 * 1024
    max_index_ranges: int = 4_096
    max_documents_written: int = 16_000
    max_bytes_written: int = 16 * 1024 * 1024
    max_document_bytes: int = 1024 * 1024


_DEFAULT_LIMITS = TransactionLimits()


class Clock:
    """The newest commit timestamp this process knows of, and document creation times."""

    # Creation times are float milliseconds (~0.25 µs resolution today): step ≥ 1 µs.
    CREATION_STEP_NS = 1_000

    def __init__(self, last_ts: int = 0) -> None:
        self.last_ts = last_ts
        self._last_creation_ns = last_ts

    def advance(self, ts: int) -> None:
        """Record a committed timestamp."""
        if ts > self.last_ts:
            self.last_ts = ts

    def next_creation_time(self) -> float:
        """`_creationTime` for a new document: ms since the epoch, distinct and increasing."""
        ns = max(time.time_ns(), self._last_creation_ns + self.CREATION_STEP_NS)
        self._last_creation_ns = ns
        return ns / 1_000_000


class RetryPolicy:
    """Bounded retries of conflicting transactions, as Convex's (4 retries, 100 ms → 2 s).

    Each wait is drawn between half and one and a half times the backoff, so that writers
    that conflicted together (PostgreSQL) do not all come back at the same moment."""

    def __init__(self, retries: int = 4, first_backoff: float = 0.1, max_backoff: float = 2.0):
        self.retries = retries
        self.first_backoff = first_backoff
        self.max_backoff = max_backoff

    async def run(self, attempt: Callable[[], Awaitable[_T]]) -> _T:
        backoff = self.first_backoff
        for retry in range(self.retries + 1):
            try:
                return await attempt()
            except WriteConflictError as error:
                if retry == self.retries:
                    raise WriteConflictError(
                        f"Transaction still conflicted after {self.retries} retries: "
                        f"{error.message}"
                    ) from error
                wait = backoff * random.uniform(0.5, 1.5)
                logger.info("write conflict, retrying in %.2fs", wait)
                await asyncio.sleep(wait)
                backoff = min(backoff * 2, self.max_backoff)
        raise AssertionError("unreachable")


@dataclasses.dataclass(frozen=True, slots=True)
class RecordedOutcome:
    """A mutation's result and commit timestamp, as recorded earlier."""

    value: Any
    ts: int


class MutationHook(Protocol):
    """Runtime code that runs inside a mutation's transaction, around its handler."""

    async def before(self, txn: Transaction) -> RecordedOutcome | None:
        """Return an earlier outcome to answer with instead of running (or raise to abort)."""

    async def after(self, txn: Transaction, value: Any, ts: int) -> None:
        """Write what must commit with the mutation (`ts` is its commit timestamp)."""


class Transaction:
    """A query's snapshot or a mutation's read-write transaction."""

    # one per function call: slots make it, and each of its counters, cheaper
    __slots__ = (
        "_after_commit",
        "_commit_ts",
        "_current",
        "_original",
        "_pending",
        "_point_reads",
        "_values",
        "bytes_read",
        "bytes_written",
        "catalog",
        "clock",
        "documents_read",
        "documents_written",
        "engine",
        "index_ranges_read",
        "limits",
        "read_set",
        "scheduled_bytes",
        "scheduled_jobs",
        "ts",
        "writable",
    )

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
        self.limits = limits or _DEFAULT_LIMITS
        self.read_set = ReadSet()
        self._point_reads: set[str] = set()  # ids whose by_id point the read set holds
        self._original: dict[str, tuple[TableInfo, _Revision | None]] = {}
        self._current: dict[str, _Revision | None] = {}
        # the stored value of each document this transaction read or wrote (None: missing
        # or deleted), which is what the engine would return for it now (module doc)
        self._values: dict[str, bytes | None] = {}
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
        self.index_ranges_read += 1
        if self.index_ranges_read > self.limits.max_index_ranges:
            self._too_many_ranges()
        self.read_set.add(index.table, index.name, interval)

    def _too_many_ranges(self) -> None:
        raise LimitExceededError(
            f"Too many index ranges read in one transaction "
            f"(limit: {self.limits.max_index_ranges})"
        )

    def _count_read(self, size: int) -> None:
        self.documents_read += 1
        self.bytes_read += size
        self._check_reads()

    def _check_reads(self) -> None:
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

    async def get(
        self, table: TableInfo, document_id: str, *, current: bool = False
    ) -> Document | None:
        """Point read by id; recorded even when the document does not exist, once per id
        (reading the same document again adds no range to the read set or the limit).
        The document is the caller's own: a new one every call. `current=True`, for a write
        that replaces the document (`update`, `delete`): the revision this transaction last
        wrote, if any, is returned as it is, not decoded again; the caller must not change
        it."""
        # the point's recording and the read's counting written out: the hottest read
        if document_id not in self._point_reads:
            self.index_ranges_read += 1
            if self.index_ranges_read > self.limits.max_index_ranges:
                self._too_many_ranges()
            key = document_id.encode()  # id_key
            self.read_set.add(table.name, BY_ID, Interval(key, key + b"\x00"))  # point_interval
            self._point_reads.add(document_id)
        values = self._values
        if current:
            revision = self._current.get(document_id)
            if revision is not None:  # written by this transaction, not deleted
                self._count_read(len(values[document_id] or b""))
                return revision[0]
        if document_id in values:
            value = values[document_id]
        else:
            value = values[document_id] = await self.engine.get_document(document_id)
        if value is None:
            return None
        self.documents_read += 1
        self.bytes_read += len(value)
        limits = self.limits
        if (
            self.documents_read > limits.max_documents_read
            or self.bytes_read > limits.max_bytes_read
        ):
            self._check_reads()
        document: Document = decode_stored(value)
        return document

    async def scan(
        self,
        index: IndexInfo,
        low: bytes,
        high: bytes,
        descending: bool,
        limit: int,
        predicate: Predicate | None = None,
    ) -> list[tuple[bytes, Document]]:
        """Up to `limit` documents of an index range, without the rows a pushed-down
        `predicate` rules out (the database skips them; only returned documents count
        toward the read limits); the caller records the range read."""
        await self._flush_for(index, low, high)
        rows = await self.engine.scan(index.index_id, low, high, descending, limit, predicate)
        result: list[tuple[bytes, Document]] = []
        for key, value in rows:
            self._count_read(len(value))
            result.append((key, decode_stored(value)))
        return result

    async def scan_ranges(
        self, index: IndexInfo, intervals: list[Interval]
    ) -> list[list[Document]]:
        """Every document of each interval of `index` (one list per interval, in key
        order), each interval recorded in the read set as `Query.collect` records it."""
        for interval in intervals:
            self.record_range(index, interval)
            await self._flush_for(index, interval.low, interval.high)
        ranges = [(interval.low, interval.high) for interval in intervals]
        found = await self.engine.scan_ranges(index.index_id, ranges)
        result = []
        for rows in found:
            documents = []
            for _, value in rows:
                self._count_read(len(value))
                documents.append(decode_stored(value))
            result.append(documents)
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
        if tracked is not None and (tracked[0] is document or tracked[0] == document):
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
            await self._writer().insert_documents(documents, entries)

    async def insert(self, table: TableInfo, fields: Document) -> str:
        """Store a new document with validated `fields`; returns its id."""
        self._writer()
        document_id = new_id(table.number)
        document = {"_id": document_id, "_creationTime": self.clock.next_creation_time()}
        document.update(fields)
        value = self._encode(table, document)
        self._values[document_id] = value
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
        self._values[document_id] = value
        before, after = self._stored_revision(table, old), self._revision(table, new)
        changed = [
            (index_id, old_key, new_key)
            for index_id, old_key, new_key in zip(table.index_ids, before[1], after[1], strict=True)
            if old_key != new_key
        ]
        if document_id in self._pending:
            self._pending.replace(document_id, value, changed)
        else:
            await writer.update_document(
                document_id,
                value,
                [(i, key) for i, key, _ in changed],
                [(i, key, document_id) for i, _, key in changed],
            )
        self._track(table, document_id, before, after)

    async def delete(self, table: TableInfo, old: Document) -> None:
        """Remove a live document and its index entries."""
        writer = self._writer()
        document_id = old["_id"]
        before = self._stored_revision(table, old)
        if document_id in self._pending:
            self._pending.discard(document_id)
        else:
            await writer.delete_document(
                document_id, list(zip(table.index_ids, before[1], strict=True))
            )
        self._values[document_id] = None
        self._track(table, document_id, before, None)

    @asynccontextmanager
    async def nested(self) -> AsyncIterator[None]:
        """A sub-transaction: its writes are undone if the block raises."""
        writer = self._writer() if self.writable else None
        if writer is None:
            yield
            return
        original, current = dict(self._original), dict(self._current)
        # the cached values of the documents written so far (what a rollback restores);
        # documents only read stay cached through a rollback: the engine's value of a
        # document this transaction never wrote is what it was
        written = {document_id: self._values[document_id] for document_id in current}
        counters = (
            self.documents_written,
            self.bytes_written,
            self.scheduled_jobs,
            self.scheduled_bytes,
        )
        callbacks = len(self._after_commit)
        await self.flush()  # from here on, what is held was inserted inside the block
        try:
            async with writer.savepoint():
                yield
        except BaseException:
            self._pending = PendingInserts()
            for document_id in self._current:  # written before or inside the block
                del self._values[document_id]
            self._values.update(written)
            self._original, self._current = original, current
            (
                self.documents_written,
                self.bytes_written,
                self.scheduled_jobs,
                self.scheduled_bytes,
            ) = counters
            del self._after_commit[callbacks:]
            raise

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
