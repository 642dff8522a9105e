"""Audience at scale (issue 7): N contacts in one organization vs raw sqlite3, same run.

    .venv/bin/python bench/bench_audience.py [--rows N] [--repeat N] [--database-url URL]
        [--shuffled-emails]

With N contacts (default 1,000,000) carrying 3 custom properties (plan: string, score:
number, signup: date), all members of one mailing list (no double opt-in):
(a) import a generated N-row CSV end to end through the real import (upload → start →
the worker action's batches, contact + list membership per row, the contact naming the
import that its timeline shows as `imported`);
rows/s and the peak RSS of the process (the CSV is generated to disk and streamed into
storage, so it is not held in memory);
(b) the first page (25) of `contacts:listFromSession`, and of a search (email prefix and
name prefix), as the dashboard calls them;
(c) the live member count of the list read through `mailingLists:get` (memberCount is kept
in each membership change's transaction);
(d) a 3-condition segment on custom properties (plan = "pro", score >= 50, signup on or
after 2024-01-01), created before the import: `segments:count` (the count the contacts
trigger maintains, segment_counts.py) right after the import and after the fold cron has
run, the same count by a pushed-down scan (`ctx.db.query("contacts").with_index("by_org",
...).filter(...).count()`, what `countFilters` does), and how long the backfill takes to
count a segment created after the import.
Next to each: raw sqlite3 doing the equivalent on an equivalent table (a row per contact
with the same indexes, the properties as columns; the import inserts the contact, an
activity (as Owlat did until session 13) and a membership per row and bumps the list's
count, per batch of 1,000 rows in one transaction, in WAL mode with synchronous=NORMAL).
Latencies are the median of `--repeat` runs after a warm-up.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import os
import resource
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.app.conftest import BASE_URL, FAST, Caller, signed_in, uploaded, with_organization

from owlat.app.lib import instance
from owlat.runtime.functions import FunctionKind
from owlat.runtime.testing import open_test_app, run_adhoc

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import rss_anon_mb, rss_mb

PLANS = ("free", "pro", "team", "enterprise")
SIGNUP_2024 = 1_704_067_200_000.0  # 2024-01-01T00:00:00Z
DAY_MS = 86_400_000
PAGE = {"numItems": 25, "cursor": None}
# the (d) segment: plan = pro, score >= 50, signup on or after 2024-01-01 (`after` is >)
SEGMENT = {
    "logic": "AND",
    "conditions": [
        {"kind": "contact_property", "field": "plan", "operator": "equals", "value": "pro"},
        {"kind": "contact_property", "field": "score", "operator": "gte", "value": 50},
        {
            "kind": "contact_property",
            "field": "signup",
            "operator": "after",
            "value": SIGNUP_2024 - 1,
        },
    ],
}


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def row_of(i: int, shuffled: bool = False) -> tuple[str, str, str, str, int, str]:
    """Contact i: email, first, last, plan, score, signup (ISO date). Emails ascend with i,
    or with `shuffled` are spread over user0000000…user9999999 in no order (i × 7919 mod
    10⁷ is a permutation: 7919 is prime to 10)."""
    day = 1_672_531_200 + (i % 730) * 86_400  # 2023-01-01 + up to two years
    signup = time.strftime("%Y-%m-%d", time.gmtime(day))
    number = i * 7919 % 10_000_000 if shuffled else i
    return (
        f"user{number:07d}@example.com",
        f"First{i}",
        f"Last{i % 5000}",
        PLANS[i % 4],
        i % 100,
        signup,
    )


def email_term(shuffled: bool) -> str:
    """The email prefix (b) searches for: the first 9 characters of row 12,345's email
    ("user00123": rows 12,300–12,399 when emails ascend)."""
    return row_of(12_345, shuffled)[0][:9]


def write_csv(path: Path, rows: int, shuffled: bool = False) -> None:
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(["email", "first_name", "last_name", "plan", "score", "signup"])
        for start in range(0, rows, 10_000):
            end = min(rows, start + 10_000)
            writer.writerows(row_of(i, shuffled) for i in range(start, end))


async def file_chunks(path: Path) -> AsyncIterator[bytes]:
    with path.open("rb") as file:
        while chunk := file.read(1 << 20):
            yield chunk


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


async def timed(call: Callable[[], Awaitable[Any]], repeat: int) -> tuple[float, Any]:
    result = await call()  # warm-up
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        result = await call()
        samples.append(time.perf_counter() - start)
    return median_ms(samples), result


def timed_sync(call: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    result = call()
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        result = call()
        samples.append(time.perf_counter() - start)
    return median_ms(samples), result


# -- Owlat ------------------------------------------------------------------------------------


async def owlat_side(
    folder: Path, source: Path, rows: int, repeat: int, database_url: str, term: str
) -> dict[str, Any]:
    instance.configure(folder, BASE_URL, **FAST)  # type: ignore[arg-type]
    async with open_test_app("owlat.app", folder, database_url=database_url) as app:
        owner, organization_id, list_id, segment_id = await audience(app)
        result: dict[str, Any] = {}
        rss_before = rss_mb(os.getpid())
        start = time.perf_counter()
        import_id = await start_import(owner, organization_id, list_id, source)
        done, largest = await wait_for_import(owner, import_id)
        seconds = time.perf_counter() - start
        assert done["status"] == "completed", done
        assert done["imported"] == rows, done
        result["import_s"] = seconds
        result["import_rows_s"] = rows / seconds
        result["import_rss_mb"], result["import_anon_mb"] = largest
        result["rss_before_mb"] = rss_before

        async def page() -> Any:
            return await owner.query("contacts:listFromSession", {"paginationOpts": PAGE})

        async def search(term: str) -> Any:
            return await owner.query(
                "contacts:listFromSession", {"paginationOpts": PAGE, "search": term}
            )

        result["list_ms"], first = await timed(page, repeat)
        assert len(first["page"]) == 25
        result["search_email_ms"], found = await timed(lambda: search(term), repeat)
        assert 0 < len(found["page"]) <= 25 or rows <= 12_345
        result["search_name_ms"], _ = await timed(lambda: search("first1234"), repeat)
        result["member_count_ms"], got = await timed(
            lambda: owner.query("mailingLists:get", {"listId": list_id}), repeat
        )
        assert got["memberCount"] == rows, got

        organization_id = first["page"][0]["organizationId"]

        async def three(ctx: Any, args: Any) -> Any:
            query = (
                ctx.db.query("contacts")
                .with_index("by_org", lambda q: q.eq("organizationId", organization_id))
                .filter(
                    lambda q: q.and_(
                        q.eq(q.field("properties.plan"), "pro"),
                        q.gte(q.field("properties.score"), 50),
                        q.gte(q.field("properties.signup"), SIGNUP_2024),
                    )
                )
            )
            if hasattr(query, "count"):
                return await query.count()
            return len(await query.collect())

        async def count() -> Any:
            return (await run_adhoc(app, FunctionKind.QUERY, three)).value

        result["scan_count_ms"], result["scan_count"] = await timed(count, 1)

        async def segment_count() -> Any:
            return await owner.query("segments:count", {"segmentId": segment_id})

        # kept by the contacts trigger during the import; the changes of the last minute
        # are still separate rows until the fold cron runs, so measure before and after
        result["count_ms"], result["count"] = await timed(segment_count, repeat)
        await app.run(FunctionKind.MUTATION, "segmentCounts:fold", {}, internal=True)
        result["folded_count_ms"], folded = await timed(segment_count, repeat)
        assert folded == result["count"] == result["scan_count"], (folded, result)
        # a segment created over the existing contacts is counted by the backfill
        start = time.perf_counter()
        later = await owner.mutation("segments:create", {"name": "Later", "filters": SEGMENT})
        while True:
            if await segment_state(app, later) == "ready":
                break
            await asyncio.sleep(0.2)
        result["backfill_s"] = time.perf_counter() - start
        assert await owner.query("segments:count", {"segmentId": later}) == folded
        return result


async def audience(app: Any) -> tuple[Caller, str, str, str]:
    """The owner, organization, list and saved segment of the run (with the 3 custom
    properties)."""
    owner = await signed_in(app, "owner@example.com")
    organization_id = await with_organization(owner, "bench")
    for key, kind in (("plan", "string"), ("score", "number"), ("signup", "date")):
        await owner.mutation("contactProperties:create", {"key": key, "label": key, "type": kind})
    list_id = await owner.mutation(
        "mailingLists:create", {"name": "Everyone", "requireDoubleOptIn": False}
    )
    segment_id = await owner.mutation(
        "segments:create", {"name": "Pro, high, recent", "filters": SEGMENT}
    )
    return owner, organization_id, list_id, segment_id


async def start_import(owner: Caller, organization_id: str, list_id: str, source: Path) -> str:
    """Upload the CSV and start its import into the list; returns the import's id."""
    storage_id = await uploaded(owner.app, organization_id, file_chunks(source))
    import_id: str = await owner.mutation(
        "contactImports:start",
        {
            "storageId": storage_id,
            "fileName": source.name,
            "listId": list_id,
            "onDuplicate": "skip",
            "mapping": {
                "email": "email",
                "first_name": "firstName",
                "last_name": "lastName",
                "plan": "property:plan",
                "score": "property:score",
                "signup": "property:signup",
            },
        },
    )
    return import_id


