"""Deleting an organization with N contacts (issue 16): Owlat vs raw sqlite3, same run.

    .venv/bin/python bench/bench_orgdel.py [--rows N] [--sends M]

The organization of bench_audience.py (N contacts imported through the real import, each
with its `imported` activity and its membership of one list; 3 custom properties, one
saved segment) plus M campaign sends (`emailSends`, inserted 1,000 per mutation); then, in
a fresh process on the same data folder, `organizations:remove` by its owner and a wait
until the organization document is gone (the scheduler runs the deletion's steps in that
process), while a probe writes a one-document mutation every 50 ms. Reported: wall and CPU
seconds of the deletion, the probe's slowest write (how long the deletion kept other
writers out), the child's RSS before the deletion and its largest RSS. Next to it, raw
sqlite3 deleting the same rows from equivalent tables with the same indexes
(bench_audience.py's, plus a sends table with the five indexes of `emailSends`), 250 rows
per transaction as Owlat's steps, and in one `DELETE` per table. `--profile FILE` writes a
cProfile of Owlat's deletion.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from tests.app.conftest import Caller

from _harness import rss_anon_mb, rss_mb
from bench_audience import (
    BASE_URL,
    FAST,
    audience,
    raw_bulk_import,
    start_import,
    wait_for_import,
    write_csv,
)
from owlat.app.lib import instance
from owlat.runtime.testing import in_mutation, in_query, open_test_app
from owlat.runtime.values.ids import new_id

BATCH = 250  # rows per transaction of the raw batched form (Owlat's ROWS_PER_STEP)
SENDS_SCHEMA = """
CREATE TABLE sends (id INTEGER PRIMARY KEY, org TEXT, campaign TEXT, contact INTEGER,
  email TEXT, status TEXT, attempts REAL, queued REAL, updated REAL, message_id TEXT);
CREATE INDEX s_org ON sends (org, id);
CREATE INDEX s_campaign_contact ON sends (campaign, contact, id);
CREATE INDEX s_campaign_status ON sends (campaign, status, updated, id);
CREATE INDEX s_contact ON sends (contact, id);
CREATE INDEX s_message ON sends (message_id, id);
"""
RAW_TABLES = ("contacts", "activities", "members", "sends", "lists")


async def add_sends(app: Any, organization_id: str, count: int) -> None:
    """`count` campaign sends of the organization, 1,000 per mutation."""

    async def insert(ctx: Any, n: int) -> None:
        numbers = {name: table.number for name, table in ctx.db._txn.catalog.by_name.items()}
        campaign = new_id(numbers["campaigns"])
        for i in range(n):
            await ctx.db.insert(
                "emailSends",
                {
                    "organizationId": organization_id,
                    "campaignId": campaign,
                    "contactId": new_id(numbers["contacts"]),
                    "email": f"c{i}@example.com",
                    "status": "sent",
                    "attempts": 1.0,
                    "queuedAt": 1.0,
                    "updatedAt": 1.0,
                },
            )

    for done in range(0, count, 1000):
        n = min(1000, count - done)
        await in_mutation(app, lambda ctx, n=n: insert(ctx, n))


async def populate(folder: Path, source: Path, rows: int, sends: int) -> dict[str, Any]:
    """The organization, its owner's session, in the data folder `folder`."""
    instance.configure(folder, BASE_URL, **FAST)  # type: ignore[arg-type]
    async with open_test_app("owlat.app", folder) as app:
        owner, organization_id, list_id, _ = await audience(app)
        done, _ = await wait_for_import(
            owner, await start_import(owner, organization_id, list_id, source)
        )
        assert done["imported"] == rows, done
        await add_sends(app, organization_id, sends)
        return {"userId": owner.user_id, "sessionId": owner.session_id, "email": owner.email,
                "organizationId": organization_id}  # fmt: skip


