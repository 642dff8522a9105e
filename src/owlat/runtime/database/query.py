"""`ctx.db.query(table)`: index ranges, order, filters, and the terminal operations.

An index range is equalities on a prefix of the index's fields, then at most one lower and
one upper bound on the next field. With the order-preserving encoding (keys.py) it becomes
one byte interval [low, high): equalities give a key prefix P; `gte v` starts at P+enc(v),
`gt v` at P+enc(v)+0xFF (above every key whose value is exactly v); `lt v` ends before
P+enc(v), `lte v` before P+enc(v)+0xFF. The scan walks the interval in batches and records
in the read set only the part it actually walked, so documents beyond a `take(n)` don't
invalidate it.

Pagination cursors are opaque strings: the key of the last document returned, or the end
of the range. A page resumes strictly after its cursor's key, so documents inserted or
deleted between pages never cause duplicates, nor gaps for documents present throughout.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import AsyncIterator, Callable
from typing import Any

from owlat.runtime.database.catalog import IndexInfo, TableInfo
from owlat.runtime.database.commits import Interval
from owlat.runtime.database.engine import KEY_MAX, Predicate
from owlat.runtime.database.filters import Expression, FilterBuilder
from owlat.runtime.database.keys import encode_value
from owlat.runtime.database.pushdown import compile_filters
from owlat.runtime.database.transaction import Transaction
from owlat.runtime.errors import QueryBuildError
from owlat.runtime.schema import BY_CREATION_TIME
from owlat.runtime.types import Document
from owlat.runtime.values import normalize_value

_FIRST_BATCH = 64
_MAX_BATCH = 1024
_CURSOR_AFTER = b"\x01"
_CURSOR_END = b"\x02"


def _after_values(prefix: bytes) -> bytes:
    """Above every key that starts with the complete value encodings `prefix`.

    The byte after a complete value is the next value's tag (≤ 0x15), whereas an encoding
    that merely extends it (`"ab"` vs `"ab\\x00c"`) continues with 0xFF — so `prefix + 0xFF`
    separates the two, where a plain byte-string successor would not.
    """
    return prefix + b"\xff"


class IndexRange:
    """The `q` of `with_index(name, lambda q: q.eq(...).gt(...))`."""

    def __init__(self, index: IndexInfo) -> None:
        self._index = index
        self._fields = (*index.fields, "_creationTime")
        self._prefix = b""
        self._eq_count = 0
        self._lower: tuple[str, Any] | None = None
        self._upper: tuple[str, Any] | None = None
        self._range_field: str | None = None

    def _describe(self) -> str:
        return f"index {self._index.table}.{self._index.name} on {list(self._fields)}"

    def _check_next(self, op: str, field: str) -> None:
        if self._eq_count >= len(self._fields):
            raise QueryBuildError(
                f"{op}({field!r}): every field of {self._describe()} is already fixed by eq()"
            )
        expected = self._fields[self._eq_count]
        if field != expected:
            raise QueryBuildError(
                f"{op}({field!r}) is out of order for {self._describe()}: the next field "
                f"must be {expected!r} (equalities on a prefix of the fields, then bounds on "
                "the next one)"
            )

    def eq(self, field: str, value: Any) -> IndexRange:
        if self._range_field is not None:
            raise QueryBuildError(
                f"eq({field!r}) after a range bound on "
                f"{self._range_field!r}: equalities must come first"
            )
        self._check_next("eq", field)
        self._prefix += encode_value(normalize_value(value))
        self._eq_count += 1
        return self

    def _bound(self, op: str, field: str, value: Any) -> IndexRange:
        if self._range_field is None:
            self._check_next(op, field)
            self._range_field = field
        elif field != self._range_field:
            raise QueryBuildError(
                f"{op}({field!r}): range bounds must all be on {self._range_field!r}"
            )
        bound = (op, normalize_value(value))
        if op in ("gt", "gte"):
            if self._lower is not None:
                raise QueryBuildError(f"{op}({field!r}): the lower bound is already set")
            self._lower = bound
        else:
            if self._upper is not None:
                raise QueryBuildError(f"{op}({field!r}): the upper bound is already set")
            self._upper = bound
        return self

    def gt(self, field: str, value: Any) -> IndexRange:
        return self._bound("gt", field, value)

    def gte(self, field: str, value: Any) -> IndexRange:
        return self._bound("gte", field, value)

    def lt(self, field: str, value: Any) -> IndexRange:
        return self._bound("lt", field, value)

    def lte(self, field: str, value: Any) -> IndexRange:
        return self._bound("lte", field, value)

    def interval(self) -> Interval:
        """The byte interval [low, high) this range covers."""
        low, high = self._prefix, _after_values(self._prefix) if self._prefix else KEY_MAX
        if self._lower is not None:
            op, value = self._lower
            key = self._prefix + encode_value(value)
            low = key if op == "gte" else _after_values(key)
        if self._upper is not None:
            op, value = self._upper
            key = self._prefix + encode_value(value)
            high = key if op == "lt" else _after_values(key)
        return Interval(low, high)


def encode_cursor(key: bytes | None) -> str:
    """A cursor after `key`, or the end of the range when `key` is None."""
    raw = _CURSOR_END if key is None else _CURSOR_AFTER + key
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


# The cursor at the end of any range: a finished page's continueCursor, and the endCursor
# that lets a page run to the end of its range.
END_CURSOR = encode_cursor(None)


def decode_cursor(cursor: str) -> bytes | None:
    """The key a cursor points after (None: the end of the range)."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    except (binascii.Error, ValueError):
        raw = b""
    if raw == _CURSOR_END:
        return None
    if raw[:1] == _CURSOR_AFTER and len(raw) > 1:
        return raw[1:]
    raise QueryBuildError(f"Invalid pagination cursor {cursor!r}")


