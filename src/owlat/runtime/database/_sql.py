"""Named SQL statements, one `.sql` file per engine, parsed once into a frozen dataclass.

A statement starts at a `-- name: <name>` line, followed by a one-line `-- description`;
everything up to the next `-- name:` line is its text. The dataclass has one field per
statement, so a typo in a statement name is a type error, and `load_statements` refuses a
file that misses a field or defines an unknown one.
"""

from __future__ import annotations

import dataclasses
import re
from importlib import resources

_NAME_LINE = re.compile(r"^-- name: (\w+)\s*$", re.MULTILINE)


@dataclasses.dataclass(frozen=True, slots=True)
class Statements:
    """The statements every engine defines (see sql/<engine>.sql)."""

    create_schema: str
    get_global: str
    set_global: str
    last_ts: str
    lock_commits: str
    allocate_ts: str
    record_commit: str
    commit: str
    commit_channel: str
    commits_after: str
    prune_commits: str
    list_tables: str
    insert_table: str
    list_indexes: str
    insert_index: str
    delete_index: str
    delete_index_entries: str
    get_document: str
    insert_documents: str
    update_document: str
    delete_document: str
    insert_index_entries: str
    delete_index_keys: str
    scan_asc: str
    scan_desc: str
    scan_where_asc: str
    scan_where_desc: str
    scan_ranges: str
    count_where: str
    unknown_where: str
    count_range: str
    # the catalog version and index backfills (catalog.py)
    create_catalog_schema: str
    allocate_ts_versioned: str
    catalog_version: str
    bump_catalog_version: str
    list_backfilling: str
    set_backfilling: str
    set_ready: str
    documents_after: str
    backfill_index_entry: str


def parse_statements(text: str) -> dict[str, str]:
    """Split a named-statements file into {name: statement text}."""
    parts = _NAME_LINE.split(text)
    statements: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        lines = [line for line in body.strip().splitlines() if not line.startswith("--")]
        if name in statements:
            raise ValueError(f"SQL statement {name!r} is defined twice")
        statements[name] = "\n".join(lines).strip()
    return statements


def load_statements(engine: str) -> Statements:
    """Load `sql/<engine>.sql` into `Statements`."""
    text = resources.files("owlat.runtime.database.sql").joinpath(f"{engine}.sql").read_text()
    statements = parse_statements(text)
    expected = {field.name for field in dataclasses.fields(Statements)}
    missing, unknown = expected - statements.keys(), statements.keys() - expected
    if missing or unknown:
        raise ValueError(
            f"{engine}.sql does not match Statements: missing {sorted(missing)}, "
            f"unknown {sorted(unknown)}"
        )
    return Statements(**statements)