async def segment_state(app: Any, segment_id: str) -> str | None:
    async def read(ctx: Any, args: Any) -> Any:
        row = await (
            ctx.db.query("segmentCounts")
            .with_index("by_segment", lambda q: q.eq("segmentId", segment_id))
            .unique()
        )
        return None if row is None else row["state"]

    return (await run_adhoc(app, FunctionKind.QUERY, read)).value


async def wait_for_import(
    owner: Caller, import_id: str
) -> tuple[dict[str, Any], tuple[float, float]]:
    """The finished import, and the largest RSS and anonymous RSS (MiB) seen while it ran."""
    last, largest, anonymous = -1.0, 0.0, 0.0
    while True:
        found = await owner.query("contactImports:get", {"importId": import_id})
        largest = max(largest, rss_mb(os.getpid()))
        anonymous = max(anonymous, rss_anon_mb(os.getpid()))
        if found["status"] not in ("queued", "running"):
            print(file=sys.stderr)
            return dict(found), (largest, anonymous)
        if found["rowsDone"] != last:
            last = found["rowsDone"]
            sys.stderr.write(f"\r  import: {int(last):,}/{int(found.get('totalRows') or 0):,}")
            sys.stderr.flush()
        await asyncio.sleep(0.5)


# -- raw sqlite3 ------------------------------------------------------------------------------

