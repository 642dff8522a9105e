"""Runtime core throughput vs raw sqlite3, measured in the same run.

    .venv/bin/python bench/bench_runtime.py [--inserts N] [--points N] [--ranges N]
        [--bulk N] [--bulk-runs N] [--touches N] [--repeat N]

(1) single-insert mutations/s through the runtime (`messages:send`: argument validation,
schema validation, id, two index entries, commit timestamp) vs raw sqlite3 inserting the
same row into an equivalent table (primary key + one secondary index), each insert in its
own transaction, both in WAL mode with synchronous=NORMAL;
(2) indexed point reads/s (`messages:get`) and 100-document range reads/s
(`messages:list` on a channel of 100 messages) vs raw sqlite3 reading the same rows into
dicts;
(3) bulk mutations: one mutation inserting `--bulk` contacts (bench/bulkapp: a table with
six declared indexes, seven stored with `by_creation_time`) then one patching two indexed
fields of each of them, in documents/s, vs raw sqlite3 inserting the same rows into a
table with six secondary indexes with `executemany` in one transaction, then updating them
the same way;
(4) read-then-patch mutations (`bulk:touch`: get one contact, patch it from what was read)
vs raw sqlite3 selecting the row into a dict and updating it, each in its own transaction.
Each side runs `--repeat` times on a fresh database (the first run doubles as warm-up); the
best rate of each is printed, with the durability settings read back from both databases,
then the CPU time of this process per single insert, point and range read and
read-then-patch (the lowest of the runs; steadier than rates on a shared machine) and its
ratio, raw / runtime.
`--runtime-only` runs (1) and (2) of the runtime once and prints nothing, for instruction
counts: e.g. callgrind's total with `--inserts 700` minus that with `--inserts 200`,
divided by 500, is the instructions per single-insert mutation.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bulkapp.bulk import contact
from owlat.runtime.testing import open_test_app

APP = "tests.fixtures.app"
BULK_APP = "bulkapp"
BULK_INDEXES = (
    ("org", "org, creation, id"),
    ("org_email", "org, email, creation, id"),
    ("org_created", "org, createdAt, creation, id"),
    ("org_name_key", "org, nameKey, creation, id"),
    ("org_last_name_key", "org, lastNameKey, creation, id"),
    ("deleted_at", "deletedAt, creation, id"),
)


def rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else float("inf")


SYNCHRONOUS = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}


def settings_of(db: sqlite3.Connection) -> str:
    journal = db.execute("PRAGMA journal_mode").fetchone()[0]
    synchronous = SYNCHRONOUS[db.execute("PRAGMA synchronous").fetchone()[0]]
    return f"journal_mode={journal}, synchronous={synchronous}"


def raw_sqlite(path: Path, inserts: int, points: int, ranges: int) -> dict[str, Any]:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = NORMAL")
    settings = settings_of(db)
    db.execute(
        "CREATE TABLE messages (id TEXT PRIMARY KEY, creation REAL, channel TEXT, "
        "body TEXT) WITHOUT ROWID"
    )
    db.execute("CREATE INDEX by_channel ON messages (channel, creation, id)")
    ids = []
    start, cpu = time.perf_counter(), time.process_time()
    for index in range(inserts):
        message_id = uuid.uuid4().hex
        db.execute("BEGIN IMMEDIATE")
        db.execute(
            "INSERT INTO messages VALUES (?, ?, ?, ?)",
            (message_id, time.time() * 1000, "bench", f"message {index}"),
        )
        db.execute("COMMIT")
        ids.append(message_id)
    insert_seconds, insert_cpu = time.perf_counter() - start, time.process_time() - cpu
    for index in range(100):
        db.execute(
            "INSERT INTO messages VALUES (?, ?, ?, ?)",
            (uuid.uuid4().hex, time.time() * 1000, "hundred", f"m {index}"),
        )
    columns = ("_id", "_creationTime", "channel", "body")
    start, cpu = time.perf_counter(), time.process_time()
    for index in range(points):
        row = db.execute("SELECT * FROM messages WHERE id = ?", (ids[index % len(ids)],)).fetchone()
        dict(zip(columns, row, strict=True))
    point_seconds, point_cpu = time.perf_counter() - start, time.process_time() - cpu
    start, cpu = time.perf_counter(), time.process_time()
    for _ in range(ranges):
        rows = db.execute(
            "SELECT * FROM messages WHERE channel = ? ORDER BY creation, id", ("hundred",)
        ).fetchall()
        assert len([dict(zip(columns, row, strict=True)) for row in rows]) == 100
    range_seconds, range_cpu = time.perf_counter() - start, time.process_time() - cpu
    db.close()
    return {
        "insert": rate(inserts, insert_seconds),
        "point": rate(points, point_seconds),
        "range": rate(ranges, range_seconds),
        "cpu_insert": insert_cpu / inserts * 1e6,
        "cpu_point": point_cpu / points * 1e6,
        "cpu_range": range_cpu / ranges * 1e6,
        "settings": settings,
    }


async def runtime(data_dir: Path, inserts: int, points: int, ranges: int) -> dict[str, Any]:
    async with open_test_app(APP, data_dir) as app:
        # the engine's own connection, read back (journal mode and synchronous level)
        settings = settings_of(getattr(app.engine, "_writer"))  # noqa: B009
        ids = []
        start, cpu = time.perf_counter(), time.process_time()
        for index in range(inserts):
            result = await app.run_mutation(
                "messages:send", {"channel": "bench", "body": f"message {index}"}
            )
            ids.append(result.value)
        insert_seconds, insert_cpu = time.perf_counter() - start, time.process_time() - cpu
        for index in range(100):
            await app.run_mutation("messages:send", {"channel": "hundred", "body": f"m {index}"})
        start, cpu = time.perf_counter(), time.process_time()
        for index in range(points):
            await app.run_query("messages:get", {"id": ids[index % len(ids)]})
        point_seconds, point_cpu = time.perf_counter() - start, time.process_time() - cpu
        start, cpu = time.perf_counter(), time.process_time()
        for _ in range(ranges):
            result = await app.run_query("messages:list", {"channel": "hundred"})
            assert len(result.value) == 100
        range_seconds, range_cpu = time.perf_counter() - start, time.process_time() - cpu
    return {
        "insert": rate(inserts, insert_seconds),
        "point": rate(points, point_seconds),
        "range": rate(ranges, range_seconds),
        "cpu_insert": insert_cpu / inserts * 1e6,
        "cpu_point": point_cpu / points * 1e6,
        "cpu_range": range_cpu / ranges * 1e6,
        "settings": settings,
    }


def raw_bulk(path: Path, count: int, runs: int, touches: int) -> dict[str, Any]:
    """Bulk inserts then updates of contacts rows, `executemany` in one transaction each;
    then `touches` read-then-update transactions of one row each."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = NORMAL")
    db.execute(
        "CREATE TABLE contacts (id TEXT PRIMARY KEY, creation REAL, org TEXT, email TEXT, "
        "firstName TEXT, lastName TEXT, nameKey TEXT, lastNameKey TEXT, source TEXT, "
        "properties TEXT, subscribed INTEGER, deletedAt REAL, createdAt REAL, updatedAt REAL"
        ") WITHOUT ROWID"
    )
    for name, columns in BULK_INDEXES:
        db.execute(f"CREATE INDEX by_{name} ON contacts ({columns})")
    org = uuid.uuid4().hex
    insert_seconds = patch_seconds = 0.0
    for run in range(runs):
        start = time.perf_counter()
        rows = []
        for index in range(run * count, (run + 1) * count):
            fields = contact(org, index, 1.7e12 + index)
            rows.append(
                (
                    uuid.uuid4().hex,
                    time.time() * 1000,
                    org,
                    fields["email"],
                    fields["firstName"],
                    fields["lastName"],
                    fields["nameKey"],
                    fields["lastNameKey"],
                    fields["source"],
                    json.dumps(fields["properties"]),
                    1,
                    None,
                    fields["createdAt"],
                    fields["updatedAt"],
                )
            )
        db.execute("BEGIN IMMEDIATE")
        db.executemany(f"INSERT INTO contacts VALUES ({', '.join('?' * 14)})", rows)
        db.execute("COMMIT")
        insert_seconds += time.perf_counter() - start
        start = time.perf_counter()
        db.execute("BEGIN IMMEDIATE")
        db.executemany(
            "UPDATE contacts SET lastName = ?, lastNameKey = ? WHERE id = ?",
            [("Renamed", "renamed", row[0]) for row in rows],
        )
        db.execute("COMMIT")
        patch_seconds += time.perf_counter() - start
    ids = [row[0] for row in db.execute("SELECT id FROM contacts")]
    columns = [row[1] for row in db.execute("PRAGMA table_info(contacts)")]
    start, cpu = time.perf_counter(), time.process_time()
    for index in range(touches):
        db.execute("BEGIN IMMEDIATE")
        row = db.execute("SELECT * FROM contacts WHERE id = ?", (ids[index % len(ids)],))
        found = dict(zip(columns, row.fetchone(), strict=True))
        db.execute(
            "UPDATE contacts SET updatedAt = ? WHERE id = ?", (found["updatedAt"] + 1, found["id"])
        )
        db.execute("COMMIT")
    touch_seconds, touch_cpu = time.perf_counter() - start, time.process_time() - cpu
    db.close()
    return {
        "bulk_insert": rate(count * runs, insert_seconds),
        "bulk_patch": rate(count * runs, patch_seconds),
        "touch": rate(touches, touch_seconds),
        "cpu_touch": touch_cpu / touches * 1e6,
    }


