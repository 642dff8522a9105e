"""Runtime core throughput vs raw sqlite3, measured in the same run.

    .venv/bin/python bench/bench_runtime.py [--inserts N] [--points N] [--ranges N] [--repeat N]

(1) single-insert mutations/s through the runtime (`messages:send`: argument validation,
schema validation, id, two index entries, commit timestamp) vs raw sqlite3 inserting the
same row into an equivalent table (primary key + one secondary index), each insert in its
own transaction, both in WAL mode with synchronous=NORMAL;
(2) indexed point reads/s (`messages:get`) and 100-document range reads/s
(`messages:list` on a channel of 100 messages) vs raw sqlite3 reading the same rows into
dicts.
Each side runs `--repeat` times on a fresh database (the first run doubles as warm-up); the
best rate of each is printed, with the durability settings read back from both databases.
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
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from owlat.runtime.testing import open_test_app

APP = "tests.fixtures.app"


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
    start = time.perf_counter()
    for index in range(inserts):
        message_id = uuid.uuid4().hex
        db.execute("BEGIN IMMEDIATE")
        db.execute(
            "INSERT INTO messages VALUES (?, ?, ?, ?)",
            (message_id, time.time() * 1000, "bench", f"message {index}"),
        )
        db.execute("COMMIT")
        ids.append(message_id)
    insert_seconds = time.perf_counter() - start
    for index in range(100):
        db.execute(
            "INSERT INTO messages VALUES (?, ?, ?, ?)",
            (uuid.uuid4().hex, time.time() * 1000, "hundred", f"m {index}"),
        )
    columns = ("_id", "_creationTime", "channel", "body")
    start = time.perf_counter()
    for index in range(points):
        row = db.execute("SELECT * FROM messages WHERE id = ?", (ids[index % len(ids)],)).fetchone()
        dict(zip(columns, row, strict=True))
    point_seconds = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(ranges):
        rows = db.execute(
            "SELECT * FROM messages WHERE channel = ? ORDER BY creation, id", ("hundred",)
        ).fetchall()
        assert len([dict(zip(columns, row, strict=True)) for row in rows]) == 100
    range_seconds = time.perf_counter() - start
    db.close()
    return {
        "insert": rate(inserts, insert_seconds),
        "point": rate(points, point_seconds),
        "range": rate(ranges, range_seconds),
        "settings": settings,
    }


async def runtime(data_dir: Path, inserts: int, points: int, ranges: int) -> dict[str, Any]:
    async with open_test_app(APP, data_dir) as app:
        # the engine's own connection, read back (journal mode and synchronous level)
        settings = settings_of(getattr(app.engine, "_writer"))  # noqa: B009
        ids = []
        start = time.perf_counter()
        for index in range(inserts):
            result = await app.run_mutation(
                "messages:send", {"channel": "bench", "body": f"message {index}"}
            )
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
    return {
        "insert": rate(inserts, insert_seconds),
        "point": rate(points, point_seconds),
        "range": rate(ranges, range_seconds),
        "settings": settings,
    }


def best(runs: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        key: max(run[key] for run in runs) if key != "settings" else runs[0][key] for key in runs[0]
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--inserts", type=int, default=5000)
    parser.add_argument("--points", type=int, default=10000)
    parser.add_argument("--ranges", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=2)
    options = parser.parse_args()
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
    }
    for key, label in labels.items():
        print(f"{label:<34}{ours[key]:>12,.0f}{raw[key]:>16,.0f}{ours[key] / raw[key]:>8.2f}")


if __name__ == "__main__":
    main()
