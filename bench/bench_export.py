"""`owlat export` of N contacts vs `sqlite3 .dump` of the same database file, same run
(and, with --postgres, vs `pg_dump` of the same rows in PostgreSQL).

    .venv/bin/python bench/bench_export.py [--rows N] [--postgres]

Fills an owlat.app deployment on SQLite with one organization and N contacts (default
100,000; 1,000,000 works), then runs, each as its own process, `owlat export` (the whole
deployment: every table, Convex's ZIP layout, deflate level 1) and `sqlite3 FILE .dump`
(text SQL, uncompressed) and prints, for each: seconds, documents or rows per second, peak
RSS (the child's ru_maxrss; it counts the pages of the memory-mapped database file), peak
anonymous RSS (sampled), output size, and the ratio of the two speeds (goal: the export at
least 0.5x the dump's speed, its memory at most 200 MB).

`--postgres` fills a database of PostgreSQL the same way and compares `owlat export` of it
with `pg_dump` (plain SQL, uncompressed) of that database: on OWLAT_TEST_POSTGRES_URL when
set, else on a throwaway cluster of scripts/pg-test-cluster (this script re-runs itself
under it).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
POSTGRES_URL = "OWLAT_TEST_POSTGRES_URL"
BATCH = 4000
# Children keep compiled modules (.pyc) as an installed owlat has them: a run with
# PYTHONDONTWRITEBYTECODE would compile every module it imports each time (about 1 s).
CHILD_ENV = {
    **{k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"},
    "PYTHONPATH": str(ROOT),
}


async def fill(folder: Path, rows: int, database_url: str = "") -> None:
    sys.path.insert(0, str(ROOT))
    from tests.app.conftest import BASE_URL, FAST, signed_in, with_organization

    from owlat.app.lib import instance
    from owlat.runtime.context import MutationCtx
    from owlat.runtime.testing import in_mutation, open_test_app

    instance.configure(folder, BASE_URL, **FAST)  # type: ignore[arg-type]
    async with open_test_app(
        "owlat.app", folder, scheduler_parallelism=None, database_url=database_url
    ) as app:
        owner = await signed_in(app, "owner@example.com")
        organization_id = await with_organization(owner, "acme")
        now = time.time() * 1000
        for start in range(0, rows, BATCH):

            async def batch(ctx: MutationCtx, start: int = start) -> None:
                for i in range(start, min(rows, start + BATCH)):
                    await ctx.db.insert(
                        "contacts",
                        {
                            "organizationId": organization_id,
                            "email": f"user{i:07d}@example.com",
                            "firstName": f"First{i}",
                            "lastName": f"Last{i % 5000}",
                            "nameKey": f"first{i} last{i % 5000}",
                            "lastNameKey": f"last{i % 5000}",
                            "source": "import",
                            "properties": {"plan": "pro", "score": float(i % 100)},
                            "createdAt": now,
                            "updatedAt": now,
                        },
                    )

            await in_mutation(app, batch)


def anonymous_mb(pid: int) -> float:
    """RssAnon of `pid` (heap and stacks, not mapped files such as SQLite's memory-mapped
    database, which the kernel may drop at will) in MiB; 0 once it has exited."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def run(
    command: list[str], stdout: Any = subprocess.DEVNULL, database_url: str = ""
) -> tuple[float, float, float]:
    """Seconds, peak RSS and peak anonymous RSS (sampled every 20 ms) in MiB of `command`,
    run as a child process (with OWLAT_DATABASE_URL=`database_url`)."""
    start = time.perf_counter()
    child = subprocess.Popen(
        command, stdout=stdout, stderr=subprocess.PIPE, cwd=ROOT,
        env={**CHILD_ENV, "OWLAT_DATABASE_URL": database_url},
    )  # fmt: skip
    anonymous = 0.0
    while True:
        pid, status, usage = os.wait4(child.pid, os.WNOHANG)
        if pid:
            break
        anonymous = max(anonymous, anonymous_mb(child.pid))
        time.sleep(0.02)
    seconds = time.perf_counter() - start
    assert child.stderr is not None
    if status != 0:
        raise SystemExit(f"{command[0]} failed ({status}): {child.stderr.read().decode()}")
    return seconds, usage.ru_maxrss / 1024, anonymous


