"""A CSV import alone (issue 19, goal 5): Owlat's import vs the raw driver's fastest form.

    .venv/bin/python bench/bench_import.py [--rows N] [--database-url URL] [--profile FILE]

The CSV, list, segment and custom properties of bench_audience.py (every row new, one
list without double opt-in, one saved 3-condition segment whose count the contacts
trigger keeps): the file imported end to end through the real import (upload → start →
the worker action's batches), then the raw driver's fastest form of the same rows in the
same run. On SQLite that is `raw_bulk_import` of bench_audience.py (each 1,000-row batch as
three `executemany` into the same tables and indexes); on PostgreSQL, psycopg's
`executemany` of the same three inserts per 1,000-row batch into equivalent tables with
the same indexes, one transaction per batch. Each side reports wall seconds and the CPU
seconds of this process (Owlat runs in it: the import's action and mutations, the
database driver's client side; PostgreSQL's server CPU is not included on either side).
`--profile FILE` writes a cProfile of the Owlat import to FILE.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_audience import (
    BASE_URL,
    FAST,
    SCHEMA,
    audience,
    bulk_contacts,
    csv_batches,
    raw_bulk_import,
    start_import,
    wait_for_import,
    write_csv,
)
from owlat.app.lib import instance
from owlat.runtime.testing import open_test_app


async def owlat_import(folder: Path, source: Path, rows: int, url: str, profile: str) -> Any:
    """(wall s, CPU s, largest RSS MiB) of the import through Owlat."""
    instance.configure(folder, BASE_URL, **FAST)  # type: ignore[arg-type]
    async with open_test_app("owlat.app", folder, database_url=url) as app:
        owner, organization_id, list_id, _ = await audience(app)
        profiler = cProfile.Profile() if profile else None
        wall, cpu = time.perf_counter(), time.process_time()
        if profiler is not None:
            profiler.enable()
        import_id = await start_import(owner, organization_id, list_id, source)
        done, (largest, _) = await wait_for_import(owner, import_id)
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(profile)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        assert done["status"] == "completed", done
        assert done["imported"] == rows, done
        listed = await owner.query("mailingLists:get", {"listId": list_id})
        assert listed["memberCount"] == rows, listed
        return wall, cpu, largest


def raw_sqlite(folder: Path, source: Path) -> tuple[float, float]:
    cpu = time.process_time()
    wall = raw_bulk_import(folder / "raw-bulk.sqlite", source)
    return wall, time.process_time() - cpu


def raw_psycopg(url: str, source: Path) -> tuple[float, float]:
    """The same three inserts per 1,000-row batch with psycopg's `executemany`."""
    import psycopg

    statements = [
        line.strip()
        for line in SCHEMA.replace("INTEGER PRIMARY KEY", "BIGINT PRIMARY KEY").split(";")
        if line.strip()
    ]
    with psycopg.connect(url, autocommit=True) as db:
        for table in ("contacts", "activities", "lists", "members"):
            db.execute(f"DROP TABLE IF EXISTS raw_{table}")  # type: ignore[arg-type]
        for statement in statements:
            for table in ("contacts", "activities", "lists", "members"):
                statement = statement.replace(f" {table} ", f" raw_{table} ")
            for index in ("c_", "a_", "m_"):
                statement = statement.replace(f"INDEX {index}", f"INDEX raw_{index}")
            db.execute(statement)  # type: ignore[arg-type]
        db.execute("CREATE UNIQUE INDEX raw_c_org_email_unique ON raw_contacts (org, email)")
        db.execute("INSERT INTO raw_lists VALUES (1, 'org', 0)")
        wall, cpu = time.perf_counter(), time.process_time()
        next_id = 1
        for batch in csv_batches(source):
            next_id = _psycopg_batch(db, batch, next_id)
        return time.perf_counter() - wall, time.process_time() - cpu


def _psycopg_batch(db: Any, batch: list[list[str]], next_id: int) -> int:
    now = time.time() * 1000
    contacts = bulk_contacts(batch, next_id, now)
    added = [(row[0], now) for row in contacts]
    with db.transaction(), db.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO raw_contacts (id, org, email, first, last, name_key, last_name_key, "
            "source, plan, score, signup, created, updated, doc) VALUES "
            "(%s, 'org', %s, %s, %s, %s, %s, 'import', %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT DO NOTHING",
            contacts,
        )
        cursor.executemany(
            "INSERT INTO raw_activities (id, org, contact, type, occurred) "
            "VALUES (%s, 'org', %s, 'imported', %s)",
            [(contact, contact, at) for contact, at in added],
        )
        cursor.executemany(
            "INSERT INTO raw_members (id, org, list, contact, added) VALUES (%s, 'org', 1, %s, %s)",
            [(contact, contact, at) for contact, at in added],
        )
        cursor.execute(
            "UPDATE raw_lists SET member_count = member_count + %s WHERE id = 1", (len(added),)
        )
    return next_id + len(batch)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--database-url", default="", help="PostgreSQL URL (default: SQLite)")
    parser.add_argument("--profile", default="", help="write a cProfile of Owlat's import")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        source = folder / "contacts.csv"
        write_csv(source, options.rows)
        print(f"{options.rows:,} rows, load average {os.getloadavg()[0]:.2f}", flush=True)
        if options.database_url:
            raw_wall, raw_cpu = raw_psycopg(options.database_url, source)
            raw_name = "raw psycopg executemany"
        else:
            raw_wall, raw_cpu = raw_sqlite(folder, source)
            raw_name = "raw sqlite3 executemany"
        (folder / "owlat").mkdir()
        wall, cpu, largest = asyncio.run(
            owlat_import(
                folder / "owlat", source, options.rows, options.database_url, options.profile
            )
        )
    engine = "PostgreSQL" if options.database_url else "SQLite"
    rows = options.rows
    print(f"{'':28}{'wall s':>9}{'rows/s':>9}{'CPU s':>9}{'CPU µs/row':>12}")
    for name, w, c in ((f"Owlat ({engine})", wall, cpu), (raw_name, raw_wall, raw_cpu)):
        print(f"{name:28}{w:>9.2f}{rows / w:>9.0f}{c:>9.2f}{c / rows * 1e6:>12.1f}")
    print(
        f"Owlat / raw: wall {wall / raw_wall:.2f}x, CPU {cpu / raw_cpu:.2f}x; "
        f"largest RSS while importing {largest:.0f} MiB; load average {os.getloadavg()[0]:.2f}"
    )


if __name__ == "__main__":
    main()
