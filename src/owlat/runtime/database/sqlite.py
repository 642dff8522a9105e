"""The embedded SQLite engine (stdlib `sqlite3`, WAL).

One writer connection serves every write transaction, one at a time (`BEGIN IMMEDIATE`
under an asyncio lock), so every write is exclusive and a commit timestamp needs no more
than the last one + 1 (or now, in ns, if later): the writing process keeps it in memory and
stores only a bound of it, now and then (`_sqlite_clock.py`). Queries read on a small pool
of reader connections, each inside a deferred transaction so that a query sees one snapshot
while writers commit; while nothing commits, queries share one such transaction
(`_Snapshot`: no `BEGIN`/`COMMIT` and no timestamp read per query), and any commit, of this
process or another, ends the sharing. SQLite calls are fast and local, so they run on the
event loop thread: no thread hop per statement. `sqlite3.Error` stops here and becomes
`EngineError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import mmap
import sqlite3
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from types import TracebackType
from typing import Any

from owlat.runtime.database._sql import Statements, load_statements
from owlat.runtime.database._sqlite_clock import CommitClock
from owlat.runtime.database.commit_feed import InProcessCommitFeed
from owlat.runtime.database.commits import WriteSet
from owlat.runtime.database.engine import CatalogChangedError, Predicate, StoredIndex
from owlat.runtime.database.pushdown import SqliteDialect
from owlat.runtime.errors import EngineError

SYNCHRONOUS_MODES = ("OFF", "NORMAL", "FULL", "EXTRA")
# WAL pages between automatic checkpoints (SQLite's default is 1000): fewer, larger
# checkpoints cost less per commit; the WAL file is truncated back after each one.
WAL_AUTOCHECKPOINT_PAGES = 4000
MMAP_BYTES = 1 << 30  # the largest memory map of the database file per connection


def _execute(
    db: sqlite3.Connection, statement: str, params: tuple[Any, ...] = ()
) -> sqlite3.Cursor:
    try:
        return db.execute(statement, params)
    except sqlite3.Error as error:
        raise EngineError(f"SQLite: {error}") from error


def _execute_many(db: sqlite3.Connection, statement: str, rows: Sequence[tuple[Any, ...]]) -> None:
    try:
        db.executemany(statement, rows)
    except sqlite3.Error as error:
        raise EngineError(f"SQLite: {error}") from error


def _blob(value: bytes) -> bytearray:
    """`value` as sqlite3 binds it cheapest: the module adapts every parameter that is not
    exactly int, float, str or bytearray, and for `bytes` that means two failed attribute
    lookups (`__adapt__`, `__conform__`), each raising and clearing an AttributeError: a
    copy into a `bytearray` costs less, and is stored as the same BLOB."""
    return bytearray(value)


def _end_failed(connection: sqlite3.Connection) -> None:
    """Roll back what a failed statement left open (a transaction it began)."""
    if connection.in_transaction:
        with contextlib.suppress(sqlite3.Error):
            connection.execute("ROLLBACK")


def _lower(value: str | bytes | int | float | None) -> str | bytes | int | float | None:
    """`owlat_lower(x)` for pushed-down filters: Python's own lower-casing of strings."""
    return value.lower() if isinstance(value, str) else value


