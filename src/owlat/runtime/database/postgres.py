"""The PostgreSQL engine: several server nodes on one database.

**Driver: psycopg 3 (async).** It ships type information (`py.typed`, so mypy strict checks
this module), binary results (`bytea` keys and values arrive as `bytes` with no hex
decoding), server-side prepared statements (`prepare_threshold=0`: every named statement is
prepared on a connection the first time it runs), and `LISTEN`/`NOTIFY` on an async
connection (`notifies()`), which the commit feed needs. asyncpg is somewhat faster per
statement but untyped, and its prepared-statement cache and custom protocol would be a
second dialect of SQL to maintain; our statements are few and short, so round-trips, not
driver CPU, dominate.

**Storage** is the SQLite layout (sql/postgres.sql): live documents, index entries keyed by
`bytea` (memcmp order = Convex order), the catalog, a few globals, plus the commit log
`owlat_commits(ts, write_set)`, the sequence `owlat_commit_ts` and the empty table
`owlat_commit_lock`.

**Isolation.**
- A write transaction runs at SERIALIZABLE (PostgreSQL's SSI). A serialization failure or
  a deadlock (SQLSTATE 40001, 40P01), on any statement or at COMMIT, becomes
  `WriteConflictError`, which the runtime's RetryPolicy answers by re-running the mutation
  from scratch; any other driver error becomes `EngineError`.
- A read transaction runs at REPEATABLE READ READ ONLY: one snapshot for all its
  statements, never blocked and never failing for concurrency.

**The commit lock.** `LOCK TABLE owlat_commit_lock IN EXCLUSIVE MODE` (statement
`lock_commits`): a lock that conflicts only with itself, held until the transaction ends. A
writer takes it before its first write statement; reads before that run concurrently with
every other transaction. So a transaction holds row locks only while it holds the commit
lock, and a wait for a row lock can never close a cycle with a wait for the commit lock.
A *retry* (`write(exclusive=True)`) takes the commit lock as its first statement: LOCK
TABLE takes no snapshot, so the snapshot starts after every earlier commit, no other
transaction can write until it ends, and it cannot conflict again (at most one retry per
mutation under contention, instead of a storm of them on a hot document).

**Commit timestamps and the ordering argument.** A serializable transaction reads its
start snapshot, so it cannot read "the latest timestamp", and a counter row that every
writer updated would make all writers conflict. Instead, a writing transaction, after its
last read, calls `owlat_draw_ts_v1()`, which takes the commit lock (if not yet held) and
draws `ts = greatest(nextval, now in ns, bound)` from the sequence `owlat_commit_ts`
(sequences are not transactional: the draw sees every earlier draw, committed or not);
the transaction then appends `(ts, write set)` to `owlat_commits` and commits, releasing
the lock. The draw also returns the sequence's value before it (`previous`): the
timestamp of the commit just before this one, or an unused one (a failed transaction's),
which lets the commit feed deliver an own commit without reading the log. Hence:
- *Strictly increasing, in commit order.* Two writers hold the lock one after the other;
  the later one draws from a sequence the earlier one already advanced, and PostgreSQL
  releases a transaction's locks only after its commit is visible to new snapshots
  (`ProcArrayEndTransaction` runs before the lock manager's release), so the commit with
  the greater ts is also the later commit. A transaction that fails after drawing leaves a
  gap, never a reuse.
- *A snapshot is a prefix.* If a snapshot S sees the commit at T, S was taken after T
  committed; every commit T' < T was visible before T even drew its ts (T waited for T''s
  lock to be released), so S sees T' too. Therefore `max(ts)` of the commit log that S sees
  (`last_ts`) names exactly the set of commits in S: "the snapshot at ts".
- A transaction that wrote nothing takes no lock and draws no ts (the runtime answers with
  the latest committed ts, read after it).
- Caveat (SSI, not timestamps): PostgreSQL's serial order of two concurrent mutations may
  differ from their timestamp order when one read what the other later wrote and neither
  saw the other; each mutation is still serializable and every snapshot a prefix of commits.

**Catalog version** (catalog.py): the sequence `owlat_catalog_version`, bumped under the
commit lock by every catalog change and read by `owlat_draw_ts_v1` right after it takes the
commit lock (sequences ignore snapshots, so the read sees the latest value, and no bump can
be half-way while the lock is held). A writer whose catalog is older fails there (SQLSTATE
OW001) and gets `CatalogChangedError`, in the round trip that would draw its timestamp.

**Deferred statements.** BEGIN, document and index-entry writes, and the commit-log row
return nothing the runtime reads, so a transaction queues them (writes after the commit
lock, when they start) and sends them in one psycopg pipeline with the next statement on
its connection: a read (so reads still see the transaction's own writes), the timestamp
draw, or COMMIT. New documents and their index entries are one statement (a data-modifying
WITH). The commit itself is one call (`record_new_commit`: `owlat_commit_v1` takes the
lock, checks the catalog, draws the timestamp, appends the commit-log row and NOTIFYs) sent
with the queue and COMMIT as one simple query, parameters bound on the client (one psycopg
call instead of a pipeline of five; the server then plans those statements each time). A
mutation that only writes is then one round trip of five statements (BEGIN, lock, writes,
commit function, COMMIT), holding the commit lock only while the server runs the last
three; one that reads costs a round trip per read as well. A mutation that needs its
timestamp before the end (`Transaction.commit_ts`) draws it in the round trip of its
writes and sends the commit-log row with COMMIT. An error of a queued statement (a
conflict: 40001) is raised by the statement it was sent with (a failing statement of the
simple query skips the rest, COMMIT too); the transaction is rolled back and retried.

**The commit functions** (`owlat_draw_ts_v1`, `owlat_commit_v1`, sql/postgres.sql) are
(re)created by every node's `open()`, so an existing database gets them in place; a
version in the name lets a new signature coexist with nodes still running older code.

**Pool size**: at most `pool_size` connections (`OWLAT_DATABASE_POOL_SIZE`, default 16),
one per running transaction; more callers wait for a free one. The commit feed's LISTEN
connection is extra.

**Isolating several apps in one database**: tables are created unqualified, in the first
schema of the connection's `search_path` (set `options=-csearch_path=<schema>` in the URL);
the commit lock's key includes the sequence's oid, so schemas do not share it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import json
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from types import TracebackType
from typing import Any, Generic, TypeVar

import psycopg
from psycopg import errors as pg_errors

from owlat.runtime.database._postgres_feed import OwnCommits, PostgresCommitFeed
from owlat.runtime.database._sql import Statements, load_statements
from owlat.runtime.database.commit_feed import encode_write_set
from owlat.runtime.database.commits import WriteSet
from owlat.runtime.database.engine import CatalogChangedError, Predicate, StoredIndex
from owlat.runtime.database.pushdown import PostgresDialect
from owlat.runtime.errors import EngineError, OperatorError, WriteConflictError

DEFAULT_POOL_SIZE = 16
# rows per multi-row INSERT: 3 parameters each, well under PostgreSQL's 65,535 per statement
ROWS_PER_STATEMENT = 5000
_CONFLICTS = (pg_errors.SerializationFailure, pg_errors.DeadlockDetected)
CATALOG_CHANGED = "OW001"  # SQLSTATE of owlat_draw_ts_v1's catalog check
_Connection = psycopg.AsyncConnection[tuple[Any, ...]]


def _translate(error: psycopg.Error) -> Exception:
    """A driver error as the runtime's: conflicts are retried, the rest is the operator's."""
    if isinstance(error, _CONFLICTS):
        return WriteConflictError(f"PostgreSQL: {error.sqlstate}: {error}")
    if error.sqlstate == CATALOG_CHANGED:
        return CatalogChangedError(f"The catalog changed ({error.diag.message_primary})")
    return EngineError(f"PostgreSQL: {error}")


# Statements whose results nobody reads (BEGIN, writes) wait here, per connection, for the
# next statement on it (a read, the timestamp, COMMIT ...), and go to the server in one
# pipeline with it: one round trip instead of one each (see "Deferred statements" in the
# module doc). Parameters None: a command without parameters, sent unprepared.
_deferred: weakref.WeakKeyDictionary[_Connection, list[tuple[str, tuple[Any, ...] | None]]] = (
    weakref.WeakKeyDictionary()
)


async def _execute(
    db: _Connection, statement: str, params: tuple[Any, ...] | None
) -> psycopg.AsyncCursor[tuple[Any, ...]]:
    """Run a statement after the connection's deferred ones, in the same round trip.
    `params` None: a command."""
    deferred = _deferred.pop(db, None)
    if not deferred:
        return await _send(db, statement, params)
    async with db.pipeline():
        for queued, queued_params in deferred:
            await _send(db, queued, queued_params)
        return await _send(db, statement, params)


async def _execute_and_commit(
    db: _Connection, statement: str, params: tuple[Any, ...]
) -> psycopg.AsyncCursor[tuple[Any, ...]]:
    """The connection's deferred statements, `statement` and COMMIT as one simple query: one
    message, and one psycopg call instead of one per statement (a pipeline of five costs
    about 1.6 times its CPU), at the price of binding parameters on the client and of the
    server planning them each time. A failing statement skips the rest (COMMIT too)."""
    queue = [*_deferred.pop(db, ()), (statement, params), ("COMMIT", None)]
    cursor = psycopg.AsyncClientCursor(db)
    text = "; ".join(
        (query if args is None else cursor.mogrify(query, args)).rstrip(";")
        for query, args in queue
    )
    await cursor.execute(text, prepare=False)
    for _ in range(len(queue) - 2):  # to the result of `statement`
        cursor.nextset()
    return cursor


def _send(
    db: _Connection, statement: str, params: tuple[Any, ...] | None
) -> Awaitable[psycopg.AsyncCursor[tuple[Any, ...]]]:
    if params is None:  # a command: not prepared
        return db.execute(statement, prepare=False)
    return db.execute(statement, params, binary=True)


async def _fetch(
    db: _Connection, statement: str, params: tuple[Any, ...] = (), *, commit: bool = False
) -> list[tuple[Any, ...]]:
    """`statement`'s rows (after the deferred statements); `commit`: and COMMIT after it."""
    try:
        if commit:
            cursor = await _execute_and_commit(db, statement, params)
        else:
            cursor = await _execute(db, statement, params)
        return await cursor.fetchall() if cursor.description is not None else []
    except psycopg.Error as error:
        raise _translate(error) from error