SCHEMA = """
CREATE TABLE contacts (id INTEGER PRIMARY KEY, org TEXT, email TEXT, first TEXT, last TEXT,
  name_key TEXT, last_name_key TEXT, source TEXT, plan TEXT, score REAL, signup REAL,
  created REAL, updated REAL, deleted REAL, doc TEXT);
CREATE INDEX c_org ON contacts (org, id);
CREATE INDEX c_org_email ON contacts (org, email, id);
CREATE INDEX c_org_created ON contacts (org, created, id);
CREATE INDEX c_org_name ON contacts (org, name_key, id);
CREATE INDEX c_org_last ON contacts (org, last_name_key, id);
CREATE TABLE activities (id INTEGER PRIMARY KEY, org TEXT, contact INTEGER, type TEXT,
  occurred REAL);
CREATE INDEX a_org ON activities (org, id);
CREATE INDEX a_contact ON activities (contact, occurred, id);
CREATE TABLE lists (id INTEGER PRIMARY KEY, org TEXT, member_count INTEGER);
CREATE TABLE members (id INTEGER PRIMARY KEY, org TEXT, list INTEGER, contact INTEGER,
  added REAL);
CREATE INDEX m_org ON members (org, id);
CREATE INDEX m_list ON members (list, added, id);
CREATE INDEX m_list_contact ON members (list, contact, id);
CREATE INDEX m_contact ON members (contact, id);
"""