class SqliteReader:
    """Reads through one connection inside an open transaction, at timestamp `ts`."""

    dialect = SqliteDialect()

    __slots__ = ("_db", "_sql", "_ts")

    def __init__(self, connection: sqlite3.Connection, sql: Statements, ts: int = 0) -> None:
        self._db = connection
        self._sql = sql
        self._ts = ts

    async def get_global(self, name: str) -> int | None:
        row = _execute(self._db, self._sql.get_global, (name,)).fetchone()
        return None if row is None else int(row[0])

    async def last_ts(self) -> int:
        return self._ts

    async def get_document(self, document_id: str) -> bytes | None:
        try:  # `_execute` written out: the hottest statement
            row = self._db.execute(self._sql.get_document, (document_id,)).fetchone()
        except sqlite3.Error as error:
            raise EngineError(f"SQLite: {error}") from error
        return None if row is None else row[0]  # a BLOB: bytes

    async def scan(
        self,
        index_id: int,
        low: bytes,
        high: bytes,
        descending: bool,
        limit: int,
        predicate: Predicate | None,
    ) -> list[tuple[bytes, bytes]]:
        if predicate is None:
            statement = self._sql.scan_desc if descending else self._sql.scan_asc
            params: tuple[Any, ...] = (index_id, _blob(low), _blob(high), limit)
        else:
            template = self._sql.scan_where_desc if descending else self._sql.scan_where_asc
            statement = template.replace("{predicate}", predicate.sql)
            params = (index_id, _blob(low), _blob(high), *predicate.params, limit)
        rows: list[tuple[bytes, bytes]] = _execute(self._db, statement, params).fetchall()
        return rows

    async def scan_ranges(
        self, index_id: int, ranges: Sequence[tuple[bytes, bytes]]
    ) -> list[list[tuple[bytes, bytes]]]:
        statement = self._sql.scan_ranges  # in-process: one statement per range costs little
        return [
            _execute(self._db, statement, (index_id, _blob(low), _blob(high))).fetchall()
            for low, high in ranges
        ]

    async def count_where(
        self, index_id: int, low: bytes, high: bytes, predicate: Predicate | None
    ) -> tuple[int, list[tuple[bytes, bytes]]]:
        bounds = (_blob(low), _blob(high))
        if predicate is None:
            (count,) = _execute(self._db, self._sql.count_range, (index_id, *bounds)).fetchone()
            return int(count), []
        statement = self._sql.count_where.replace("{predicate}", predicate.sql)
        groups = dict(
            _execute(self._db, statement, (*predicate.params, index_id, *bounds)).fetchall()
        )
        unknown: list[tuple[bytes, bytes]] = []
        if groups.get(None):
            statement = self._sql.unknown_where.replace("{predicate}", predicate.sql)
            unknown = _execute(
                self._db, statement, (index_id, *bounds, *predicate.params)
            ).fetchall()
        return int(groups.get(1, 0)), unknown

    async def list_tables(self) -> dict[str, int]:
        rows = _execute(self._db, self._sql.list_tables).fetchall()
        return {name: int(number) for name, number in rows}

    async def list_indexes(self) -> list[StoredIndex]:
        rows = _execute(self._db, self._sql.list_indexes).fetchall()
        backfilling = {row[0] for row in _execute(self._db, self._sql.list_backfilling)}
        return [
            StoredIndex(
                int(index_id), table, name, tuple(json.loads(fields)), index_id not in backfilling
            )
            for index_id, table, name, fields in rows
        ]

    async def documents_after(
        self, table_number: int, after_id: str, limit: int
    ) -> list[tuple[str, bytes]]:
        params = (table_number, after_id, limit)
        rows = _execute(self._db, self._sql.documents_after, params).fetchall()
        return [(str(document_id), bytes(value)) for document_id, value in rows]


