"""POST /api/v1/transactional at a fixed rate: latency of accepted answers, and every
accepted request delivered to an SMTP sink exactly once (issue 16).

    .venv/bin/python bench/bench_transactional.py [--rate 300] [--seconds 10] [--rounds 1]

Processes:
- the sink: aiosmtpd on 127.0.0.1 (uvloop when installed) in its own process, counting the
  messages it accepts, the distinct Message-IDs and the distinct recipients; `VRFY count`
  answers the three numbers;
- Owlat: `owlat serve` (production settings: SQLite, uvloop + httptools) serving owlat.app
  on a fresh data folder, set up as a user would over HTTP: signed up, an organization,
  an SMTP provider pointing at the sink, a sending domain verified against a DNS server
  this process runs (OWLAT_DNS_NAMESERVERS), a published transactional email (the
  12-block template of bench_rendering.py: 37 KB of HTML, DKIM-signed when sent), and
  `rate / 5` API keys (a key allows 10 requests a second: each key carries 5);
- the baseline: a plain Starlette app on the same uvicorn settings, whose endpoint checks
  the API key's hash with one SELECT and inserts the same send row (the rendered message,
  its headers and variables as JSON, plus the indexed columns) with stdlib `sqlite3` in
  WAL mode, synchronous=NORMAL, one transaction per request, answering the same 202 body;
- the client: this process, open loop: request i is due at start + i / rate, whatever the
  answers before it; its latency is answer time minus due time (so a slow answer delays
  nobody's measurement), over keep-alive connections (`--connections`).

Each round runs the baseline, then Owlat, for `--seconds` after a one-second warm-up at the
same rate (warm-up answers are not measured, but are delivered and counted). Printed: p50,
p99 and max latency of the 202 answers, the requests that got another answer, the CPU used
by each server, and, for Owlat, the sink's counts once every accepted request is delivered
(or after `--drain` seconds), and the server's CPU time per accepted request from the
start of its load to the end of the delivery (steadier than latencies on a shared
machine). Goals: p50 <= 5 ms and p99 <= 25 ms at 300 requests/s; the
sink's distinct messages == accepted requests == messages received. `--intake-only`: the
server runs no scheduler, so nothing is delivered, and its CPU per accepted request is
what the intake alone costs.

`--postgres`: Owlat on PostgreSQL (a fresh schema on `--database-url`, or, without it, on a
throwaway cluster of `scripts/pg-test-cluster`) with two `owlat serve` nodes: the one the
client posts to runs no scheduler (`OWLAT_SCHEDULER_PARALLELISM=0`, an API-only node) and
a second one delivers; each node's CPU per accepted request is printed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_smtp
from _harness import PYTHON, ROOT, cpu_seconds, percentile, read_response, uvicorn_config

DOMAIN = "shop-bench.com"
SLUG = "receipt"
URL_VARIABLE = "OWLAT_TEST_POSTGRES_URL"  # set by scripts/pg-test-cluster
PER_KEY = 5  # requests a second each key carries (its limit is 10)


# -- the sink ----------------------------------------------------------------------------------


class Counter:
    def __init__(self) -> None:
        self.received = 0
        self.message_ids: set[bytes] = set()
        self.recipients: set[str] = set()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.received += 1
        head = envelope.original_content.split(b"\r\n\r\n", 1)[0]
        for line in head.split(b"\r\n"):
            if line[:11].lower() == b"message-id:":
                self.message_ids.add(line[11:].strip())
        self.recipients.update(envelope.rcpt_tos)
        return "250 2.0.0 Ok: queued"

    async def handle_VRFY(self, server: Any, session: Any, envelope: Any, address: str) -> str:
        return f"252 {self.received} {len(self.message_ids)} {len(self.recipients)}"

    # offers PIPELINING (RFC 2920), as real relays do
    handle_EHLO = bench_smtp.Counter.handle_EHLO


def serve_sink(info: Path) -> None:
    from aiosmtpd.smtp import SMTP

    counter = Counter()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        server = await loop.create_server(
            lambda: SMTP(counter, loop=loop, hostname="sink.test"), "127.0.0.1", 0
        )
        _ready(info, {"port": server.sockets[0].getsockname()[1], "pid": os.getpid()})
        await stop.wait()
        server.close()

    with _runner() as runner:
        runner.run(main())


async def sink_count(port: int) -> tuple[int, int, int]:
    """(messages received, distinct Message-IDs, distinct recipients)."""
    import aiosmtplib

    client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False)
    await client.connect()
    answer = await client.vrfy("count")
    await client.quit()
    received, ids, recipients = (int(n) for n in answer.message.split())
    return received, ids, recipients


def helpers_cpu(pid: int) -> float:
    """CPU seconds used so far by the processes now running below process `pid` (its
    DKIM signing processes, `sending/signing.py`, and their forkserver)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError):
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                parents[int(entry.name)] = int(stat[1])
    below, total = {pid}, 0.0
    grew = True
    while grew:  # until no process's parent is newly found below `pid`
        grew = False
        for child, parent in parents.items():
            if parent in below and child not in below:
                below.add(child)
                grew = True
    for child in below - {pid}:
        with contextlib.suppress(OSError):
            total += cpu_seconds(child)
    return total