def raw_side(path: Path, source: Path, rows: int, repeat: int, term: str) -> dict[str, Any]:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = NORMAL")
    db.executescript(SCHEMA)
    db.execute("INSERT INTO lists VALUES (1, 'org', 0)")
    result: dict[str, Any] = {}
    start = time.perf_counter()
    with source.open(newline="", encoding="utf-8") as file:
        reader = csv.reader(file)
        next(reader)
        batch: list[list[str]] = []
        for row in reader:
            batch.append(row)
            if len(batch) == 1000:
                raw_batch(db, batch)
                batch = []
        if batch:
            raw_batch(db, batch)
    result["import_s"] = time.perf_counter() - start
    result["import_rows_s"] = rows / result["import_s"]

    def page() -> list[Any]:
        return db.execute(
            "SELECT doc FROM contacts WHERE org = 'org' AND deleted IS NULL "
            "ORDER BY created DESC, id DESC LIMIT 25"
        ).fetchall()

    def search(term: str) -> list[Any]:
        upper = term + "\U0010ffff"
        found = db.execute(
            "SELECT id, doc FROM contacts WHERE org = 'org' AND email >= ? AND email < ? "
            "AND deleted IS NULL ORDER BY email LIMIT 25",
            (term, upper),
        ).fetchall()
        if len(found) < 25:
            found += db.execute(
                "SELECT id, doc FROM contacts WHERE org = 'org' AND name_key >= ? "
                "AND name_key < ? AND deleted IS NULL AND NOT (email >= ? AND email < ?) "
                "ORDER BY name_key LIMIT ?",
                (term, upper, term, upper, 25 - len(found)),
            ).fetchall()
        return found

    result["list_ms"], _ = timed_sync(page, repeat)
    result["search_email_ms"], _ = timed_sync(lambda: search(term), repeat)
    result["search_name_ms"], _ = timed_sync(lambda: search("first1234"), repeat)
    result["member_count_ms"], _ = timed_sync(
        lambda: db.execute("SELECT member_count FROM lists WHERE id = 1").fetchone(), repeat
    )
    result["count_ms"], counted = timed_sync(
        lambda: db.execute(
            "SELECT count(*) FROM contacts WHERE org = 'org' AND plan = 'pro' AND score >= 50 "
            "AND signup >= ?",
            (SIGNUP_2024,),
        ).fetchone()[0],
        max(1, repeat // 5),
    )
    result["count"] = counted
    result["folded_count_ms"] = result["scan_count_ms"] = result["count_ms"]
    db.close()
    return result


def raw_batch(db: sqlite3.Connection, batch: list[list[str]]) -> None:
    now = time.time() * 1000
    db.execute("BEGIN")
    added = 0
    for email, first, last, plan, score, signup in batch:
        email = email.strip().lower()
        exists = db.execute(
            "SELECT id FROM contacts WHERE org = 'org' AND email = ? AND deleted IS NULL",
            (email,),
        ).fetchone()
        if exists:
            continue
        signup_ms = time.mktime(time.strptime(signup, "%Y-%m-%d")) * 1000
        doc = f'{{"email":"{email}","firstName":"{first}","lastName":"{last}"}}'
        cursor = db.execute(
            "INSERT INTO contacts (org, email, first, last, name_key, last_name_key, source, "
            "plan, score, signup, created, updated, doc) "
            "VALUES ('org', ?, ?, ?, ?, ?, 'import', ?, ?, ?, ?, ?, ?)",
            (
                email,
                first,
                last,
                f"{first} {last}".lower(),
                last.lower(),
                plan,
                float(score),
                signup_ms,
                now,
                now,
                doc,
            ),
        )
        contact = cursor.lastrowid
        db.execute(
            "INSERT INTO activities (org, contact, type, occurred) "
            "VALUES ('org', ?, 'imported', ?)",
            (contact, now),
        )
        db.execute(
            "INSERT INTO members (org, list, contact, added) VALUES ('org', 1, ?, ?)",
            (contact, now),
        )
        added += 1
    db.execute("UPDATE lists SET member_count = member_count + ? WHERE id = 1", (added,))
    db.execute("COMMIT")


def raw_bulk_import(path: Path, source: Path) -> float:
    """Seconds for the fastest raw form of (a) I could write: the same tables and indexes
    with the email index UNIQUE, each 1,000-row batch as three executemany (contacts with
    ids assigned in Python and `INSERT OR IGNORE` for duplicates, activities, memberships)
    and one count update in one transaction, no per-row SELECT."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = NORMAL")
    db.executescript(
        SCHEMA.replace(
            "CREATE INDEX c_org_email ON contacts (org, email, id)",
            "CREATE UNIQUE INDEX c_org_email ON contacts (org, email)",
        )
    )
    db.execute("INSERT INTO lists VALUES (1, 'org', 0)")
    start = time.perf_counter()
    next_id = 1
    for batch in csv_batches(source):
        next_id = raw_bulk_batch(db, batch, next_id)
    seconds = time.perf_counter() - start
    db.close()
    return seconds


def csv_batches(source: Path, size: int = 1000) -> Iterator[list[list[str]]]:
    """The CSV's rows (header skipped) in batches of `size`."""
    with source.open(newline="", encoding="utf-8") as file:
        reader = csv.reader(file)
        next(reader)
        batch: list[list[str]] = []
        for row in reader:
            batch.append(row)
            if len(batch) == size:
                yield batch
                batch = []
        if batch:
            yield batch


def bulk_contacts(batch: list[list[str]], next_id: int, now: float) -> list[tuple[Any, ...]]:
    """The contacts rows of a batch for the raw fastest form, ids from `next_id`: id,
    email, first, last, name_key, last_name_key, plan, score, signup, created, updated,
    doc."""
    contacts = []
    for number, (email, first, last, plan, score, signup) in enumerate(batch, next_id):
        email = email.strip().lower()
        signup_ms = time.mktime(time.strptime(signup, "%Y-%m-%d")) * 1000
        doc = f'{{"email":"{email}","firstName":"{first}","lastName":"{last}"}}'
        name_key, last_key = f"{first} {last}".lower(), last.lower()
        row = (number, email, first, last, name_key, last_key, plan, float(score), signup_ms)
        contacts.append((*row, now, now, doc))
    return contacts


def raw_bulk_batch(db: sqlite3.Connection, batch: list[list[str]], next_id: int) -> int:
    now = time.time() * 1000
    contacts = bulk_contacts(batch, next_id, now)
    db.execute("BEGIN")
    db.executemany(
        "INSERT OR IGNORE INTO contacts (id, org, email, first, last, name_key, last_name_key, "
        "source, plan, score, signup, created, updated, doc) "
        "VALUES (?, 'org', ?, ?, ?, ?, ?, 'import', ?, ?, ?, ?, ?, ?)",
        contacts,
    )
    added = [(row[0], now) for row in contacts]
    db.executemany(
        "INSERT INTO activities (org, contact, type, occurred) VALUES ('org', ?, 'imported', ?)",
        added,
    )
    db.executemany("INSERT INTO members (org, list, contact, added) VALUES ('org', 1, ?, ?)", added)
    db.execute("UPDATE lists SET member_count = member_count + ? WHERE id = 1", (len(added),))
    db.execute("COMMIT")
    return next_id + len(batch)


# -- report -----------------------------------------------------------------------------------

LINES = (
    ("import_s", "(a) import, seconds", "s"),
    ("import_rows_s", "(a) import, rows/s", ""),
    ("list_ms", "(b) first page (25) of the contact list", "ms"),
    ("search_email_ms", "(b) first page of a search, email prefix", "ms"),
    ("search_name_ms", "(b) first page of a search, name prefix", "ms"),
    ("member_count_ms", "(c) list member count (query)", "ms"),
    ("count_ms", "(d) 3-condition segment count (segments:count)", "ms"),
    ("folded_count_ms", "(d) the same after the fold cron", "ms"),
    ("scan_count_ms", "(d) the same counted by a scan (countFilters)", "ms"),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--database-url", default="", help="PostgreSQL URL (default: SQLite)")
    parser.add_argument(
        "--shuffled-emails",
        action="store_true",
        help="emails in no order (default: ascending, which lets both sides append to the "
        "email index)",
    )
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        source = folder / "contacts.csv"
        write_csv(source, options.rows, options.shuffled_emails)
        size_mb = source.stat().st_size / 1e6
        print(f"{options.rows:,} contacts, CSV {size_mb:.1f} MB", flush=True)
        term = email_term(options.shuffled_emails)
        raw = raw_side(folder / "raw.sqlite", source, options.rows, options.repeat, term)
        raw_bulk_s = raw_bulk_import(folder / "raw-bulk.sqlite", source)
        (folder / "owlat").mkdir()
        owlat = asyncio.run(
            owlat_side(
                folder / "owlat",
                source,
                options.rows,
                options.repeat,
                options.database_url,
                term,
            )
        )
    engine = "PostgreSQL" if options.database_url else "SQLite"
    print(f"{'':48} {'Owlat (' + engine + ')':>18} {'raw sqlite3':>14}")
    for key, label, unit in LINES:
        print(f"{label:48} {owlat[key]:>16.2f}{unit:>2} {raw[key]:>12.2f}{unit:>2}")
    print(
        f"(a) raw sqlite3's fastest form of the import (executemany per batch, no per-row "
        f"SELECT; every row is new): {raw_bulk_s:.2f} s ({options.rows / raw_bulk_s:.0f} rows/s)"
    )
    print(
        f"(a) RSS of the process while importing (sampled every 0.5 s): at most "
        f"{owlat['import_rss_mb']:.0f} MiB, of which at most {owlat['import_anon_mb']:.0f} MiB "
        f"anonymous (the rest: the database file as SQLite maps it; before: "
        f"{owlat['rss_before_mb']:.0f} MiB; "
        f"peak of the whole run, CSV generation and raw side included: {peak_rss_mb():.0f} MiB)"
    )
    print(
        f"(d) matching contacts: Owlat {owlat['count']}, raw {raw['count']}; a segment created "
        f"after the import was counted by the backfill in {owlat['backfill_s']:.1f} s"
    )


if __name__ == "__main__":
    main()