async def delete(folder: Path, who: dict[str, Any], profile: str) -> dict[str, float]:
    """In a fresh process: remove the organization and wait until it is gone, while a
    probe writes (a one-document mutation) every 50 ms; wall and CPU seconds, the probe's
    slowest write, RSS before and the process's largest RSS (MiB)."""
    instance.configure(folder, BASE_URL, **FAST)  # type: ignore[arg-type]
    async with open_test_app("owlat.app", folder) as app:
        owner = Caller(app, who["userId"], who["sessionId"], who["email"])
        organization_id = who["organizationId"]

        async def exists(ctx: Any) -> bool:
            return await ctx.db.get(organization_id) is not None

        async def write(ctx: Any) -> None:
            await ctx.db.insert("rateLimits", {"key": "probe", "value": 1.0, "since": 1.0})

        slowest, anonymous = 0.0, 0.0

        async def probe() -> None:
            nonlocal slowest, anonymous
            while True:
                started = time.perf_counter()
                await in_mutation(app, write)
                slowest = max(slowest, time.perf_counter() - started)
                anonymous = max(anonymous, rss_anon_mb(os.getpid()))
                await asyncio.sleep(0.05)

        before, anonymous = rss_mb(os.getpid()), rss_anon_mb(os.getpid())
        anonymous_before = anonymous
        profiler = cProfile.Profile() if profile else None
        if profiler is not None:
            profiler.enable()
        prober = asyncio.create_task(probe())
        wall, cpu = time.perf_counter(), time.process_time()
        await owner.mutation("organizations:remove", {"organizationId": organization_id})
        while True:
            if not await in_query(app, exists):
                break
            await asyncio.sleep(0.05)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        prober.cancel()
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(profile)
        left = await in_query(app, lambda ctx: ctx.db.query("contacts").take(1))
        assert not left, "contacts left"
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"wall": wall, "cpu": cpu, "slowest": slowest, "before": before, "peak": peak,
            "anonymous_before": anonymous_before, "anonymous": anonymous}  # fmt: skip


def owlat_side(folder: Path, source: Path, rows: int, sends: int, profile: str) -> Any:
    who = asyncio.run(populate(folder, source, rows, sends))
    (folder / "who.json").write_text(json.dumps(who))
    command = [sys.executable, __file__, "--delete", str(folder), "--profile", profile]
    done = subprocess.run(command, check=False, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"the deletion failed:\n{done.stderr}")
    return json.loads(done.stdout.splitlines()[-1])


def raw_database(folder: Path, source: Path, sends: int, name: str) -> Path:
    """The raw tables of bench_audience.py with the rows of the import, plus the sends."""
    path = folder / name
    raw_bulk_import(path, source)
    db = sqlite3.connect(path, isolation_level=None)
    db.executescript(SENDS_SCHEMA)
    db.execute("BEGIN")
    db.executemany(
        "INSERT INTO sends (org, campaign, contact, email, status, attempts, queued, updated) "
        "VALUES ('org', 'c1', ?, ?, 'sent', 1, 1, 1)",
        ((i, f"c{i}@example.com") for i in range(sends)),
    )
    db.execute("COMMIT")
    db.close()
    return path


def raw_delete(path: Path, batched: bool) -> dict[str, float]:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = NORMAL")
    wall, cpu = time.perf_counter(), time.process_time()
    for table in RAW_TABLES:
        if not batched:
            db.execute(f"DELETE FROM {table} WHERE org = 'org'")
            continue
        while True:
            db.execute("BEGIN")
            deleted = db.execute(
                f"DELETE FROM {table} WHERE id IN "
                f"(SELECT id FROM {table} WHERE org = 'org' LIMIT {BATCH})"
            ).rowcount
            db.execute("COMMIT")
            if deleted < BATCH:
                break
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    db.close()
    return {"wall": wall, "cpu": cpu}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--sends", type=int, default=25_000)
    parser.add_argument("--profile", default="", help="write a cProfile of the deletion here")
    parser.add_argument("--delete", default="", help=argparse.SUPPRESS)  # the child's folder
    args = parser.parse_args()
    if args.delete:
        folder = Path(args.delete)
        who = json.loads((folder / "who.json").read_text())
        print(json.dumps(asyncio.run(delete(folder, who, args.profile))))
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        source = folder / "contacts.csv"
        write_csv(source, args.rows)
        owlat = owlat_side(folder / "owlat", source, args.rows, args.sends, args.profile)
        batched = raw_delete(raw_database(folder, source, args.sends, "a.sqlite"), True)
        whole = raw_delete(raw_database(folder, source, args.sends, "b.sqlite"), False)
    rows = args.rows * 3 + args.sends
    print(f"organization: {args.rows:,} contacts, {rows:,} rows in the 4 big tables")
    print(f"{'':34}{'wall s':>9}{'CPU s':>9}{'CPU µs/row':>12}")
    for name, side in (
        ("owlat (remove → gone)", owlat),
        (f"raw sqlite3, {BATCH} rows/txn", batched),
        ("raw sqlite3, one DELETE/table", whole),
    ):
        per_row = side["cpu"] / rows * 1e6
        print(f"{name:34}{side['wall']:9.2f}{side['cpu']:9.2f}{per_row:12.1f}")
    print(
        f"owlat: RSS {owlat['before']:.0f} MiB before, largest {owlat['peak']:.0f} MiB "
        f"(anonymous {owlat['anonymous_before']:.0f} → largest {owlat['anonymous']:.0f} MiB); "
        f"slowest probe write while it ran {owlat['slowest'] * 1000:.0f} ms"
    )


if __name__ == "__main__":
    main()