async def runtime_bulk(data_dir: Path, count: int, runs: int, touches: int) -> dict[str, Any]:
    """`bulk:insert` of `count` contacts per mutation, then `bulk:patch` of them; then
    `touches` `bulk:touch` mutations."""
    async with open_test_app(BULK_APP, data_dir) as app:
        org = (await app.run_mutation("bulk:org", {})).value
        insert_seconds = patch_seconds = 0.0
        ids: list[str] = []
        for run in range(runs):
            start = time.perf_counter()
            args = {"orgId": org, "first": float(run * count), "count": float(count)}
            ids = (await app.run_mutation("bulk:insert", args)).value
            insert_seconds += time.perf_counter() - start
            start = time.perf_counter()
            await app.run_mutation("bulk:patch", {"ids": ids})
            patch_seconds += time.perf_counter() - start
        start, cpu = time.perf_counter(), time.process_time()
        for index in range(touches):
            await app.run_mutation("bulk:touch", {"id": ids[index % len(ids)]})
        touch_seconds, touch_cpu = time.perf_counter() - start, time.process_time() - cpu
    return {
        "bulk_insert": rate(count * runs, insert_seconds),
        "bulk_patch": rate(count * runs, patch_seconds),
        "touch": rate(touches, touch_seconds),
        "cpu_touch": touch_cpu / touches * 1e6,
    }