class SqliteWriter(SqliteReader):
    """Reads and writes through the writer connection inside `BEGIN IMMEDIATE`; draws
    commit timestamps from the engine's `CommitClock` (the engine stores the bound and
    advances the clock at COMMIT)."""

    __slots__ = ("_clock", "_drawn", "recorded")

    def __init__(self, connection: sqlite3.Connection, sql: Statements, clock: CommitClock) -> None:
        super().__init__(connection, sql)
        self._clock = clock
        self._drawn = 0  # the last timestamp allocate_ts drew in this transaction
        self.recorded: int | None = None  # the timestamp record_commit named

    async def last_ts(self) -> int:
        return self._clock.last  # `BEGIN IMMEDIATE` learned any other connection's commit

    async def set_global(self, name: str, value: int) -> None:
        _execute(self._db, self._sql.set_global, (name, value))

    async def allocate_ts(self, at_least: int = 0, *, catalog_version: int | None = None) -> int:
        if catalog_version is not None:
            stored = self._clock.catalog_version
            if stored is None:
                stored = self._clock.catalog_version = await self.catalog_version()
            if stored != catalog_version:
                raise CatalogChangedError(
                    f"The catalog changed (version {catalog_version} → {stored}); reloading it"
                )
        self._drawn = self._clock.draw(max(at_least, self._drawn + 1))
        return self._drawn

    async def catalog_version(self) -> int:
        return int(_execute(self._db, self._sql.catalog_version).fetchone()[0])

    async def bump_catalog_version(self) -> None:
        self._clock.catalog_version = None  # read again (this transaction may roll back)
        _execute(self._db, self._sql.bump_catalog_version).fetchall()

    async def set_index_ready(self, index_id: int, ready: bool) -> None:
        statement = self._sql.set_ready if ready else self._sql.set_backfilling
        _execute(self._db, statement, (index_id,))

    async def backfill_index_entry(self, index_id: int, key: bytes, document_id: str) -> None:
        params = (index_id, _blob(key), document_id)
        _execute(self._db, self._sql.backfill_index_entry, params)

    async def record_commit(self, ts: int, write_set: WriteSet) -> None:
        self.recorded = ts  # the engine stores a bound past it, if needed, before COMMIT

    async def record_new_commit(self, write_set: WriteSet, *, catalog_version: int) -> int:
        self.recorded = await self.allocate_ts(catalog_version=catalog_version)
        return self.recorded

    async def insert_documents(
        self,
        documents: Sequence[tuple[str, int, bytes]],
        entries: Sequence[tuple[int, bytes, str]],
    ) -> None:
        # `_execute_many` written out (every insert comes here), values and keys as `_blob`
        try:
            self._db.executemany(
                self._sql.insert_documents,
                [(doc_id, number, bytearray(value)) for doc_id, number, value in documents],
            )
            self._db.executemany(
                self._sql.insert_index_entries,
                [(index_id, bytearray(key), doc_id) for index_id, key, doc_id in entries],
            )
        except sqlite3.Error as error:
            raise EngineError(f"SQLite: {error}") from error

    async def update_document(
        self,
        document_id: str,
        value: bytes,
        removed: Sequence[tuple[int, bytes]],
        added: Sequence[tuple[int, bytes, str]],
    ) -> None:
        _execute(self._db, self._sql.update_document, (_blob(value), document_id))
        if removed:
            rows = [(index_id, _blob(key)) for index_id, key in removed]
            _execute_many(self._db, self._sql.delete_index_keys, rows)
        if added:
            entries = [(index_id, _blob(key), document_id) for index_id, key, document_id in added]
            _execute_many(self._db, self._sql.insert_index_entries, entries)

    async def delete_document(self, document_id: str, entries: Sequence[tuple[int, bytes]]) -> None:
        rows = [(index_id, _blob(key)) for index_id, key in entries]
        _execute_many(self._db, self._sql.delete_index_keys, rows)
        _execute(self._db, self._sql.delete_document, (document_id,))

    async def insert_table(self, name: str, number: int) -> None:
        _execute(self._db, self._sql.insert_table, (name, number))

    async def insert_index(self, table: str, name: str, fields: tuple[str, ...]) -> int:
        params = (table, name, json.dumps(list(fields)))
        row = _execute(self._db, self._sql.insert_index, params).fetchone()
        return int(row[0])

    async def delete_index(self, index_id: int) -> None:
        _execute(self._db, self._sql.delete_index_entries, (index_id,))
        _execute(self._db, self._sql.delete_index, (index_id,))
        _execute(self._db, self._sql.set_ready, (index_id,))

    @asynccontextmanager
    async def savepoint(self) -> AsyncIterator[None]:
        # Nested savepoints may share a name: each statement acts on the innermost one.
        _execute(self._db, "SAVEPOINT owlat_nested")
        try:
            yield
        except BaseException:
            _execute(self._db, "ROLLBACK TO SAVEPOINT owlat_nested")
            _execute(self._db, "RELEASE SAVEPOINT owlat_nested")
            raise
        _execute(self._db, "RELEASE SAVEPOINT owlat_nested")