async def _command(db: _Connection, statement: str) -> None:
    """A statement without parameters or results (BEGIN, COMMIT, SAVEPOINT ...)."""
    try:
        await _execute(db, statement, None)
    except psycopg.Error as error:
        raise _translate(error) from error


@functools.lru_cache(maxsize=256)
def _with_rows(template: str, row: str, count: int) -> str:
    """`template` with its `{rows}` placeholder filled with `count` times `row`."""
    return template.replace("{rows}", ", ".join([row] * count))


@functools.lru_cache(maxsize=256)
def _with_two(first: str, first_count: int, second: str, second_count: int) -> str:
    """Two 3-value-row templates in one statement: `first` runs in a WITH of `second`."""
    first = _with_rows(first, "(%s, %s, %s)", first_count).rstrip(";")
    return f"WITH first AS ({first}) {_with_rows(second, '(%s, %s, %s)', second_count)}"


class PostgresReader:
    """Reads through one connection inside an open transaction."""

    dialect = PostgresDialect()

    __slots__ = ("_db", "_sql")

    def __init__(self, connection: _Connection, sql: Statements) -> None:
        self._db = connection
        self._sql = sql

    async def get_global(self, name: str) -> int | None:
        rows = await _fetch(self._db, self._sql.get_global, (name,))
        return int(rows[0][0]) if rows else None

    async def last_ts(self) -> int:
        rows = await _fetch(self._db, self._sql.last_ts)
        return int(rows[0][0])

    async def get_document(self, document_id: str) -> bytes | None:
        rows = await _fetch(self._db, self._sql.get_document, (document_id,))
        return bytes(rows[0][0]) if rows else None

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
            params: tuple[Any, ...] = (index_id, low, high, limit)
        else:
            template = self._sql.scan_where_desc if descending else self._sql.scan_where_asc
            statement = template.replace("{predicate}", predicate.sql)
            params = (index_id, low, high, *predicate.params, limit)
        rows = await _fetch(self._db, statement, params)
        return [(bytes(key), bytes(value)) for key, value in rows]

    async def scan_ranges(
        self, index_id: int, ranges: Sequence[tuple[bytes, bytes]]
    ) -> list[list[tuple[bytes, bytes]]]:
        found: list[list[tuple[bytes, bytes]]] = [[] for _ in ranges]
        if ranges:
            lows, highs = [low for low, _ in ranges], [high for _, high in ranges]
            rows = await _fetch(self._db, self._sql.scan_ranges, (lows, highs, index_id))
            for number, key, value in rows:
                found[number - 1].append((bytes(key), bytes(value)))
        return found

    async def count_where(
        self, index_id: int, low: bytes, high: bytes, predicate: Predicate | None
    ) -> tuple[int, list[tuple[bytes, bytes]]]:
        if predicate is None:
            rows = await _fetch(self._db, self._sql.count_range, (index_id, low, high))
            return int(rows[0][0]), []
        statement = self._sql.count_where.replace("{predicate}", predicate.sql)
        groups = dict(await _fetch(self._db, statement, (*predicate.params, index_id, low, high)))
        unknown: list[tuple[bytes, bytes]] = []
        if groups.get(None):
            statement = self._sql.unknown_where.replace("{predicate}", predicate.sql)
            rows = await _fetch(self._db, statement, (index_id, low, high, *predicate.params))
            unknown = [(bytes(key), bytes(value)) for key, value in rows]
        return int(groups.get(True, 0)), unknown

    async def list_tables(self) -> dict[str, int]:
        rows = await _fetch(self._db, self._sql.list_tables)
        return {name: int(number) for name, number in rows}

    async def list_indexes(self) -> list[StoredIndex]:
        rows = await _fetch(self._db, self._sql.list_indexes)
        backfilling = {row[0] for row in await _fetch(self._db, self._sql.list_backfilling)}
        return [
            StoredIndex(
                int(index_id), table, name, tuple(json.loads(fields)), index_id not in backfilling
            )
            for index_id, table, name, fields in rows
        ]

    async def documents_after(
        self, table_number: int, after_id: str, limit: int
    ) -> list[tuple[str, bytes]]:
        rows = await _fetch(self._db, self._sql.documents_after, (table_number, after_id, limit))
        return [(str(document_id), bytes(value)) for document_id, value in rows]