def best(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The best of each figure: the highest rate, the lowest CPU time per operation."""
    return {
        key: runs[0][key]
        if key == "settings"
        else (min if key.startswith("cpu_") else max)(run[key] for run in runs)
        for key in runs[0]
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--inserts", type=int, default=5000)
    parser.add_argument("--points", type=int, default=10000)
    parser.add_argument("--ranges", type=int, default=1000)
    parser.add_argument("--bulk", type=int, default=1000, help="documents per bulk mutation")
    parser.add_argument("--bulk-runs", type=int, default=5, help="bulk mutations per run")
    parser.add_argument("--touches", type=int, default=3000, help="read-then-patch mutations")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument(
        "--runtime-only",
        action="store_true",
        help="run the runtime's inserts, point and range queries once, print nothing: for "
        "instruction counts (callgrind) whose difference between two counts is per operation",
    )
    options = parser.parse_args()
    if options.runtime_only:
        with tempfile.TemporaryDirectory() as folder:
            asyncio.run(runtime(Path(folder), options.inserts, options.points, options.ranges))
        return
    raws, ourses = [], []
    with tempfile.TemporaryDirectory() as folder:
        for run in range(options.repeat):
            raws.append(
                raw_sqlite(
                    Path(folder) / f"raw{run}.sqlite3",
                    options.inserts,
                    options.points,
                    options.ranges,
                )
            )
            raws[-1].update(
                raw_bulk(
                    Path(folder) / f"rawbulk{run}.sqlite3",
                    options.bulk,
                    options.bulk_runs,
                    options.touches,
                )
            )
            ourses.append(
                asyncio.run(
                    runtime(
                        Path(folder) / f"owlat{run}",
                        options.inserts,
                        options.points,
                        options.ranges,
                    )
                )
            )
            ourses[-1].update(
                asyncio.run(
                    runtime_bulk(
                        Path(folder) / f"owlatbulk{run}",
                        options.bulk,
                        options.bulk_runs,
                        options.touches,
                    )
                )
            )
    raw, ours = best(raws), best(ourses)
    print(
        f"raw sqlite3: {raw['settings']}; runtime engine: {ours['settings']}; "
        f"best of {options.repeat} runs each"
    )
    print(f"{'operation':<34}{'runtime /s':>12}{'raw sqlite3 /s':>16}{'ratio':>8}")
    labels = {
        "insert": "single-insert mutation",
        "point": "indexed point query (by id)",
        "range": "100-document range query",
        "bulk_insert": f"bulk insert ({options.bulk}/mutation)",
        "bulk_patch": f"bulk patch ({options.bulk}/mutation)",
        "touch": "read-then-patch mutation",
    }
    for key, label in labels.items():
        print(f"{label:<34}{ours[key]:>12,.0f}{raw[key]:>16,.0f}{ours[key] / raw[key]:>8.2f}")
    # CPU time per operation of this process: steadier than rates on a shared machine
    print(f"\n{'CPU per operation (µs)':<34}{'runtime':>12}{'raw sqlite3':>16}{'ratio':>8}")
    for key in ("insert", "point", "range", "touch"):
        ours_cpu, raw_cpu = ours[f"cpu_{key}"], raw[f"cpu_{key}"]
        print(f"{labels[key]:<34}{ours_cpu:>12,.1f}{raw_cpu:>16,.1f}{raw_cpu / ours_cpu:>8.2f}")


if __name__ == "__main__":
    main()