class _WalIndexWatch:
    """Whether the database changed since a mark, in a fraction of a microsecond: every
    commit, by any connection of any process, rewrites the WAL-index header at the start of
    `<database>-shm` (two 48-byte copies; SQLite's documented WAL-index format,
    https://sqlite.org/walformat.html §2.1), so unchanged header bytes mean no commit since.
    A read that races a commit sees a changed or torn header: never falsely unchanged.
    Without a mappable `-shm` file (`map` None) every mark reads as changed (no snapshot is
    reused). Unchanged since `mark`: `map[:HEADER_BYTES] == mark` (read by `engine.read()`
    itself, a call fewer per query)."""

    __slots__ = ("map",)

    HEADER_BYTES = 96

    def __init__(self, path: Path | None) -> None:
        self.map: mmap.mmap | None = None
        if path is None:
            return
        try:
            with open(f"{path}-shm", "rb") as file:
                self.map = mmap.mmap(file.fileno(), self.HEADER_BYTES, access=mmap.ACCESS_READ)
        except (OSError, ValueError):
            return

    def mark(self) -> bytes | None:
        return None if self.map is None else self.map[: self.HEADER_BYTES]

    def close(self) -> None:
        if self.map is not None:
            self.map.close()
            self.map = None


class _Snapshot:
    """A read transaction on one pooled connection, shared by every `engine.read()` while
    no commit reached the database since it began (the WAL-index mark): a query then reads
    the same data at the same timestamp as in a new transaction, without `BEGIN`, the
    timestamp's read and `COMMIT`. Committed and pooled again when the last reader leaves
    after a commit made it stale.

    `engine.read()` picks the snapshot and `async with` enters it at once (no pause in
    between, so no commit can make it stale there): it is its own context manager, one
    object fewer per query."""

    __slots__ = ("connection", "engine", "mark", "reader", "stale", "users")

    def __init__(
        self,
        engine: SqliteEngine,
        connection: sqlite3.Connection,
        mark: bytes | None,
        reader: SqliteReader,
    ):
        self.engine = engine
        self.connection = connection
        self.mark = mark
        self.users = 0
        self.stale = False
        self.reader = reader

    async def __aenter__(self) -> SqliteReader:
        if self.stale:  # a commit came since `engine.read()`: its snapshot may be over
            raise RuntimeError("enter `engine.read()` at once: `async with engine.read()`")
        self.users += 1
        return self.reader

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.users -= 1
        engine = self.engine
        if isinstance(error, EngineError) and engine._snapshot is self:
            engine._retire_snapshot()  # a failed statement: the next read begins anew
        elif self.stale and self.users == 0:
            engine._end_snapshot(self)


