"""Open pixels and click redirects at a fixed rate against `owlat serve`, next to a plain
Starlette + sqlite3 endpoint doing one insert per event (issue 17: >= 3,000 recorded
events/s, p99 <= 20 ms).

    .venv/bin/python bench/bench_tracking.py [--rate 3000] [--seconds 5] [--sends 2000]
    .venv/bin/python bench/bench_tracking.py record [--sends 2000] [--events 12000] [--batch 32]
    .venv/bin/python bench/bench_tracking.py answers [--sends 2000] [--events 12000]

Set-up, not measured: in this process, a campaign to `--sends` contacts delivered to an
SMTP sink (`bench_smtp.py`'s, its own process) on a fresh SQLite data folder, so every
event hits a real `emailSends` row; the click links are minted as the mails carry them
(`lib/tracking/links.click_url`, the data folder's secret). Then `owlat serve` runs on
that folder with OWLAT_TRUSTED_PROXIES=127.0.0.1, and every request carries its own
`X-Forwarded-For` client (198.18.0.0/15, the benchmarking range): one client is allowed
150 tracking requests a minute, past which nothing is recorded, and real opens come from
many addresses. The baseline serves the same two paths (GIF, 302) with one INSERT per event
into a table of its own (stdlib sqlite3, WAL, synchronous=NORMAL, one transaction per
request), with the same uvicorn settings.

Load: this process, open loop (request i due at start + i / rate, its latency measured from
then), half opens and half clicks spread over the sends, over keep-alive connections
(`--connections`), `--warmup` s unmeasured first. Printed per server: answers/s, p50, p99,
max, other answers, server CPU per event. Then the events recorded are counted: Owlat's as
the sum of `openCount` + `clickCount` of the campaign's sends (read in process once the
server stopped), the baseline's as its rows; each must equal the requests answered (an
event is committed before its answer: Owlat commits the events of concurrent requests
together, `tracking._Batches`). Profile with py-spy (into .venv only: `VIRTUAL_ENV=.venv
.venv/bin/uv pip install py-spy`; `./dev test` removes it again): `.venv/bin/py-spy record
-p <pid of the owlat serve child> -d 6 --format raw -o prof.txt`, or `--profile F`
(cProfile of the whole server run).

`record`: the `tracking:record` mutation alone, in this process (no HTTP), over the same
mix of events in batches of `--batch`: process CPU per event of the first half (mostly
first opens and clicks: activities, contacts, counters) and of the second (mostly repeats,
one send patch each), next to stdlib sqlite3 doing one UPDATE of a counter row per event
in transactions of `--batch`; then the runtime's share of a repeat open: mutations that only
read the second half's sends (`db.get`), and that also patch their `openCount`.
`--profile F`: cProfile (CPU clock) of the `tracking:record` mutations instead.

`answers`: no database, no HTTP: CPU per `tracking.click_answer` (HMAC check, destination
check, the 302) and `open_answer` (the per-address limit, the prefetcher check) over the
same paths, each from its own address, next to one stdlib `hmac.digest` per link.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _harness import PYTHON, cpu_seconds, percentile, read_response, uvicorn_config
from bench_smtp import Sink
from bench_transactional import _runner, owlat_serve, process

DOMAIN = "news-example.com"
TARGET = "https://shop.example.com/spring?utm_source=owlat"
GIF = b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x01D\x00;"  # noqa: E501


# -- set-up --------------------------------------------------------------------------------------


async def sent_campaign(data_dir: Path, sink_port: int, dns: Any, sends: int) -> list[str]:
    """A campaign to `sends` contacts delivered to the sink; its send ids."""
    from tests.app.campaign_setup import finished, list_audience, ready_campaign
    from tests.app.conftest import signed_in, with_organization
    from tests.app.mail_setup import configure, smtp_domain

    from owlat.runtime.testing import in_query, open_test_app

    configure(data_dir, dns)
    async with open_test_app("owlat.app", data_dir) as owlat:
        owner = await signed_in(owlat, "owner@bench.example")
        organization_id = await with_organization(owner, "bench")
        await owner.mutation(
            "emailProviders:saveSmtp", {"host": "127.0.0.1", "port": sink_port, "security": "none"}
        )
        await smtp_domain(owner, dns, DOMAIN)
        list_id = await owner.mutation(
            "mailingLists:create", {"name": "Readers", "requireDoubleOptIn": False}
        )
        await list_audience(owlat, organization_id, list_id, sends)
        campaign_id = await ready_campaign(owner, list_id, f"news@{DOMAIN}")
        await owner.mutation("campaigns:send", {"campaignId": campaign_id})
        progress = await finished(owner, campaign_id)
        assert progress["sent"] == sends, progress

        async def ids(ctx: Any) -> list[str]:
            return [str(row["_id"]) async for row in ctx.db.query("emailSends")]

        return list(await in_query(owlat, ids))


async def recorded_by_owlat(data_dir: Path) -> int:
    """Opens + clicks counted on the sends (the server stopped)."""
    from owlat.runtime.testing import in_query, open_test_app

    async with open_test_app("owlat.app", data_dir, scheduler_parallelism=None) as owlat:

        async def total(ctx: Any) -> int:
            count = 0
            async for row in ctx.db.query("emailSends"):
                count += (row.get("openCount") or 0) + (row.get("clickCount") or 0)
            return count

        return int(await in_query(owlat, total))


def paths(send_ids: list[str]) -> list[str]:
    """An open and a click path per send (the click signed with the data folder's secret)."""
    from owlat.app.lib.tracking.links import click_url

    found = []
    for send_id in send_ids:
        found.append(f"/t/o/{send_id}")
        found.append(click_url("", send_id, TARGET))
    return found


# -- the baseline --------------------------------------------------------------------------------


def raw_app(database: Path) -> Any:
    """GET /t/o/{id} (a GIF) and /t/c/{id}/{target}/{sig} (302): one INSERT per event."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    db = sqlite3.connect(database, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = NORMAL")
    db.execute(
        "CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY, send TEXT, kind TEXT, "
        "url TEXT, client TEXT, at REAL)"
    )

    def insert(send: str, kind: str, url: str | None, client: str) -> None:
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute(
                "INSERT INTO events (send, kind, url, client, at) VALUES (?, ?, ?, ?, ?)",
                (send, kind, url, client, time.time()),
            )
        finally:
            db.execute("COMMIT")

    async def opened(request: Request) -> Response:
        insert(request.path_params["send"], "open", None, request.headers["x-forwarded-for"])
        return Response(GIF, media_type="image/gif", headers={"cache-control": "no-store"})

    async def clicked(request: Request) -> Response:
        client = request.headers["x-forwarded-for"]
        insert(request.path_params["send"], "click", TARGET, client)
        return Response(status_code=302, headers={"location": TARGET, "cache-control": "no-store"})

    return Starlette(
        routes=[
            Route("/t/o/{send}", opened),
            Route("/t/c/{send}/{target}/{sig}", clicked),
        ]
    )


def serve_raw(database: Path, info: Path) -> None:
    from _harness import _run

    _run(uvicorn_config(raw_app(database)), info, {})


def raw_count(database: Path) -> int:
    db = sqlite3.connect(database)
    try:
        return int(db.execute("SELECT count(*) FROM events").fetchone()[0])
    finally:
        db.close()


# -- the client ----------------------------------------------------------------------------------


def client_address(number: int) -> str:
    """A distinct address of 198.18.0.0/15 per request (131,072 of them)."""
    number %= 1 << 17
    return f"198.{18 + (number >> 16)}.{(number >> 8) & 255}.{number & 255}"


async def drive(
    port: int, targets: list[str], rate: float, warmup: float, seconds: float, connections: int,
    first: int,
) -> dict[str, Any]:  # fmt: skip
    """Open-loop load (module docstring); latencies (ms) of the measured answers, the
    answers by status, and the wall time of the whole run."""
    idle: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
    opened = [await asyncio.open_connection("127.0.0.1", port) for _ in range(connections)]
    for pair in opened:
        idle.put_nowait(pair)
    total = int(rate * (warmup + seconds))
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    started = time.perf_counter() + 0.05

    async def one(number: int, due: float) -> None:
        index = first + number
        path = targets[(index * 7919) % len(targets)]
        request = (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"X-Forwarded-For: {client_address(index)}\r\nUser-Agent: bench\r\n\r\n"
        ).encode()
        reader, writer = await idle.get()
        try:
            writer.write(request)
            status, _ = await read_response(reader)
        finally:
            idle.put_nowait((reader, writer))
        statuses[status] = statuses.get(status, 0) + 1
        if due - started >= warmup:
            latencies.append((time.perf_counter() - due) * 1000)

    tasks = []
    for number in range(total):
        due = started + number / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(number, due)))
    await asyncio.gather(*tasks)
    wall = time.perf_counter() - started
    for _, writer in opened:
        writer.close()
    return {"latencies": sorted(latencies), "statuses": statuses, "sent": total, "wall": wall}


def report(name: str, result: dict[str, Any], cpu: float, recorded: int) -> None:
    lat = result["latencies"]
    answered = sum(n for s, n in result["statuses"].items() if s in (200, 302))
    others = {s: n for s, n in result["statuses"].items() if s not in (200, 302)}
    print(
        f"{name:>8}: {answered / result['wall']:7.0f} events/s answered   p50 "
        f"{percentile(lat, 0.5):6.2f} ms   p99 {percentile(lat, 0.99):7.2f} ms   max "
        f"{lat[-1] if lat else float('nan'):7.1f} ms   other answers {others or 0}   "
        f"server CPU {cpu / max(answered, 1) * 1000:.3f} ms/event "
        f"({cpu / result['wall'] * 100:.0f}%)   recorded {recorded} of {answered}",
        flush=True,
    )
    if recorded != answered:
        raise SystemExit(f"{name}: {answered} events answered but {recorded} recorded")


# -- the record mutation alone ------------------------------------------------------------------


def event_of(path: str) -> dict[str, Any]:
    """The event the server records for a request to `path`."""
    send_id = path.split("/")[3]
    if path.startswith("/t/o/"):
        return {"sendId": send_id, "kind": "opened"}
    return {"sendId": send_id, "kind": "clicked", "url": TARGET}


def raw_updates(root: Path, send_ids: list[str], events: list[dict[str, Any]], batch: int) -> float:
    """CPU seconds of one UPDATE per event, `batch` per transaction (stdlib sqlite3, WAL)."""
    db = sqlite3.connect(root / "updates.sqlite3", isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = NORMAL")
    db.execute("CREATE TABLE sends (id TEXT PRIMARY KEY, opens INTEGER, clicks INTEGER)")
    db.executemany("INSERT INTO sends VALUES (?, 0, 0)", [(i,) for i in send_ids])
    started = time.process_time()
    for at in range(0, len(events), batch):
        db.execute("BEGIN IMMEDIATE")
        for event in events[at : at + batch]:
            column = "opens" if event["kind"] == "opened" else "clicks"
            db.execute(f"UPDATE sends SET {column} = {column} + 1 WHERE id = ?", (event["sendId"],))
        db.execute("COMMIT")
    cpu = time.process_time() - started
    db.close()
    return cpu


async def record_alone(
    data_dir: Path, events: list[dict[str, Any]], batch: int, profile: Path | None
) -> list[float]:
    """CPU seconds of `tracking:record` over each half of `events` (with `profile`: under
    cProfile with a CPU clock, its stats written there)."""
    from owlat.runtime.testing import open_test_app

    profiler = None if profile is None else cProfile.Profile(time.process_time)
    async with open_test_app("owlat.app", data_dir, scheduler_parallelism=None) as owlat:
        halves = []
        for half in (events[: len(events) // 2], events[len(events) // 2 :]):
            started = time.process_time()
            if profiler is not None:
                profiler.enable()
            for at in range(0, len(half), batch):
                chunk = {"events": half[at : at + batch]}
                await owlat.run_mutation("tracking:record", chunk, internal=True)
            if profiler is not None:
                profiler.disable()
            halves.append(time.process_time() - started)
        if profiler is None:
            sends = [event["sendId"] for event in events[len(events) // 2 :]]
            halves += [await _floor(owlat, sends, batch, patch) for patch in (False, True)]
    if profiler is not None and profile is not None:
        profiler.dump_stats(profile)
    return halves


async def _floor(owlat: Any, sends: list[str], batch: int, patch: bool) -> float:
    """CPU seconds of the runtime's part of a repeat open: mutations of `batch` sends
    each, reading each send (`db.get`) and, with `patch`, patching its `openCount`."""
    from owlat.runtime.testing import in_mutation

    async def body(ctx: Any, chunk: list[str]) -> None:
        for send_id in chunk:
            row = await ctx.db.get(send_id)
            if patch:
                await ctx.db.patch(send_id, {"openCount": (row.get("openCount") or 0) + 1})

    started = time.process_time()
    for at in range(0, len(sends), batch):
        chunk = sends[at : at + batch]
        await in_mutation(owlat, lambda ctx, chunk=chunk: body(ctx, chunk))
    return time.process_time() - started


async def bench_record(options: argparse.Namespace) -> None:
    from tests.app.domains.dns_server import DnsServer

    print(
        f"tracking:record alone: {options.events} events in batches of {options.batch}, "
        f"{options.sends} sends, load average {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    with tempfile.TemporaryDirectory() as folder, DnsServer.running() as dns:
        root = Path(folder)
        sink = Sink(root)
        try:
            send_ids = await sent_campaign(root / "data", sink.port, dns, options.sends)
        finally:
            sink.stop()
        targets = paths(send_ids)
        events = [event_of(targets[(i * 7919) % len(targets)]) for i in range(options.events)]
        raw = raw_updates(root, send_ids, events, options.batch) / len(events) * 1e6
        first, repeat, *floor = (
            cpu / (len(events) // 2) * 1e6
            for cpu in await record_alone(root / "data", events, options.batch, options.profile)
        )
    print(
        f"baseline: {raw:.1f} us CPU per event   owlat: first half {first:.1f} us "
        f"({first / raw:.1f}x), second half {repeat:.1f} us ({repeat / raw:.1f}x)",
        flush=True,
    )
    if floor:
        print(
            f"runtime floor of a repeat open, per event: db.get {floor[0]:.1f} us, "
            f"db.get + db.patch {floor[1]:.1f} us",
            flush=True,
        )


# -- the answers alone ---------------------------------------------------------------------------


def bench_answers(options: argparse.Namespace) -> None:
    """CPU per `click_answer` and `open_answer` (the same for the lean route and the HTTP
    actions) over the HTTP run's paths, each request from its own client address; next
    to one stdlib `hmac.digest` of a link, the part of a click no code can skip."""
    import hashlib
    import hmac

    from owlat.app import tracking
    from owlat.app.lib import instance

    with tempfile.TemporaryDirectory() as folder:
        instance.configure(Path(folder), "http://127.0.0.1")
        targets = paths([f"{n:032x}" for n in range(options.sends)])
        clicks = [t for t in targets if t.startswith(tracking.CLICK_PREFIX)]
        opens = [t for t in targets if t.startswith(tracking.OPEN_PREFIX)]
        count = options.events
        started = time.process_time()
        for number in range(count):
            tracking.click_answer(clicks[number % len(clicks)], client_address(number))
        click = (time.process_time() - started) / count * 1e6
        started = time.process_time()
        for number in range(count):
            tracking.open_answer(opens[number % len(opens)], "bench", client_address(number))
        opened = (time.process_time() - started) / count * 1e6
        key, messages = b"k" * 32, [c.rsplit("/", 1)[0].encode() for c in clicks]
        started = time.process_time()
        for number in range(count):
            hmac.digest(key, messages[number % len(messages)], hashlib.sha256)
        raw = (time.process_time() - started) / count * 1e6
    print(
        f"answers alone, {count} each, load average {os.getloadavg()[0]:.2f}: click_answer "
        f"{click:.2f} us CPU ({click / raw:.1f}x one hmac.digest, {raw:.2f} us), "
        f"open_answer {opened:.2f} us",
        flush=True,
    )


# -- main ----------------------------------------------------------------------------------------


async def bench(options: argparse.Namespace) -> None:
    from tests.app.domains.dns_server import DnsServer

    print(
        f"{options.rate:g} requests/s for {options.seconds:g} s (+{options.warmup:g} s warm-up), "
        f"{options.connections} connections, {options.sends} sends, load average "
        f"{os.getloadavg()[0]:.2f}",
        flush=True,
    )
    with tempfile.TemporaryDirectory() as folder, DnsServer.running() as dns:
        root = Path(folder)
        data_dir = root / "data"
        sink = Sink(root)
        try:
            send_ids = await sent_campaign(data_dir, sink.port, dns, options.sends)
        finally:
            sink.stop()
        targets = paths(send_ids)
        args = (options.rate, options.warmup, options.seconds, options.connections)

        raw_db = root / "raw.sqlite3"
        raw_args = [PYTHON, __file__, "raw", "--info", str(root / "raw.json"),
                    "--database", str(raw_db)]  # fmt: skip
        with process(raw_args, root / "raw.json") as raw:
            cpu = cpu_seconds(raw["pid"])
            result = await drive(raw["port"], targets, *args, first=0)
            report("baseline", result, cpu_seconds(raw["pid"]) - cpu, raw_count(raw_db))

        env = {"OWLAT_TRUSTED_PROXIES": "127.0.0.1"}
        with owlat_serve(data_dir, dns.port, options.profile, env=env) as owlat:
            site_port = int(owlat["site_url"].rsplit(":", 1)[1])
            cpu = cpu_seconds(owlat["pid"])
            result = await drive(site_port, targets, *args, first=result["sent"])
            cpu = cpu_seconds(owlat["pid"]) - cpu
        report("owlat", result, cpu, await recorded_by_owlat(data_dir))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    kinds = ["bench", "record", "answers", "raw"]
    parser.add_argument("kind", nargs="?", choices=kinds, default="bench")
    parser.add_argument("--info", type=Path)
    parser.add_argument("--database", type=Path)
    parser.add_argument("--rate", type=float, default=3000)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--warmup", type=float, default=1)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--sends", type=int, default=2000)
    parser.add_argument(
        "--profile", type=Path, help="write cProfile stats here (of owlat serve; record: of it)"
    )
    parser.add_argument("--events", type=int, default=12000, help="record: events recorded")
    parser.add_argument("--batch", type=int, default=32, help="record: events per mutation")
    options = parser.parse_args()
    if options.kind == "raw":
        serve_raw(options.database, options.info)
    elif options.kind == "answers":
        bench_answers(options)
    else:
        with _runner() as runner:
            runner.run(bench(options) if options.kind == "bench" else bench_record(options))


if __name__ == "__main__":
    main()