# -- the baseline ------------------------------------------------------------------------------


def raw_app(database: Path, key_hash: str) -> Any:
    """POST /api/v1/transactional: the key's hash looked up, the send row inserted."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    db = sqlite3.connect(database, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = NORMAL")
    db.executescript(
        """
        CREATE TABLE IF NOT EXISTS keys (hash TEXT PRIMARY KEY, organization TEXT);
        CREATE TABLE IF NOT EXISTS sends (
            id INTEGER PRIMARY KEY, organization TEXT, email TEXT, status TEXT,
            queued_at REAL, document TEXT);
        CREATE INDEX IF NOT EXISTS sends_org_email ON sends (organization, email);
        CREATE INDEX IF NOT EXISTS sends_status ON sends (status, queued_at);
        """
    )
    db.execute("INSERT OR IGNORE INTO keys VALUES (?, 'org')", (key_hash,))
    html = "<!DOCTYPE html><html><body>" + "<p>Order {}</p>" * 40 + "</body></html>"

    async def send(request: Request) -> JSONResponse:
        key = request.headers.get("authorization", "").removeprefix("Bearer ")
        body = await request.json()
        hashed = hashlib.sha256(key.encode()).hexdigest()
        db.execute("BEGIN IMMEDIATE")
        try:
            found = db.execute("SELECT organization FROM keys WHERE hash = ?", (hashed,))
            organization = found.fetchone()[0]
            order = body["dataVariables"]["orderId"]
            document = {
                "email": body["email"],
                "subject": f"Order {order}",
                "html": html.replace("{}", order),
                "text": f"Order {order}",
                "headers": {"Auto-Submitted": "auto-generated"},
                "dataVariables": body["dataVariables"],
            }
            cursor = db.execute(
                "INSERT INTO sends (organization, email, status, queued_at, document) "
                "VALUES (?, ?, 'queued', ?, ?)",
                (organization, body["email"], time.time(), json.dumps(document)),
            )
        finally:
            db.execute("COMMIT")
        answer = {
            "status": "queued",
            "email": body["email"],
            "transactionalEmailId": str(cursor.lastrowid),
            "slug": body["slug"],
            "contactCreated": False,
            "language": "en",
        }
        return JSONResponse({"data": answer}, status_code=202)

    return Starlette(routes=[Route("/api/v1/transactional", send, methods=["POST"])])


def serve_raw(database: Path, key_hash: str, info: Path) -> None:
    from _harness import _run

    _run(uvicorn_config(raw_app(database, key_hash)), info, {})


# -- processes ---------------------------------------------------------------------------------


def _runner() -> asyncio.Runner:
    try:
        import uvloop

        return asyncio.Runner(loop_factory=uvloop.new_event_loop)
    except ImportError:
        return asyncio.Runner()


def _ready(info: Path, body: dict[str, Any]) -> None:
    info.with_suffix(".tmp").write_text(json.dumps(body))
    info.with_suffix(".tmp").rename(info)


@contextlib.contextmanager
def process(args: list[str], info: Path, env: dict[str, str] | None = None) -> Iterator[Any]:
    """A child process that writes `info` once ready; its info, SIGTERM at the end."""
    child = subprocess.Popen(args, env=env, cwd=ROOT)
    try:
        deadline = time.monotonic() + 60
        while not info.exists():
            if child.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{args[2:4]} did not start")
            time.sleep(0.02)
        yield {**json.loads(info.read_text()), "pid": child.pid}
    finally:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
            try:
                child.wait(30)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()


# `python -c _CPU_PROFILED <stats> <module> <args>`: the module run as __main__ under cProfile
# with a CPU-time clock (a wall clock counts the time the process waits for a core as its
# code's on a loaded machine)
_CPU_PROFILED = """
import cProfile, runpy, sys, time
stats, module = sys.argv[1], sys.argv[2]
sys.argv[:3] = [module]
profiler = cProfile.Profile(time.process_time)
try:
    profiler.runcall(runpy.run_module, module, run_name="__main__", alter_sys=True)
