"""CSV for contact imports and exports: reading a stored file in byte ranges, splitting
whole records out of a chunk, the column mapping, cell conversion and export rows.

Records are found without a per-character loop: a chunk is split on newlines and lines are
joined while their count of `"` is odd (a quoted field runs on), so a record cut at the
end of a chunk is left for the next read, and a quoted field may hold newlines. Complete
records are then parsed by the `csv` module. Files are UTF-8, with or without a BOM.

A quote that is never closed must not swallow the rows after it. Lines joined into one
record are kept only if they are one well-formed record (the `csv` module, strict, finds
exactly one row: every line break is inside a quoted field) within `MAX_RECORD_LINES`
lines. Otherwise (the quotes never balance before the end of the file or within that many
lines, or balance only at a stray `"` further down) the first line is a record on its own
and splitting resumes at the next line: the first line is *unclosed* (a row error of the
import) unless it is well-formed alone (a `"` inside an unquoted field, `5" tall`).

Formula injection (OWASP's "CSV injection"): a spreadsheet runs a cell that starts with
`=`, `+`, `-`, `@`, a tab or a carriage return as a formula, so a contact named
`=HYPERLINK(...)` could act in whoever opens an export. Every exported cell starting with
one of them, after any leading `'`s, gets one more `'` in front (`escape_formula`), which
spreadsheets show as text. A plain number (`-5`, `+1.5`, `-2e3`) is left alone: it cannot
be a formula, and a negative number stays a number. Imports take one `'` off a cell that
is `'`s then one of those characters (`unescape_formula`), so an export imports back
exactly as it was, and so do files that prefixed their numbers too.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from collections.abc import Iterable
from typing import Any, NamedTuple

from owlat.app.lib.errors import invalid
from owlat.runtime import ActionCtx

BOM = b"\xef\xbb\xbf"
CHUNK_BYTES = 1 << 20  # what the worker reads at once
MAX_RECORD_BYTES = 1 << 22  # a longer record is refused
MAX_RECORD_LINES = 100  # a quoted field running over more lines is taken as never closed
UNCLOSED = 'A quoted field in this row is never closed (a " without its closing ")'
FIELDS = ("email", "firstName", "lastName", "language", "timezone")
SKIP = "skip"
PROPERTY_PREFIX = "property:"
EXPORT_COLUMNS = ("email", "firstName", "lastName", "language", "timezone", "source", "createdAt")
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")
_TRUE = frozenset({"true", "yes", "1", "y"})
_FALSE = frozenset({"false", "no", "0", "n"})


# -- reading the stored file --------------------------------------------------------------


async def read_range(ctx: ActionCtx, storage_id: str, start: int, end: int) -> bytes:
    """Bytes `[start, end)` of the stored file (read as a range, never the whole file)."""
    data = await ctx.storage.read_range(storage_id, int(start), int(end))
    if data is None:
        raise FileNotFoundError("The uploaded file was deleted")
    return bytes(data)


class Split(NamedTuple):
    """Whole records split out of the start of a chunk."""

    records: list[bytes]  # without their final newline
    used: int  # the bytes they take, with their newlines
    unclosed: frozenset[int]  # the records (one line each) with a quote never closed


def split_records(data: bytes, *, at_end: bool) -> Split:
    """The complete records at the start of `data` (see the module's docstring). Unless
    `at_end` (`data` runs to the end of the file), a record that may run on past the end
    of `data` is left out."""
    lines = data.split(b"\n")
    if not at_end:
        lines.pop()  # after the last newline: cut, or empty
    records: list[bytes] = []
    unclosed: set[int] = set()
    start = 0
    while start < len(lines):
        line = lines[start]
        quotes = line.count(b'"')
        if quotes % 2 == 0:  # most records: one line
            records.append(line)
            start += 1
            continue
        end = start + 1
        while quotes % 2 and end < len(lines) and end - start < MAX_RECORD_LINES:
            quotes += lines[end].count(b'"')
            end += 1
        if quotes % 2 and end == len(lines) and not at_end and end - start < MAX_RECORD_LINES:
            break  # the quoted field may close in the next chunk
        record = b"\n".join(lines[start:end])
        if quotes % 2 == 0 and _one_record(record):
            records.append(record)
            start = end
            continue
        if not _one_record(line):
            unclosed.add(len(records))
        records.append(line)
        start += 1
    used = sum(len(record) + 1 for record in records)
    return Split(records, min(used, len(data)), frozenset(unclosed))


def _one_record(data: bytes) -> bool:
    """Whether `data` is exactly one well-formed CSV record."""
    text = data.decode("utf-8", "replace")
    try:
        return len(list(csv.reader(io.StringIO(text, newline=""), strict=True))) == 1
    except csv.Error:
        return False


def parse_records(
    records: list[bytes], unclosed: frozenset[int] = frozenset()
) -> list[list[str] | None]:
    """Each record's cells (a record holding only a line break gives []), None for an
    unclosed one. Raises `UnicodeDecodeError` for bytes that are not UTF-8."""
    rows: list[list[str] | None] = []
    start = 0
    for end in [*sorted(unclosed), len(records)]:
        if end > start:  # the records between two unclosed ones parse together
            text = b"\n".join(records[start:end]).decode("utf-8")
            rows.extend(csv.reader(io.StringIO(text, newline=""), strict=False))
        if end < len(records):
            rows.append(None)
        start = end + 1
    return rows


def header_of(data: bytes, *, at_end: bool) -> tuple[list[str], int] | None:
    """The header row of a file starting with `data` (`at_end`: all of it) and where the
    first data row starts, or None if `data` holds no complete first record. Raises
    ValueError if the header has a quote never closed."""
    start = len(BOM) if data.startswith(BOM) else 0
    records, _, unclosed = split_records(data[start:], at_end=at_end)
    if not records:
        return None
    if 0 in unclosed:
        raise ValueError("A quoted field in the header row is never closed")
    header = next(iter(parse_records(records[:1])), None) or []
    first = start + len(records[0]) + 1
    return [cell.strip() for cell in header], first


class RecordCounter:
    """Counts the non-empty records of a file fed to it chunk by chunk (the progress
    denominator), keeping only a cut record between chunks."""

    def __init__(self) -> None:
        self.count = 0
        self._rest = b""

    def feed(self, chunk: bytes) -> None:
        data = self._rest + chunk
        self._count(data, at_end=False)
        if len(self._rest) > MAX_RECORD_BYTES:
            self._rest = b""  # a record too long: the import reports it

    def finish(self) -> int:
        self._count(self._rest, at_end=True)
        return self.count

    def _count(self, data: bytes, *, at_end: bool) -> None:
        records, used, _ = split_records(data, at_end=at_end)
        self.count += sum(1 for record in records if record.strip(b"\r"))
        self._rest = data[used:]


# -- the mapping --------------------------------------------------------------------------


def check_mapping(mapping: dict[str, str], property_keys: Iterable[str]) -> str:
    """Check a mapping (CSV column -> field, `property:<key>` or `skip`); returns the email
    column."""
    keys = set(property_keys)
    emails = [column for column, target in mapping.items() if target == "email"]
    for column, target in mapping.items():
        if not column.strip():
            raise invalid("INVALID_MAPPING", "Mapping column names must not be empty")
        if target in FIELDS or target == SKIP:
            continue
        if target.startswith(PROPERTY_PREFIX):
            key = target[len(PROPERTY_PREFIX) :]
            if key not in keys:
                raise invalid(
                    "UNKNOWN_PROPERTY",
                    f'Column "{column}" maps to unknown property "{key}": define it in '
                    "contact properties first",
                )
            continue
        raise invalid(
            "INVALID_MAPPING",
            f'Column "{column}" maps to {target!r}: use one of {", ".join(FIELDS)}, '
            f"property:<key> or skip",
        )
    if len(emails) != 1:
        found = ", ".join(f'"{c}"' for c in emails) or "none"
        raise invalid("INVALID_MAPPING", f"Map exactly one column to email (found {found})")
    targets = [t for t in mapping.values() if t != SKIP]
    doubled = sorted({t for t in targets if targets.count(t) > 1})
    if doubled:
        raise invalid("INVALID_MAPPING", f"More than one column maps to {', '.join(doubled)}")
    return emails[0]


def column_positions(header: list[str], mapping: dict[str, str]) -> dict[str, int]:
    """Where each mapped (not skipped) column is in `header`; a clear error otherwise."""
    positions: dict[str, int] = {}
    for column, target in mapping.items():
        if target == SKIP:
            continue
        found = [index for index, name in enumerate(header) if name == column]
        if not found:
            raise ValueError(
                f'The file has no column "{column}" (its header: {", ".join(header)[:300]})'
            )
        if len(found) > 1:
            raise ValueError(f'The file has more than one column named "{column}"')
        positions[column] = found[0]
    return positions


def property_cell(kind: str, text: str) -> Any:
    """A CSV cell as the value `clean_property_value` checks (numbers and booleans are
    parsed; a cell that is not one is passed on as text and refused there)."""
    if kind == "number":
        try:
            return float(text)
        except ValueError:
            return text
    if kind == "boolean":
        lowered = text.lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        return text
    return text


# -- export -------------------------------------------------------------------------------


def escape_formula(cell: str) -> str:
    """`cell` as a spreadsheet shows it as text: with a `'` in front if it starts with a
    formula character after any `'`s (a plain number is left alone)."""
    if cell.lstrip("'").startswith(FORMULA_STARTS) and not _NUMBER.fullmatch(cell):
        return "'" + cell
    return cell


def unescape_formula(cell: str) -> str:
    """A cell of an imported file without the `'` that `escape_formula` (or another tool
    following OWASP's rule) put in front of a formula character."""
    if cell.startswith("'") and cell.lstrip("'").startswith(FORMULA_STARTS):
        return cell[1:]
    return cell


def export_header(property_keys: list[str]) -> list[str]:
    return [escape_formula(name) for name in (*EXPORT_COLUMNS, *property_keys, "unsubscribedAt")]


def _iso(ms: float | None) -> str:
    if ms is None:
        return ""
    moment = dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _cell(value: Any, kind: str | None) -> str:
    if value is None:
        return ""
    if kind == "date":
        return _iso(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def export_row(contact: dict[str, Any], property_types: dict[str, str]) -> list[str]:
    """A contact as an export row (columns of `export_header(list(property_types))`),
    formulas escaped."""
    properties = contact.get("properties") or {}
    cells = [
        *(_cell(contact.get(field), None) for field in EXPORT_COLUMNS[:-1]),
        _iso(contact.get("createdAt")),
        *(_cell(properties.get(key), kind) for key, kind in property_types.items()),
        _iso(contact.get("unsubscribedAt")),
    ]
    return [escape_formula(cell) for cell in cells]