class _WriteTransaction:
    """`async with engine.write()`: `BEGIN IMMEDIATE` on the writer, one at a time; the
    stored timestamp bound learned again if another connection committed since this
    engine's last write (`PRAGMA data_version`, asked only when the WAL-index header is not
    the one this engine's last commit left), stored anew before a COMMIT that passes it."""

    __slots__ = ("_engine", "_writer")

    def __init__(self, engine: SqliteEngine) -> None:
        self._engine = engine
        self._writer: SqliteWriter | None = None

    async def __aenter__(self) -> SqliteWriter:
        engine = self._engine
        connection = engine._writer
        if connection is None:
            raise EngineError("SQLite engine is not open")
        await engine._write_lock.acquire()
        clock = engine._clock
        try:
            connection.execute("BEGIN IMMEDIATE")
            # under the write lock no commit can come; a header equal to the one after
            # this engine's last commit means no other connection committed since
            wal = engine._wal.map
            if (
                clock.header is None
                or wal is None
                or wal[: _WalIndexWatch.HEADER_BYTES] != clock.header
            ):
                (version,) = connection.execute("PRAGMA data_version").fetchone()
                if version != clock.data_version:  # another connection committed
                    clock.learn(int(connection.execute(engine._sql.last_ts).fetchone()[0]))
                    clock.data_version = version
        except sqlite3.Error as error:
            try:
                _end_failed(connection)
            finally:
                engine._write_lock.release()
            raise EngineError(f"SQLite: cannot begin a write: {error}") from error
        self._writer = SqliteWriter(connection, engine._sql, clock)
        return self._writer

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        engine = self._engine
        connection = engine._writer
        writer = self._writer
        assert connection is not None
        assert writer is not None
        clock = engine._clock
        try:
            if error is not None:
                clock.header = None
                connection.execute("ROLLBACK")
                clock.catalog_version = None
                return
            ts = writer.recorded
            bound = None if ts is None else clock.bound_for(ts)
            try:
                if bound is not None:
                    connection.execute(engine._sql.record_commit, (bound,))
                connection.execute("COMMIT")
            except sqlite3.Error as failure:
                clock.header = None
                connection.execute("ROLLBACK")
                clock.catalog_version = None
                raise EngineError(f"SQLite: commit failed: {failure}") from failure
            clock.header = engine._wal.mark()
            if ts is not None:
                clock.committed(ts, bound)
            engine._retire_snapshot()
        finally:
            engine._write_lock.release()