finally:
    profiler.dump_stats(stats)
"""


@contextlib.contextmanager
def owlat_serve(
    data_dir: Path,
    dns_port: int,
    profile: Path | None = None,
    *,
    intake_only: bool = False,
    env: dict[str, str] | None = None,
) -> Iterator[dict[str, Any]]:
    """`owlat serve` on free ports (under cProfile with `profile`, with the OWLAT_*
    settings `env` on top); its client and site URLs and pid."""
    log = data_dir.parent / f"{data_dir.name}.log"
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT / "src"),
        "OWLAT_APP": "owlat.app",
        "OWLAT_DNS_NAMESERVERS": f"127.0.0.1:{dns_port}",
        "OWLAT_ALLOW_PRIVATE_SMTP": "1",  # the sink is on 127.0.0.1
        **({"OWLAT_SCHEDULER_PARALLELISM": "0"} if intake_only else {}),
        **(env or {}),
    }
    args = [PYTHON, "-m", "owlat.cli", "serve", "--port", "0", "--site-port", "0"]
    if profile is not None:
        args[1:3] = ["-c", _CPU_PROFILED, str(profile), "owlat.cli"]
    with log.open("wb") as output:
        child = subprocess.Popen(
            [*args, "--data-dir", str(data_dir)], env=env, cwd=ROOT, stdout=output, stderr=output
        )
    try:
        deadline = time.monotonic() + 60
        while "HTTP actions on" not in log.read_text():
            if child.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("owlat serve did not start:\n" + log.read_text())
            time.sleep(0.05)
        banner = log.read_text().split("Owlat is serving ", 1)[1]
        client_url = banner.split(" ", 1)[0]
        site_url = banner.split("HTTP actions on ", 1)[1].split(")", 1)[0]
        yield {"url": client_url, "site_url": site_url, "pid": child.pid, "log": log}
    finally:
        child.send_signal(signal.SIGTERM)
        try:
            child.wait(30)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


async def set_up_owlat(
    client_url: str, site_url: str, sink_port: int, dns: Any, keys: int
) -> list[str]:
    """Organization, SMTP provider, verified domain, published email, API keys."""
    from tests.e2e.owlat_app import api_keys, published_receipt, sign_up

    from bench_rendering import template

    account = await sign_up(client_url, site_url)
    await account.call(
        "mutation",
        "emailProviders:saveSmtp",
        {"host": "127.0.0.1", "port": sink_port, "security": "none"},
    )
    domain_id = await account.call(
        "mutation", "domains:create", {"domain": DOMAIN, "providerKind": "smtp"}
    )
    domain = await account.call("query", "domains:get", {"domainId": domain_id})
    dns.publish(*domain["zoneFile"].splitlines())
    verified = await account.call("action", "dnsVerification:verify", {"domainId": domain_id})
    assert verified["status"] == "verified", verified
    await account.call(
        "mutation", "organizationSettings:update", {"defaultFromEmail": f"orders@{DOMAIN}"}
    )
    await published_receipt(account, SLUG, template())
    return await api_keys(account, keys)


# -- the client --------------------------------------------------------------------------------


async def _connection(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port)


def _request(port: int, key: str, body: dict[str, Any]) -> bytes:
    data = json.dumps(body).encode()
    head = (
        f"POST /api/v1/transactional HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Authorization: Bearer {key}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(data)}\r\n\r\n"
    )
    return head.encode() + data


async def drive(
    port: int, keys: list[str], rate: float, warmup: float, seconds: float, connections: int,
    first: int,
) -> dict[str, Any]:  # fmt: skip
    """Open-loop load (module docstring) of requests numbered from `first`; latencies (ms)
    of the measured 202 answers, how many answers were not 202, and how many 202s."""
    idle: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
    opened = [await _connection(port) for _ in range(connections)]
    for pair in opened:
        idle.put_nowait(pair)
    total = int(rate * (warmup + seconds))
    latencies: list[float] = []
    others: dict[int, int] = {}
    accepted = 0
    started = time.perf_counter() + 0.05

    async def one(number: int, due: float) -> None:
        nonlocal accepted
        index = first + number
        body = {
            "slug": SLUG,
            "email": f"buyer{index:07d}@example.com",
            "dataVariables": {"orderId": f"A-{index:07d}"},
        }
        payload = _request(port, keys[number % len(keys)], body)
        reader, writer = await idle.get()
        try:
            writer.write(payload)
            status, _ = await read_response(reader)
        finally:
            idle.put_nowait((reader, writer))
        elapsed = (time.perf_counter() - due) * 1000
        if status == 202:
            accepted += 1
            if due - started >= warmup:
                latencies.append(elapsed)
        else:
            others[status] = others.get(status, 0) + 1

    tasks = []
    for number in range(total):
        due = started + number / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(number, due)))
    await asyncio.gather(*tasks)
    for _, writer in opened:
        writer.close()
    return {"latencies": sorted(latencies), "others": others, "accepted": accepted, "sent": total}


def report(name: str, result: dict[str, Any], cpu: float, wall: float) -> None:
    lat = result["latencies"]
    print(
        f"{name:>8}: {len(lat):6d} measured 202s   p50 {percentile(lat, 0.5):6.2f} ms   "
        f"p99 {percentile(lat, 0.99):7.2f} ms   max {lat[-1] if lat else float('nan'):7.1f} ms"
        f"   other answers {result['others'] or 0}   server CPU {cpu / wall * 100:4.0f}%"
        f" ({cpu / max(result['accepted'], 1) * 1000:.2f} ms per accepted request)",
        flush=True,
    )


async def wait_delivered(sink_port: int, expected: int, drain: float) -> tuple[int, int, int]:
    deadline = time.monotonic() + drain
    while True:
        counts = await sink_count(sink_port)
        if counts[0] >= expected or time.monotonic() > deadline:
            await asyncio.sleep(2)  # a late duplicate would show now
            return await sink_count(sink_port)
        await asyncio.sleep(0.5)


# -- main ------------------------------------------------------------------------------------


@contextlib.contextmanager
def database_url(options: argparse.Namespace) -> Iterator[str]:
    """A fresh PostgreSQL schema with `--postgres`, else "" (SQLite)."""
    if not options.postgres:
        yield ""
        return
    from tests.postgres import PostgresForTests

    database = PostgresForTests(options.database_url or os.environ[URL_VARIABLE])
    try:
        with database.schema() as url:
            yield url
    finally:
        database.close()


@contextlib.contextmanager
def delivery_node(root: Path, dns_port: int, env: dict[str, str], on: bool) -> Iterator[Any]:
    """With `on`, a second node that delivers (module docstring); its info, else None."""
    if not on:
        yield None
        return
    with owlat_serve(root / "delivery", dns_port, env=env) as node:
        yield node


async def bench(options: argparse.Namespace) -> None:
    from tests.app.domains.dns_server import DnsServer

    keys_needed = max(1, int(options.rate / PER_KEY))
    with (
        tempfile.TemporaryDirectory() as folder,
        DnsServer.running() as dns,
        database_url(options) as url,
    ):
        root = Path(folder)
        sink_args = [PYTHON, __file__, "sink", "--info", str(root / "sink.json")]
        nodes_env = {"OWLAT_DATABASE_URL": url, "OWLAT_SECRET_KEY": "b" * 64} if url else {}
        with (
            process(sink_args, root / "sink.json") as sink,
            owlat_serve(
                root / "data",
                dns.port,
                options.profile,
                intake_only=options.intake_only or options.postgres,
                env=nodes_env,
            ) as owlat,
            delivery_node(root, dns.port, nodes_env, options.postgres) as delivery,
        ):
            keys = await set_up_owlat(
                owlat["url"], owlat["site_url"], sink["port"], dns, keys_needed
            )
            site_port = int(owlat["site_url"].rsplit(":", 1)[1])
            raw_key = keys[0]
            raw_args = [
                PYTHON, __file__, "raw", "--info", str(root / "raw.json"),
                "--database", str(root / "raw.sqlite3"),
                "--key-hash", hashlib.sha256(raw_key.encode()).hexdigest(),
            ]  # fmt: skip
            with process(raw_args, root / "raw.json") as raw:
                accepted = 0
                first = 0
                owlat_cpu_start: float | None = None
                helpers_cpu_start = 0.0
                delivery_cpu_start = 0.0
                print(
                    f"{options.rate:g} requests/s for {options.seconds:g} s (+{options.warmup:g} s"
                    f" warm-up) per run, {options.connections} connections, {len(keys)} keys",
                    flush=True,
                )
                for round_number in range(1, options.rounds + 1):
                    print(f"round {round_number}", flush=True)
                    for name, port, pid, run_keys in (
                        ("baseline", raw["port"], raw["pid"], [raw_key]),
                        ("owlat", site_port, owlat["pid"], keys),
                    ):
                        cpu, wall = cpu_seconds(pid), time.perf_counter()
                        if name == "owlat" and owlat_cpu_start is None:
                            owlat_cpu_start = cpu
                            helpers_cpu_start = helpers_cpu(owlat["pid"])
                            if delivery is not None:
                                delivery_cpu_start = cpu_seconds(delivery["pid"])
                        result = await drive(
                            port, run_keys, options.rate, options.warmup, options.seconds,
                            options.connections, first,
                        )  # fmt: skip
                        report(name, result, cpu_seconds(pid) - cpu, time.perf_counter() - wall)
                        first += result["sent"]
                        if name == "owlat":
                            accepted += result["accepted"]
                if options.intake_only:
                    owlat_cpu = cpu_seconds(owlat["pid"]) - (owlat_cpu_start or 0.0)
                    print(
                        f"owlat CPU per accepted request, intake only (delivery off): "
                        f"{owlat_cpu / max(accepted, 1) * 1000:.2f} ms"
                    )
                    return
                received, distinct, recipients = await wait_delivered(
                    sink["port"], accepted, options.drain
                )
                owlat_cpu = cpu_seconds(owlat["pid"]) - (owlat_cpu_start or 0.0)
                if delivery is None:
                    helpers = helpers_cpu(owlat["pid"]) - helpers_cpu_start
                    print(
                        f"owlat CPU per accepted request, its delivery included: "
                        f"{owlat_cpu / max(accepted, 1) * 1000:.2f} ms; its signing processes "
                        f"{helpers / max(accepted, 1) * 1000:.2f} ms more"
                    )
                else:
                    delivery_cpu = cpu_seconds(delivery["pid"]) - delivery_cpu_start
                    print(
                        f"owlat CPU per accepted request: API-only node "
                        f"{owlat_cpu / max(accepted, 1) * 1000:.2f} ms, delivery node "
                        f"{delivery_cpu / max(accepted, 1) * 1000:.2f} ms"
                    )
                print(
                    f"owlat accepted {accepted} requests; the sink received {received} messages, "
                    f"{distinct} distinct Message-IDs, {recipients} distinct recipients"
                )
                if not received == distinct == recipients == accepted:
                    raise SystemExit("not every accepted request was delivered exactly once")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("kind", nargs="?", choices=["bench", "sink", "raw"], default="bench")
    parser.add_argument("--info", type=Path)
    parser.add_argument("--database", type=Path)
    parser.add_argument("--key-hash")
    parser.add_argument("--rate", type=float, default=300)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--warmup", type=float, default=1)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--drain", type=float, default=120, help="seconds to wait for delivery")
    parser.add_argument("--profile", type=Path, help="cProfile stats (CPU time) of owlat serve")
    parser.add_argument(
        "--postgres",
        action="store_true",
        help="Owlat on PostgreSQL, an API-only node beside a delivery node (module docstring)",
    )
    parser.add_argument("--database-url", default="", help="with --postgres: a server (CREATEDB)")
    parser.add_argument(
        "--intake-only",
        action="store_true",
        help="owlat serve runs no scheduler (OWLAT_SCHEDULER_PARALLELISM=0): accepted requests "
        "stay queued, and its CPU per accepted request is the intake's alone",
    )
    options = parser.parse_args()
    if options.kind == "sink":
        serve_sink(options.info)
    elif options.kind == "raw":
        serve_raw(options.database, options.key_hash, options.info)
    else:
        if options.postgres and not (options.database_url or os.environ.get(URL_VARIABLE)):
            if os.environ.get("OWLAT_BENCH_CLUSTER_STARTED"):
                raise SystemExit("scripts/pg-test-cluster could not start PostgreSQL")
            script = ROOT / "scripts" / "pg-test-cluster"  # runs this again with its URL
            env = {**os.environ, "OWLAT_BENCH_CLUSTER_STARTED": "1"}
            os.execve(script, [str(script), PYTHON, __file__, *sys.argv[1:]], env)
        sys.path.insert(0, str(ROOT))
        with _runner() as runner:
            runner.run(bench(options))


if __name__ == "__main__":
    main()