class Query:
    """A query on one table; build it, then run one terminal operation (awaitable)."""

    def __init__(self, transaction: Transaction, table: TableInfo) -> None:
        self._txn = transaction
        self._table = table
        self._index: IndexInfo = table.indexes[BY_CREATION_TIME]
        self._interval = Interval(b"", KEY_MAX)
        self._descending = False
        self._filters: list[Expression] = []
        self._index_chosen = False
        self._order_chosen = False
        self._predicate: Predicate | None = None
        self._compiled = False

    # -- building ----------------------------------------------------------------------

    def with_index(
        self, name: str, index_range: Callable[[IndexRange], IndexRange] | None = None
    ) -> Query:
        """Read through index `name`, restricted by `index_range` (all of it if None)."""
        if self._index_chosen or self._order_chosen or self._filters:
            raise QueryBuildError("with_index() must come first, and only once")
        self._index = self._txn.catalog.index(self._table.name, name)
        self._index_chosen = True
        if index_range is not None:
            built = index_range(IndexRange(self._index))
            if not isinstance(built, IndexRange):
                raise QueryBuildError(
                    f"The index range of {name!r} must return the range builder "
                    f"(q.eq(...)...), got {built!r}"
                )
            self._interval = built.interval()
        return self

    def full_table_scan(self) -> Query:
        """Read the whole table in creation order (the default)."""
        return self.with_index(BY_CREATION_TIME)

    def order(self, direction: str) -> Query:
        """`"asc"` (default) or `"desc"` along the index."""
        if direction not in ("asc", "desc"):
            raise QueryBuildError(f'order() takes "asc" or "desc", got {direction!r}')
        if self._order_chosen:
            raise QueryBuildError("order() can only be called once")
        self._order_chosen = True
        self._descending = direction == "desc"
        return self

    def filter(self, predicate: Callable[[FilterBuilder], Expression]) -> Query:
        """Keep documents for which `predicate(q)` evaluates to True."""
        expression = predicate(FilterBuilder())
        if not isinstance(expression, Expression):
            raise QueryBuildError(
                f"filter() must return an expression built from q, got {expression!r}"
            )
        self._filters.append(expression)
        return self

    # -- running -----------------------------------------------------------------------

    def _keep(self, document: Document) -> bool:
        return all(expression.evaluate(document) is True for expression in self._filters)

    def _pushed_down(self) -> Predicate | None:
        """The filters as the engine's SQL predicate (None: nothing to push down)."""
        if not self._compiled:
            self._predicate = compile_filters(self._txn.engine.dialect, self._filters)
            self._compiled = True
        return self._predicate

    async def _run(
        self, limit: int | None, interval: Interval
    ) -> tuple[list[tuple[bytes, Document]], bool]:
        """Up to `limit` matching documents of `interval`, and whether it was exhausted."""
        low, high = interval.low, interval.high
        results: list[tuple[bytes, Document]] = []
        batch = _FIRST_BATCH if limit is None else max(1, min(limit + 1, _MAX_BATCH))
        walked: bytes | None = None
        exhausted = False
        # without filters (the usual index lookup): nothing to push down nor to evaluate
        predicate = self._pushed_down() if self._filters else None
        keep = self._keep if self._filters else None
        while low < high:
            rows = await self._txn.scan(self._index, low, high, self._descending, batch, predicate)
            for key, document in rows:
                walked = key
                if keep is None or keep(document):
                    results.append((key, document))
                    if limit is not None and len(results) >= limit:
                        break
            else:
                if len(rows) < batch:
                    exhausted = True
                    break
                if self._descending:
                    high = rows[-1][0]
                else:
                    low = rows[-1][0] + b"\x00"
                batch = min(batch * 2, _MAX_BATCH)
                continue
            break
        else:
            exhausted = True
        if exhausted or walked is None:
            read = interval
        elif self._descending:
            read = Interval(walked, interval.high)
        else:
            read = Interval(interval.low, walked + b"\x00")
        self._txn.record_range(self._index, read)
        return results, exhausted

    async def collect(self) -> list[Document]:
        """Every matching document."""
        results, _ = await self._run(None, self._interval)
        return [document for _, document in results]

    async def take(self, n: int) -> list[Document]:
        """The first `n` matching documents."""
        if isinstance(n, bool) or not isinstance(n, int | float) or n < 0 or n != int(n):
            raise QueryBuildError(f"take() needs a non-negative whole number, got {n!r}")
        if n == 0:
            return []
        results, _ = await self._run(int(n), self._interval)
        return [document for _, document in results]

    async def count(self) -> int:
        """How many documents match; the whole range is in the read set.

        The database counts the index range itself, and the documents the pushed-down
        filter accepts, without loading them; only documents it cannot decide come back
        to be evaluated here.
        """
        predicate = self._pushed_down()
        if self._filters and predicate is None:
            results, _ = await self._run(None, self._interval)
            return len(results)
        interval = self._interval
        count, undecided = await self._txn.count_where(
            self._index, interval.low, interval.high, predicate
        )
        self._txn.record_range(self._index, interval)
        return count + sum(1 for document in undecided if self._keep(document))

    async def first(self) -> Document | None:
        """The first matching document, or None."""
        results, _ = await self._run(1, self._interval)  # `take(1)`, one frame fewer
        return results[0][1] if results else None

    async def unique(self) -> Document | None:
        """The only matching document, None if there is none; more than one is an error."""
        results, _ = await self._run(2, self._interval)
        if len(results) > 1:
            raise QueryBuildError(
                f"unique() query returned more than one result from table "
                f"{self._table.name!r}: {results[0][1]['_id']}, {results[1][1]['_id']}, ..."
            )
        return results[0][1] if results else None

    async def paginate(self, options: dict[str, Any]) -> dict[str, Any]:
        """One page: `{"page", "isDone", "continueCursor"}`.

        `options`: `numItems` (≥ 0), `cursor` (None: from the start), optional `endCursor`
        (the page ends there instead of after numItems — used to keep reactive pages
        stable). Extra keys such as the npm client's `id` are ignored.
        """
        if not isinstance(options, dict):
            raise QueryBuildError(f"paginate() takes {{'numItems', 'cursor'}}, got {options!r}")
        num_items = options.get("numItems")
        if (
            isinstance(num_items, bool)
            or not isinstance(num_items, int | float)
            or (num_items < 0 or num_items != int(num_items))
        ):
            raise QueryBuildError(
                f"paginate() needs a non-negative whole numItems, got {num_items!r}"
            )
        cursor = options.get("cursor")
        if cursor is not None and not isinstance(cursor, str):
            raise QueryBuildError(f"paginate() cursor must be a string or None, got {cursor!r}")
        end_cursor = options.get("endCursor")
        if end_cursor is not None and not isinstance(end_cursor, str):
            raise QueryBuildError(f"paginate() endCursor must be a string, got {end_cursor!r}")

        low, high = self._interval.low, self._interval.high
        if cursor is not None:
            after = decode_cursor(cursor)
            if after is None:
                self._txn.record_range(self._index, Interval(low, low))
                return {"page": [], "isDone": True, "continueCursor": cursor}
            if self._descending:
                high = min(high, after)
            else:
                low = max(low, after + b"\x00")
        limit: int | None = int(num_items)
        if end_cursor is not None:
            limit = None
            end = decode_cursor(end_cursor)
            if end is not None:
                if self._descending:
                    low = max(low, end)
                else:
                    high = min(high, end + b"\x00")
        elif limit == 0:
            raise QueryBuildError("paginate() needs numItems of at least 1")
        results, exhausted = await self._run(limit, Interval(low, high))
        page = [document for _, document in results]
        if end_cursor is not None:
            return {
                "page": page,
                "isDone": decode_cursor(end_cursor) is None,
                "continueCursor": end_cursor,
            }
        if exhausted:
            return {"page": page, "isDone": True, "continueCursor": encode_cursor(None)}
        return {"page": page, "isDone": False, "continueCursor": encode_cursor(results[-1][0])}

    def __aiter__(self) -> AsyncIterator[Document]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Document]:
        for document in await self.collect():
            yield document
