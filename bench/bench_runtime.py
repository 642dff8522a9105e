"""Runtime core throughput vs raw sqlite3, measured in the same run.

    .venv/bin/python bench/bench_runtime.py [--inserts N] [--points N] [--ranges N]

(1) single-insert mutations/s through the runtime (`messages:send`: argument validation,
schema validation, id, two index entries, commit timestamp) vs raw sqlite3 inserting the
same row into an equivalent table (primary key + one secondary index), each insert in its
own transaction, both in WAL mode with synchronous=NORMAL;
(2) indexed point reads/s (`messages:get`) and 100-document range reads/s
(`messages:list` on a channel of 100 messages) vs raw sqlite3 reading the same rows into
dicts.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from owlat.runtime.testing import open_test_app  # noqa: E402

APP = "tests.fixtures.app"


def rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else float("inf")


def raw_sqlite(path: Path, inserts: int, points: int, ranges: int) -> dict[str, float]:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = NORMAL")
    db.execute("CREATE TABLE messages (id TEXT PRIMARY KEY, creation REAL, channel TEXT, "
               "body TEXT) WITHOUT ROWID")
    db.execute("CREATE INDEX by_channel ON messages (channel, creation, id)")
    ids = []
    start = time.perf_counter()
    for index in range(inserts):
        message_id = uuid.uuid4().hex
        db.execute("BEGIN IMMEDIATE")
        db.execute("INSERT INTO messages VALUES (?, ?, ?, ?)",
                   (message_id, time.time() * 1000, "bench", f"message {index}"))
        db.execute("COMMIT")
        ids.append(message_id)
    insert_seconds = time.perf_counter() - start
    for index in range(100):
        db.execute("INSERT INTO messages VALUES (?, ?, ?, ?)",
                   (uuid.uuid4().hex, time.time() * 1000, "hundred", f"m {index}"))
    columns = ("_id", "_creationTime", "channel", "body")
    start = time.perf_counter()
    for index in range(points):
        row = db.execute("SELECT * FROM messages WHERE id = ?", (ids[index % len(ids)],)
                         ).fetchone()
        dict(zip(columns, row, strict=True))
    point_seconds = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(ranges):
        rows = db.execute("SELECT * FROM messages WHERE channel = ? ORDER BY creation, id",
                          ("hundred",)).fetchall()
        assert len([dict(zip(columns, row, strict=True)) for row in rows]) == 100
    range_seconds = time.perf_counter() - start
    db.close()
    return {"insert": rate(inserts, insert_seconds), "point": rate(points, point_seconds),
            "range": rate(ranges, range_seconds)}


async def runtime(data_dir: Path, inserts: int, points: int, ranges: int) -> dict[str, float]:
    async with open_test_app(APP, data_dir) as app:
        ids = []
        start = time.perf_counter()
        for index in range(inserts):
            result = await app.run_mutation("messages:send",
                                            {"channel": "bench", "body": f"message {index}"})
            ids.append(result.value)
        insert_seconds = time.perf_counter() - start
        for index in range(100):
            await app.run_mutation("messages:send", {"channel": "hundred", "body": f"m {index}"})
        start = time.perf_counter()
        for index in range(points):
            await app.run_query("messages:get", {"id": ids[index % len(ids)]})
        point_seconds = time.perf_counter() - start
        start = time.perf_counter()
        for _ in range(ranges):
            result = await app.run_query("messages:list", {"channel": "hundred"})
            assert len(result.value) == 100
        range_seconds = time.perf_counter() - start
    return {"insert": rate(inserts, insert_seconds), "point": rate(points, point_seconds),
            "range": rate(ranges, range_seconds)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--inserts", type=int, default=5000)
    parser.add_argument("--points", type=int, default=10000)
    parser.add_argument("--ranges", type=int, default=1000)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        raw = raw_sqlite(Path(folder) / "raw.sqlite3", options.inserts, options.points,
                         options.ranges)
        ours = asyncio.run(runtime(Path(folder) / "owlat", options.inserts, options.points,
                                   options.ranges))
    print(f"{'operation':<34}{'runtime /s':>12}{'raw sqlite3 /s':>16}{'ratio':>8}")
    labels = {"insert": "single-insert mutation",
              "point": "indexed point query (by id)",
              "range": "100-document range query"}
    for key, label in labels.items():
        print(f"{label:<34}{ours[key]:>12,.0f}{raw[key]:>16,.0f}{ours[key] / raw[key]:>8.2f}")


if __name__ == "__main__":
    main()