class SqliteEngine:
    """SQLite storage in one database file, WAL mode."""

    def __init__(
        self, path: str | Path, *, synchronous: str = "NORMAL", mmap_bytes: int = MMAP_BYTES
    ) -> None:
        """`mmap_bytes`: how much of the file each connection maps into memory (0: none,
        for a long one-off read such as an export, whose resident memory would otherwise
        grow with every page it reads)."""
        if synchronous.upper() not in SYNCHRONOUS_MODES:
            raise ValueError(
                f"SQLite synchronous mode must be one of {', '.join(SYNCHRONOUS_MODES)}, "
                f"got {synchronous!r}"
            )
        self.path = Path(path)
        self.synchronous = synchronous.upper()
        self.mmap_bytes = mmap_bytes
        self._sql = load_statements("sqlite")
        self._writer: sqlite3.Connection | None = None
        self._write_lock = asyncio.Lock()
        self._idle_readers: list[sqlite3.Connection] = []
        self._all_readers: list[sqlite3.Connection] = []
        self._snapshot: _Snapshot | None = None  # the shared read snapshot (`read`)
        self._wal = _WalIndexWatch(None)  # the WAL index, once the database is open
        self._clock = CommitClock()  # commit timestamps, this process's and the stored bound

    def _connect(self) -> sqlite3.Connection:
        try:
            connection = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, cached_statements=256
            )
            connection.execute("PRAGMA busy_timeout = 10000")
            connection.create_function("owlat_lower", 1, _lower, deterministic=True)
            connection.execute(f"PRAGMA synchronous = {self.synchronous}")
            # Read pages through a memory map instead of read() into a 2 MiB page cache:
            # halves the cost of the index-entry → document lookups of a long scan.
            connection.execute(f"PRAGMA mmap_size = {int(self.mmap_bytes)}")
        except sqlite3.Error as error:
            raise EngineError(f"SQLite: cannot open {self.path}: {error}") from error
        return connection

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        writer = self._connect()
        try:
            writer.execute("PRAGMA journal_mode = WAL")
            writer.execute(f"PRAGMA wal_autocheckpoint = {WAL_AUTOCHECKPOINT_PAGES}")
            writer.executescript(self._sql.create_schema)
            writer.executescript(self._sql.create_catalog_schema)
            self._clock = CommitClock()
            self._clock.learn(int(writer.execute(self._sql.last_ts).fetchone()[0]))
        except sqlite3.Error as error:
            writer.close()
            raise EngineError(f"SQLite: cannot initialise {self.path}: {error}") from error
        self._writer = writer
        self._wal.close()
        self._wal = _WalIndexWatch(self.path)  # the writer's schema statements made `-shm`

    async def close(self) -> None:
        """Release the connections; the stored timestamp bound is first brought back to
        the last commit's timestamp, so that a restart after a clean close draws from it."""
        if self._writer is not None and self._clock.own:
            async with self._write_lock:
                self._store_last_ts(self._writer)
        self._snapshot = None
        self._wal.close()
        for connection in self._all_readers:
            connection.close()
        self._all_readers.clear()
        self._idle_readers.clear()
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def _store_last_ts(self, writer: sqlite3.Connection) -> None:
        """Store this process's last commit timestamp as the bound (unless another
        connection committed since: the bound then stays, as after a crash)."""
        try:
            writer.execute("BEGIN IMMEDIATE")
            (version,) = writer.execute("PRAGMA data_version").fetchone()
            if version == self._clock.data_version:
                writer.execute(self._sql.set_global, ("last_ts", self._clock.last))
            writer.execute("COMMIT")
        except sqlite3.Error:
            _end_failed(writer)

    def read(self) -> _Snapshot:
        """The current shared snapshot, or a new one (a deferred transaction on a pooled
        reader connection) when a commit made the last one stale."""
        snapshot = self._snapshot
        wal = self._wal.map
        if (
            snapshot is None
            or snapshot.stale
            or wal is None
            or snapshot.mark != wal[: _WalIndexWatch.HEADER_BYTES]
        ):
            snapshot = self._new_snapshot()
        return snapshot

    def _new_snapshot(self) -> _Snapshot:
        """Begin the shared snapshot (the mark first: a commit between the mark and the
        snapshot's first read only makes it stale early), retiring the previous one."""
        self._retire_snapshot()
        connection = self._idle_readers.pop() if self._idle_readers else self._new_reader()
        mark = self._wal.mark()
        try:
            connection.execute("BEGIN")
            # the first read begins the snapshot; no commit of this process can come
            # between it and the clock's reading (both on this thread, no pause)
            stored_bound = int(connection.execute(self._sql.last_ts).fetchone()[0])
        except sqlite3.Error as error:
            _end_failed(connection)
            self._idle_readers.append(connection)
            raise EngineError(f"SQLite: {error}") from error
        reader = SqliteReader(connection, self._sql, self._clock.snapshot_ts(stored_bound))
        snapshot = _Snapshot(self, connection, mark, reader)
        self._snapshot = snapshot
        return snapshot

    def _retire_snapshot(self) -> None:
        """After a commit: no new read joins the shared snapshot, which ends now or when
        its last reader leaves (an open one would keep checkpoints from the WAL's end)."""
        snapshot = self._snapshot
        if snapshot is None:
            return
        self._snapshot = None
        snapshot.stale = True
        if snapshot.users == 0:
            self._end_snapshot(snapshot)

    def _end_snapshot(self, snapshot: _Snapshot) -> None:
        try:
            snapshot.connection.execute("COMMIT")
        except sqlite3.Error as failure:
            raise EngineError(f"SQLite: {failure}") from failure
        finally:
            self._idle_readers.append(snapshot.connection)

    def _new_reader(self) -> sqlite3.Connection:
        connection = self._connect()
        self._all_readers.append(connection)
        return connection

    def commit_feed(self) -> InProcessCommitFeed:
        return InProcessCommitFeed()

    def write(self, *, exclusive: bool = False) -> _WriteTransaction:
        return _WriteTransaction(self)
