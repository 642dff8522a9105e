"""Ad-hoc segment count (issue 19 goal 6): which storage can count 1M contacts in 1.5 s.

    .venv/bin/python bench/bench_adhoc_storage.py [--rows N] [--repeat N] [--keep PATH]

Raw sqlite3 only (no Owlat code runs the counts), on one synthetic file holding N contacts
of one organization in each layout, all counted in the same run. The count is the
builder's 3-condition segment on custom properties (plan = "pro" case-insensitive,
score >= 50, signup after 2023-12-31 23:59:59.999, live contacts only):

- typed columns: the baseline of the goal (a plain table, one column per property, an
  index on the organization);
- Owlat's layout: each contact a Convex JSON document in `owlat_documents`, the `by_org`
  index range joined to it (what `count_where` runs), with the predicate as the runtime's
  push-down compiles it today, the join alone, one json1 call per row (the floor of any
  predicate over this document), and the best hand-written json1 predicate;
- a compact side document per live contact (organization, contact id and the custom
  properties, strings lower-cased, ~170 bytes) in the same layout: the compiled predicate
  and one json1 call per row (the floor of any JSON side document);
- index entries per (property, value) of each live contact, and per (contact, property,
  value): the three ranges' contacts intersected, or the first range's contacts probed
  for the other two conditions, no document read (what an index-only plan would cost;
  Owlat's indexes cannot express either today: one entry per document and index, and no
  plan over several ranges).

Figures are process CPU seconds per count (the lowest of `--repeat` runs) and their ratio
to the typed-columns baseline.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import sqlite3
import struct
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from owlat.runtime.database.filters import FilterBuilder
from owlat.runtime.database.pushdown import SqliteDialect, compile_filters

PLANS = ("free", "pro", "team", "enterprise")
ORG = "k57" + "a" * 29
LIST = "k97" + "b" * 29
AFTER = 1_704_067_200_000.0 - 1  # signup after this (the builder's `after` 2024-01-01)
CONTACTS, SIDE, VALUES, BY_CONTACT = 1, 2, 3, 4  # index ids
FLOORS = ("contacts: the join", "contacts: one json1", "side document: one json1")
DOCUMENTS = """
CREATE TABLE owlat_documents (
    id TEXT PRIMARY KEY, table_number INTEGER NOT NULL, value BLOB NOT NULL
) WITHOUT ROWID;
CREATE TABLE owlat_index_entries (
    index_id INTEGER NOT NULL, key BLOB NOT NULL, document_id TEXT NOT NULL,
    PRIMARY KEY (index_id, key)
) WITHOUT ROWID;
CREATE TABLE typed (
    id INTEGER PRIMARY KEY, org TEXT NOT NULL, plan TEXT, score REAL, signup REAL,
    deleted REAL
);
CREATE INDEX typed_org ON typed (org);
"""
COUNT_WHERE = """
SELECT r, count(*) FROM (
    SELECT ({predicate}) AS r FROM owlat_index_entries AS e
    JOIN owlat_documents AS d ON d.id = e.document_id
    WHERE e.index_id = ? AND e.key >= ? AND e.key < ?
) GROUP BY r
"""


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def number_key(value: float) -> bytes:
    """An order-preserving 8-byte encoding of a float (sign bit flipped, or all bits)."""
    (bits,) = struct.unpack(">Q", struct.pack(">d", value))
    return struct.pack(">Q", bits ^ (0xFFFFFFFFFFFFFFFF if bits >> 63 else 1 << 63))


def encoded(value: Any) -> bytes:
    """A property value as ordered text (a float as its ordered bytes in hex)."""
    return value.encode() + b"|" if isinstance(value, str) else number_key(value).hex().encode()


def value_key(name: str, value: Any) -> bytes:
    """The (property, value) index key prefix of `value` (the side row's id follows)."""
    return ORG.encode() + b"|" + name.encode() + b"|" + encoded(value)


def rows(count: int) -> Iterator[tuple[Any, ...]]:
    rnd = random.Random(1)
    for i in range(count):
        created = 1.76e12 + i
        plan = rnd.choice(PLANS)
        stored_plan = plan.capitalize() if i % 7 == 0 else plan
        score, signup = float(rnd.randrange(100)), AFTER + 1 + rnd.randrange(-400, 400) * 864e5
        deleted = 1.7e12 if i % 50 == 0 else None
        contact_id, side_id = f"c{i:031d}", f"s{i:031d}"
        properties = {"plan": stored_plan, "score": score, "signup": signup}
        contact: dict[str, Any] = {
            "_creationTime": created,
            "_id": contact_id,
            "createdAt": created,
            "email": f"user{i:07d}@example.com",
            "firstName": f"First{i}",
            "hasOpened": False,
            "lastName": f"Last{i}",
            "lastNameKey": f"last{i}",
            "mailingListIds": [LIST],
            "nameKey": f"first{i} last{i}",
            "organizationId": ORG,
            "properties": properties,
            "source": "import",
            "updatedAt": created,
        }
        if deleted is not None:
            contact["deletedAt"] = deleted
        side = {
            "_creationTime": created,
            "_id": side_id,
            "contactId": contact_id,
            "organizationId": ORG,
            "properties": {**properties, "plan": stored_plan.lower()},
        }
        yield contact, side, (i, ORG, stored_plan, score, signup, deleted)


def build(path: Path, count: int) -> None:
    db = sqlite3.connect(path, isolation_level=None)
    db.executescript(DOCUMENTS)
    db.execute("BEGIN")
    for contact, side, typed in rows(count):
        key = ORG.encode() + b"\x00" + number_key(contact["_creationTime"])
        db.execute("INSERT INTO typed VALUES (?, ?, ?, ?, ?, ?)", typed)
        document = json.dumps(contact, separators=(",", ":")).encode()
        db.execute("INSERT INTO owlat_documents VALUES (?, 1, ?)", (contact["_id"], document))
        db.execute(
            "INSERT INTO owlat_index_entries VALUES (?, ?, ?)",
            (CONTACTS, key + contact["_id"].encode(), contact["_id"]),
        )
        if "deletedAt" in contact:
            continue  # side rows exist for live contacts only
        document = json.dumps(side, separators=(",", ":")).encode()
        db.execute("INSERT INTO owlat_documents VALUES (?, 2, ?)", (side["_id"], document))
        db.execute(
            "INSERT INTO owlat_index_entries VALUES (?, ?, ?)",
            (SIDE, key + side["_id"].encode(), side["_id"]),
        )
        for name, value in side["properties"].items():
            db.execute(
                "INSERT INTO owlat_index_entries VALUES (?, ?, ?)",
                (VALUES, value_key(name, value) + side["_id"].encode(), side["_id"]),
            )
            db.execute(
                "INSERT INTO owlat_index_entries VALUES (?, ?, ?)",
                (BY_CONTACT, f"{side['_id']}|{name}|".encode() + encoded(value), side["_id"]),
            )
    db.execute("COMMIT")
    db.close()


def lower(value: Any) -> Any:
    """`owlat_lower`, as the engine registers it: Python's own lower-casing."""
    return value.lower() if isinstance(value, str) else value


def compiled(side: bool) -> tuple[str, tuple[Any, ...]]:
    """The segment as the push-down compiles it (segment_filters' shape of each test)."""
    q = FilterBuilder()
    plan = q.field("properties.plan")
    conditions = [
        q.eq(plan if side else q.lower(plan), "pro"),
        *(
            q.and_(q.is_type(q.field(f"properties.{name}"), "number"), test)
            for name, test in (
                ("score", q.gte(q.field("properties.score"), 50.0)),
                ("signup", q.gt(q.field("properties.signup"), AFTER)),
            )
        ),
    ]
    if not side:
        conditions.insert(0, q.is_type(q.field("deletedAt"), "undefined"))
    predicate = compile_filters(SqliteDialect(), [q.and_(*conditions)])
    assert predicate is not None
    return predicate.sql, predicate.params


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--keep", type=Path, help="build (or reuse) the file at PATH")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = options.keep or Path(folder) / "adhoc.sqlite"
        if not path.exists():
            build(path, options.rows)
        run(path, options.repeat)


def run(path: Path, repeat: int) -> None:
    db = sqlite3.connect(path, isolation_level=None)
    db.create_function("owlat_lower", 1, lower, deterministic=True)
    db.execute("PRAGMA mmap_size = 4294967296")  # as the engine's readers
    plan = "json_extract(d.value, '$.properties.plan')"
    rest = (
        " AND json_extract(d.value, '$.properties.score') >= 50.0"
        f" AND json_extract(d.value, '$.properties.signup') > {AFTER!r}"
    )
    cases: list[tuple[str, str, tuple[Any, ...]]] = [
        (
            "typed columns (the goal's baseline)",
            "SELECT count(*) FROM typed WHERE org = ? AND lower(plan) = 'pro' AND score >= 50"
            f" AND signup > {AFTER!r} AND deleted IS NULL",
            (ORG,),
        ),
        ("contacts: the predicate compiled today", *_where(CONTACTS, *compiled(False))),
        ("contacts: the join alone", *_where(CONTACTS, "1", ())),
        ("contacts: one json1 call per row", *_where(CONTACTS, "json_type(d.value)", ())),
        (
            "contacts: best hand-written json1 predicate",
            *_where(
                CONTACTS,
                f"json_type(d.value, '$.deletedAt') IS NULL AND owlat_lower({plan}) = 'pro'{rest}",
                (),
            ),
        ),
        ("side document: the predicate compiled", *_where(SIDE, *compiled(True))),
        ("side document: one json1 call per row", *_where(SIDE, "json_type(d.value)", ())),
        (
            "side document: best hand-written json1 predicate",
            *_where(SIDE, f"{plan} = 'pro'{rest}", ()),
        ),
        (
            "index entries per (property, value): 3 ranges intersected",
            "SELECT count(*) FROM ("
            + " INTERSECT ".join(
                f"SELECT document_id FROM owlat_index_entries WHERE index_id = {VALUES}"
                " AND key >= ? AND key < ?"
                for _ in range(3)
            )
            + ")",
            (
                value_key("plan", "pro"),
                value_key("plan", "pro") + b"\xff",
                value_key("score", 50.0),
                value_key("score", float("inf")),
                value_key("signup", AFTER) + b"\xff",
                value_key("signup", float("inf")),
            ),
        ),
        (
            "index entries: plan's range, score and signup probed per row",
            f"SELECT count(*) FROM owlat_index_entries AS a WHERE a.index_id = {VALUES}"
            " AND a.key >= ? AND a.key < ?"
            + "".join(
                " AND EXISTS (SELECT 1 FROM owlat_index_entries AS b"
                f" WHERE b.index_id = {BY_CONTACT} AND b.key >= CAST(a.document_id || ? AS BLOB)"
                " AND b.key < CAST(a.document_id || ? AS BLOB))"
                for _ in range(2)
            ),
            (
                value_key("plan", "pro"),
                value_key("plan", "pro") + b"\xff",
                b"|score|" + encoded(50.0),
                b"|score|" + encoded(float("inf")),
                b"|signup|" + encoded(AFTER) + b"\xff",
                b"|signup|" + encoded(float("inf")),
            ),
        ),
    ]
    baseline, expected = 0.0, None
    print(f"{'SQL per count (raw sqlite3 ' + sqlite3.sqlite_version + ')':60} {'CPU s':>7}")
    for label, statement, params in cases:
        seconds, result = best(db, statement, params, repeat)
        baseline, expected = baseline or seconds, expected or result
        if label.startswith(FLOORS):
            result_text = f"(reads {result:,} rows)"
        else:
            assert result == expected, (label, result, expected)
            result_text = f"count {result:,}"
        print(f"{label:60} {seconds:7.2f} {seconds / baseline:6.1f}x  {result_text}")
    with open("/proc/loadavg") as load:
        print("load average:", load.read().strip())


def _where(index_id: int, sql: str, params: tuple[Any, ...]) -> tuple[str, tuple[Any, ...]]:
    """`count_where` of the organization's whole range of `index_id` with `sql`."""
    low, high = ORG.encode() + b"\x00", ORG.encode() + b"\x01"
    return COUNT_WHERE.replace("{predicate}", sql), (*params, index_id, low, high)


def best(
    db: sqlite3.Connection, statement: str, params: tuple[Any, ...], repeat: int
) -> tuple[float, int]:
    """The lowest CPU seconds of `repeat` runs, and the rows counted (a `count_where`
    counts the rows whose predicate is not 0 or NULL)."""
    samples, result = [], 0
    for _ in range(repeat):
        start = cpu()
        found = db.execute(statement, params).fetchall()
        samples.append(cpu() - start)
        result = found[0][0] if len(found[0]) == 1 else sum(n for r, n in found if r)
    return min(samples), result


if __name__ == "__main__":
    main()
