"""A patch of one field of a large document vs raw sqlite3, measured in the same run.

    .venv/bin/python bench/bench_patch.py [--fields N] [--patches N] [--repeat N]

Through the runtime, `bulk:touch` (bench/bulkapp) reads one contact and patches its
`updatedAt`, in its own mutation, as a tracking event reads a send and patches it; the
contact carries `--fields` custom properties (a `v.record` the schema validates entry by
entry: ~30 KB at 1,000), so what the patch validates, encodes and stores dominates. Raw
sqlite3 does the same in its own transaction on a WAL database with synchronous=NORMAL:
select the JSON text, parse it, change the field, serialize it, update the row. Each side
runs `--repeat` times on a fresh database; the lowest CPU time per patch of each is
printed with its ratio, raw / runtime.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bulkapp.bulk import contact
from owlat.runtime.testing import in_mutation, open_test_app


def large_contact(org_id: str, fields: int) -> dict[str, Any]:
    document = contact(org_id, 0, 1.7e12)
    document["properties"] = {
        f"property{index}": f"value number {index}" if index % 2 else float(index)
        for index in range(fields)
    }
    return document


def raw_sqlite(path: Path, fields: int, patches: int) -> float:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = NORMAL")
    db.execute("CREATE TABLE contacts (id TEXT PRIMARY KEY, body TEXT) WITHOUT ROWID")
    db.execute("INSERT INTO contacts VALUES (?, ?)", ("c", json.dumps(large_contact("o", fields))))
    cpu = time.process_time()
    for _ in range(patches):
        db.execute("BEGIN IMMEDIATE")
        (body,) = db.execute("SELECT body FROM contacts WHERE id = ?", ("c",)).fetchone()
        document = json.loads(body)
        document["updatedAt"] += 1
        db.execute("UPDATE contacts SET body = ? WHERE id = ?", (json.dumps(document), "c"))
        db.execute("COMMIT")
    seconds = time.process_time() - cpu
    db.close()
    return seconds / patches * 1e6


async def runtime(data_dir: Path, fields: int, patches: int) -> float:
    async with open_test_app("bulkapp", data_dir) as app:
        org_id = (await app.run_mutation("bulk:org", {})).value

        async def insert(ctx: Any) -> str:
            contact_id: str = await ctx.db.insert("contacts", large_contact(org_id, fields))
            return contact_id

        contact_id = await in_mutation(app, insert)
        cpu = time.process_time()
        for _ in range(patches):
            await app.run_mutation("bulk:touch", {"id": contact_id})
        seconds = time.process_time() - cpu
    return seconds / patches * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fields", type=int, default=1000, help="custom properties")
    parser.add_argument("--patches", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=2)
    options = parser.parse_args()
    raw_runs, runtime_runs = [], []
    for _ in range(options.repeat):
        with tempfile.TemporaryDirectory() as folder:
            raw_runs.append(raw_sqlite(Path(folder) / "raw.db", options.fields, options.patches))
            runtime_runs.append(asyncio.run(runtime(Path(folder), options.fields, options.patches)))
    raw, ours = min(raw_runs), min(runtime_runs)
    print(f"read-then-patch of one field, {options.fields} properties, CPU µs per patch")
    print(f"runtime {ours:8.1f}   raw sqlite3 {raw:8.1f}   ratio {raw / ours:.2f}")
    print(
        f"  runs: runtime {', '.join(f'{x:.1f}' for x in runtime_runs)}; "
        f"raw {', '.join(f'{x:.1f}' for x in raw_runs)}"
    )


if __name__ == "__main__":
    main()