def warm(path: Path) -> None:
    """Read the file once, a chunk at a time: both commands then read it from the page cache."""
    with path.open("rb") as file:
        while file.read(1 << 20):
            pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--postgres", action="store_true", help="also compare with pg_dump")
    parser.add_argument("--fill", type=Path, help=argparse.SUPPRESS)  # the filling child
    parser.add_argument("--fill-url", default="", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.fill:
        asyncio.run(fill(options.fill, options.rows, options.fill_url))
        return
    if options.postgres and not os.environ.get(POSTGRES_URL):
        cluster = [str(ROOT / "scripts" / "pg-test-cluster"), sys.executable, *sys.argv]
        os.execv(cluster[0], cluster)
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary)
        # filled by a child: this process stays small, as the RSS of its children counts it
        fill_s, _, _ = run(
            [sys.executable, __file__, "--rows", str(options.rows), "--fill", str(folder / "data")]
        )
        print(f"filled {options.rows} contacts in {fill_s:.1f} s", flush=True)
        database = folder / "data" / "owlat.sqlite3"
        snapshot = folder / "snapshot.zip"
        warm(database)
        run([sys.executable, "-m", "owlat.cli", "--help"])  # modules compiled once, before
        export_s, export_rss, export_anonymous = run(
            [sys.executable, "-m", "owlat.cli", "export", str(snapshot),
             "--data-dir", str(folder / "data")]
        )  # fmt: skip
        with (folder / "dump.sql").open("wb") as dump:
            dump_s, dump_rss, dump_anonymous = run(["sqlite3", str(database), ".dump"], stdout=dump)
        result = {
            "contacts": options.rows,
            "database_mb": round(database.stat().st_size / 2**20, 1),
            "export_s": round(export_s, 2),
            "export_contacts_per_s": round(options.rows / export_s),
            "export_peak_rss_mb": round(export_rss, 1),
            "export_peak_anonymous_rss_mb": round(export_anonymous, 1),
            "export_zip_mb": round(snapshot.stat().st_size / 2**20, 1),
            "dump_s": round(dump_s, 2),
            "dump_contacts_per_s": round(options.rows / dump_s),
            "dump_peak_rss_mb": round(dump_rss, 1),
            "dump_peak_anonymous_rss_mb": round(dump_anonymous, 1),
            "dump_sql_mb": round((folder / "dump.sql").stat().st_size / 2**20, 1),
            "export_speed_vs_dump": round(dump_s / export_s, 2),
        }
        if options.postgres:
            result.update(versus_pg_dump(folder, options.rows))
        print(json.dumps(result, indent=2))


def versus_pg_dump(folder: Path, rows: int) -> dict[str, Any]:
    """The same contacts in a new database of the PostgreSQL server: `owlat export` of it
    vs `pg_dump` of it."""
    import psycopg

    server_url = os.environ.get(POSTGRES_URL, "")
    if not server_url:
        raise SystemExit(f"--postgres: no PostgreSQL server ({POSTGRES_URL} is not set)")
    sys.path.insert(0, str(ROOT))
    from tests.postgres import _with_database

    name = f"owlat_bench_export_{os.getpid()}"
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = _with_database(server_url, name)
    try:
        run(
            [sys.executable, __file__, "--rows", str(rows), "--fill", str(folder / "pg"),
             "--fill-url", url]
        )  # fmt: skip
        with psycopg.connect(url) as connection:
            (size,) = connection.execute("SELECT pg_database_size(current_database())").fetchone()
        snapshot = folder / "pg-snapshot.zip"
        export_s, export_rss, export_anonymous = run(
            [sys.executable, "-m", "owlat.cli", "export", str(snapshot),
             "--data-dir", str(folder / "pg")],
            database_url=url,
        )  # fmt: skip
        with (folder / "pg-dump.sql").open("wb") as dump:
            dump_s, dump_rss, dump_anonymous = run([pg_dump(), "--dbname", url], stdout=dump)
        return {
            "pg_database_mb": round(size / 2**20, 1),
            "pg_export_s": round(export_s, 2),
            "pg_export_contacts_per_s": round(rows / export_s),
            "pg_export_peak_rss_mb": round(export_rss, 1),
            "pg_export_peak_anonymous_rss_mb": round(export_anonymous, 1),
            "pg_export_zip_mb": round(snapshot.stat().st_size / 2**20, 1),
            "pg_dump_s": round(dump_s, 2),
            "pg_dump_contacts_per_s": round(rows / dump_s),
            "pg_dump_peak_rss_mb": round(dump_rss, 1),
            "pg_dump_peak_anonymous_rss_mb": round(dump_anonymous, 1),
            "pg_dump_sql_mb": round((folder / "pg-dump.sql").stat().st_size / 2**20, 1),
            "pg_export_speed_vs_pg_dump": round(dump_s / export_s, 2),
        }
    finally:
        with psycopg.connect(server_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def pg_dump() -> str:
    """The newest installed pg_dump (the cluster's own major version or newer)."""
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_dump"), key=_major)
    return str(candidates[-1]) if candidates else "pg_dump"


def _major(path: Path) -> int:
    return int(path.parts[-3]) if path.parts[-3].isdigit() else 0


if __name__ == "__main__":
    main()