class PostgresWriter(PostgresReader):
    """Reads and writes through one connection inside a SERIALIZABLE transaction."""

    __slots__ = ("_locked", "_own_commits", "_previous")

    def __init__(
        self, connection: _Connection, sql: Statements, own_commits: OwnCommits
    ) -> None:
        super().__init__(connection, sql)
        self._own_commits = own_commits  # this process's commits about to be committed
        self._locked = False
        self._previous = 0  # the draw before this transaction's timestamp

    async def lock_commits(self) -> None:
        """Take the commit lock (once): before the first write, so that a transaction holds
        row locks only while it holds the commit lock, and no lock waits form a cycle."""
        if not self._locked:
            await _fetch(self._db, self._sql.lock_commits)
            self._locked = True

    def _draw(self, row: tuple[Any, ...]) -> int:
        """A (ts, previous) row of owlat_draw_ts_v1: remember `previous` for the feed."""
        ts, self._previous = int(row[0]), int(row[1])
        return ts

    async def _write(self, statement: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        await self.lock_commits()
        return await _fetch(self._db, statement, params)

    def _defer(self, statement: str, params: tuple[Any, ...]) -> None:
        """A write without results, sent with the next statement (after the commit lock)."""
        self.defer_lock()
        _deferred.setdefault(self._db, []).append((statement, params))

    def defer_lock(self) -> None:
        """Take the commit lock (once) with the next statement sent."""
        if not self._locked:
            _deferred.setdefault(self._db, []).append((self._sql.lock_commits, ()))
            self._locked = True

    async def set_global(self, name: str, value: int) -> None:
        await self._write(self._sql.set_global, (name, value))

    async def allocate_ts(self, at_least: int = 0, *, catalog_version: int | None = None) -> int:
        self._locked = True  # owlat_draw_ts_v1 takes the commit lock
        if catalog_version is None:
            rows = await _fetch(self._db, self._sql.allocate_ts, (at_least,))
        else:
            params = (at_least, catalog_version)
            rows = await _fetch(self._db, self._sql.allocate_ts_versioned, params)
        return self._draw(rows[0])

    async def record_new_commit(self, write_set: WriteSet, *, catalog_version: int) -> int:
        """Lock, catalog check, timestamp, commit-log row and NOTIFY in one function call,
        sent with the pending writes and COMMIT: the transaction has committed on return."""
        self._locked = True
        params = (0, catalog_version, encode_write_set(write_set))
        with self._own_commits.committing():  # the feed may read it before its answer
            rows = await _fetch(self._db, self._sql.commit, params, commit=True)
            ts = self._draw(rows[0])
            self._own_commits.previous[ts] = self._previous
        return ts

    async def catalog_version(self) -> int:
        await self.lock_commits()  # the sequence is read outside snapshots: under the lock
        rows = await _fetch(self._db, self._sql.catalog_version)
        return int(rows[0][0])

    async def bump_catalog_version(self) -> None:
        await self._write(self._sql.bump_catalog_version, ())

    async def set_index_ready(self, index_id: int, ready: bool) -> None:
        await self._write(self._sql.set_ready if ready else self._sql.set_backfilling, (index_id,))

    async def backfill_index_entry(self, index_id: int, key: bytes, document_id: str) -> None:
        self._defer(self._sql.backfill_index_entry, (index_id, key, document_id))

    async def record_commit(self, ts: int, write_set: WriteSet) -> None:
        self._defer(self._sql.record_commit, (ts, encode_write_set(write_set)))  # with COMMIT
        self._own_commits.previous[ts] = self._previous

    async def insert_documents(
        self,
        documents: Sequence[tuple[str, int, bytes]],
        entries: Sequence[tuple[int, bytes, str]],
    ) -> None:
        if 0 < len(documents) <= ROWS_PER_STATEMENT and 0 < len(entries) <= ROWS_PER_STATEMENT:
            # one statement for both (a data-modifying WITH): one less to send and parse
            statement = _with_two(
                self._sql.insert_documents,
                len(documents),
                self._sql.insert_index_entries,
                len(entries),
            )
            self._defer(statement, tuple(itertools.chain(*documents, *entries)))
            return
        self._defer_rows(self._sql.insert_documents, documents)
        self._defer_rows(self._sql.insert_index_entries, entries)

    async def update_document(
        self,
        document_id: str,
        value: bytes,
        removed: Sequence[tuple[int, bytes]],
        added: Sequence[tuple[int, bytes, str]],
    ) -> None:
        self._defer(self._sql.update_document, (value, document_id))
        self._defer_removals(removed)
        self._defer_rows(self._sql.insert_index_entries, added)

    async def delete_document(self, document_id: str, entries: Sequence[tuple[int, bytes]]) -> None:
        self._defer_removals(entries)
        self._defer(self._sql.delete_document, (document_id,))

    def _defer_rows(self, template: str, rows: Sequence[tuple[Any, ...]]) -> None:
        """Multi-row statements of `template` for 3-value rows, `ROWS_PER_STATEMENT` each."""
        for start in range(0, len(rows), ROWS_PER_STATEMENT):
            chunk = rows[start : start + ROWS_PER_STATEMENT]
            statement = _with_rows(template, "(%s, %s, %s)", len(chunk))
            self._defer(statement, tuple(itertools.chain.from_iterable(chunk)))

    def _defer_removals(self, entries: Sequence[tuple[int, bytes]]) -> None:
        """One statement removing the index entries `(index_id, key)`."""
        if entries:
            statement = _with_rows(self._sql.delete_index_keys, "(%s, %s)", len(entries))
            self._defer(statement, tuple(itertools.chain.from_iterable(entries)))

    async def insert_table(self, name: str, number: int) -> None:
        await self._write(self._sql.insert_table, (name, number))

    async def insert_index(self, table: str, name: str, fields: tuple[str, ...]) -> int:
        params = (table, name, json.dumps(list(fields)))
        rows = await self._write(self._sql.insert_index, params)
        return int(rows[0][0])

    async def delete_index(self, index_id: int) -> None:
        await self._write(self._sql.delete_index_entries, (index_id,))
        await self._write(self._sql.delete_index, (index_id,))
        await self._write(self._sql.set_ready, (index_id,))

    @asynccontextmanager
    async def savepoint(self) -> AsyncIterator[None]:
        # Nested savepoints may share a name: each statement acts on the innermost one.
        await _command(self._db, "SAVEPOINT owlat_nested")
        locked = self._locked
        try:
            yield
        except BaseException:
            await _command(self._db, "ROLLBACK TO SAVEPOINT owlat_nested")
            await _command(self._db, "RELEASE SAVEPOINT owlat_nested")
            self._locked = locked  # locks taken since the savepoint are gone
            raise
        await _command(self._db, "RELEASE SAVEPOINT owlat_nested")


_Access = TypeVar("_Access", bound=PostgresReader)


class _Transaction(Generic[_Access]):
    """`async with engine.read()` / `engine.write()`: BEGIN on a pooled connection; COMMIT
    when the block exits normally, ROLLBACK when it raises."""

    __slots__ = ("_access", "_begin", "_connection", "_engine", "_exclusive")

    def __init__(
        self,
        engine: PostgresEngine,
        begin: str,
        access: Callable[[_Connection], _Access],
        exclusive: bool = False,
    ) -> None:
        self._engine = engine
        self._begin = begin
        self._access = access
        self._exclusive = exclusive
        self._connection: _Connection | None = None

    async def __aenter__(self) -> _Access:
        connection = await self._engine._acquire()
        access = self._access(connection)
        _deferred[connection] = [(self._begin, None)]  # sent with the first statement
        if self._exclusive and isinstance(access, PostgresWriter):
            access.defer_lock()  # before the snapshot: it sees every commit
        self._connection = connection
        return access

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        connection = self._connection
        assert connection is not None
        self._connection = None
        idle = psycopg.pq.TransactionStatus.IDLE
        try:
            if error is not None:
                _deferred.pop(connection, None)  # never sent: the transaction is abandoned
                if not isinstance(error, Exception):
                    # interrupted (cancelled) inside the driver, e.g. in a pipeline's exit:
                    # its state is unknown (a connection left in pipeline mode answers the
                    # next transaction's statements with no rows), so the pool drops it
                    await connection.close()
                    return
                if not connection.closed and connection.info.transaction_status != idle:
                    try:
                        await connection.execute("ROLLBACK", prepare=False)
                    except psycopg.Error:
                        await connection.close()  # broken: the pool drops it
                return
            if connection.info.transaction_status == idle and not _deferred.get(connection):
                return  # committed already (record_new_commit)
            try:
                await _command(connection, "COMMIT")
            except WriteConflictError:
                # A deferred write sent with COMMIT failed, so COMMIT never ran: end the
                # aborted transaction here and keep the connection.
                aborted = psycopg.pq.TransactionStatus.INERROR
                if not connection.closed and connection.info.transaction_status == aborted:
                    with contextlib.suppress(psycopg.Error):
                        await connection.execute("ROLLBACK", prepare=False)
                raise
        finally:
            await self._engine._release(connection)


class PostgresEngine:
    """PostgreSQL storage behind a small pool of connections."""

    def __init__(self, url: str, *, pool_size: int = DEFAULT_POOL_SIZE) -> None:
        if pool_size < 1:
            raise OperatorError(
                f"The PostgreSQL pool needs at least one connection (pool size {pool_size}); "
                "set OWLAT_DATABASE_POOL_SIZE to 1 or more"
            )
        self.url = url
        self._sql = load_statements("postgres")
        self._slots = asyncio.Semaphore(pool_size)
        self._idle: list[_Connection] = []
        self._open = False
        self._own_commits = OwnCommits()  # see PostgresCommitFeed
        self._backends: dict[_Connection, int] = {}  # pooled connection → its backend's pid

    async def _connect(self) -> _Connection:
        try:
            return await psycopg.AsyncConnection.connect(
                self.url, autocommit=True, prepare_threshold=0
            )
        except psycopg.Error as error:
            raise EngineError(f"PostgreSQL: cannot connect: {error}") from error

    async def _acquire(self) -> _Connection:
        if not self._open:
            raise EngineError("PostgreSQL engine is not open")
        await self._slots.acquire()
        try:
            if self._idle:
                return self._idle.pop()
            connection = await self._connect()
            self._backends[connection] = connection.info.backend_pid
            self._own_commits.backends.add(connection.info.backend_pid)
            return connection
        except BaseException:
            self._slots.release()
            raise

    async def _release(self, connection: _Connection) -> None:
        _deferred.pop(connection, None)
        try:
            healthy = (
                self._open
                and not connection.closed
                and connection.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
            )
            if healthy:
                self._idle.append(connection)
            else:
                await self._drop(connection)
        finally:
            self._slots.release()

    async def _drop(self, connection: _Connection) -> None:
        """Close a pooled connection (its backend's pid may then serve another node)."""
        self._own_commits.backends.discard(self._backends.pop(connection, 0))
        await connection.close()

    async def open(self) -> None:
        connection = await self._connect()
        try:
            await _command(connection, "BEGIN")
            await _command(connection, self._sql.create_schema)
            await _command(connection, self._sql.create_catalog_schema)
            await _command(connection, "COMMIT")
        finally:
            await connection.close()
        self._open = True

    async def close(self) -> None:
        self._open = False
        idle, self._idle = self._idle, []
        for connection in idle:
            await self._drop(connection)

    def commit_feed(self) -> PostgresCommitFeed:
        return PostgresCommitFeed(
            self._connect, self._fetch_outside_transaction, self._sql, self._own_commits
        )

    async def _fetch_outside_transaction(
        self, statement: str, params: tuple[Any, ...]
    ) -> list[tuple[Any, ...]]:
        """One autocommit statement on a pooled connection (its own snapshot)."""
        connection = await self._acquire()
        try:
            return await _fetch(connection, statement, params)
        finally:
            await self._release(connection)

    def read(self) -> _Transaction[PostgresReader]:
        def reader(connection: _Connection) -> PostgresReader:
            return PostgresReader(connection, self._sql)

        return _Transaction(self, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", reader)

    def write(self, *, exclusive: bool = False) -> _Transaction[PostgresWriter]:
        def writer(connection: _Connection) -> PostgresWriter:
            return PostgresWriter(connection, self._sql, self._own_commits)

        return _Transaction(self, "BEGIN ISOLATION LEVEL SERIALIZABLE", writer, exclusive=exclusive)
