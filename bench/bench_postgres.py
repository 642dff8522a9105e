"""PostgreSQL engine and several server nodes (issue 5), each figure next to a baseline
measured in the same run.

    .venv/bin/python bench/bench_postgres.py [--database-url URL] [--inserts 3000]
        [--concurrency 16] [--seconds 8] [--clients 32] [--nodes 1,2,4]
        [--subscribers 10] [--rate 50] [--parts 1,2,3,4] [--commits 2000]

Without `--database-url` the script re-runs itself under `scripts/pg-test-cluster`, which
starts a throwaway cluster (fsync off, like the test suite's) and stops it afterwards.
With it, the script creates (and drops) a database of its own on that server, so the role
needs CREATEDB. Every measurement gets a fresh schema.

(1) Mutation throughput, in process: `messages:send` (argument and schema validation, one
document, two index entries, SERIALIZABLE transaction under the commit lock, commit-log
row + NOTIFY) `--inserts` times, one at a time and `--concurrency` at a time, vs raw
psycopg (async, autocommit) inserting the same rows into an equivalent table (text primary
key, one secondary index on (channel, creation, id)), one transaction per row, with the
same number of connections.
(2) Several nodes: 1, 2 and 4 `owlat serve` processes on one database (`--nodes`); the
same client load each time: `--clients` HTTP keep-alive connections spread round-robin over
the nodes, each posting `messages:send` back to back for `--seconds` (after a 1 s warm-up).
Mutations/s, and the CPU the server processes used (all of them) per second.
(3) Commit-to-subscriber latency across nodes: two nodes; `--subscribers` sockets on node
B and as many on node A subscribe to `bank:balances {"names": ["hits"]}`; a writer posts
`bank:bump` to node A at `--rate` per second for `--seconds`. Latency of a socket for count
c = when it first sees a value >= c - when the writer sent the request that made it c
(so it includes the mutation's own HTTP round trip). Node A's sockets are the same-run
baseline: the same commits, delivered without crossing nodes.
(4) What a commit costs PostgreSQL, and how long it holds the commit lock: one connection
commits `--commits` times, back to back, the statements of a one-document mutation (BEGIN,
commit lock, document + two index entries, owlat_commit_v1, COMMIT: one simple query with
the parameters bound on the client, as postgres.py sends them), with
0, 1 and 3 other connections LISTENing as other nodes' feeds would; the baseline is the
same transaction with nothing after the lock (BEGIN, lock, COMMIT). The lock is held from
the lock to the end of COMMIT, all on the server: about the backend's CPU for the
statements after the lock (no disk waits with fsync off).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import (
    APP,
    PYTHON,
    ROOT,
    RawHttpClient,
    children,
    cpu_seconds,
    percentile,
    raise_fd_limit,
)

URL_VARIABLE = "OWLAT_TEST_POSTGRES_URL"  # set by scripts/pg-test-cluster
ADMIN_KEY = "owlat-admin|bench-postgres"
BANNER = re.compile(r"Owlat is serving (http://127\.0\.0\.1:\d+)")
WARMUP_SECONDS = 1.0
SERVE = [PYTHON, "-m", "owlat.cli", "serve", "--port", "0", "--site-port", "0"]


def rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else float("inf")


# -- (1) in-process throughput vs raw psycopg ----------------------------------------------


class Costs:
    """Per-operation figures of one run: wall rate, this process's CPU, the server's CPU."""

    def __init__(self, url: str) -> None:
        self._postmaster = postmaster_of(url)

    def __enter__(self) -> Costs:
        self._cpu = time.process_time()
        self._server_cpu = server_cpu_seconds(self._postmaster)
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self._start
        self.cpu = time.process_time() - self._cpu
        self.server_cpu = server_cpu_seconds(self._postmaster) - self._server_cpu


def postmaster_of(url: str) -> int:
    """The pid of the PostgreSQL server of database `url` (the parent of its backends)."""
    import psycopg

    with psycopg.connect(url) as db:
        row = db.execute("SELECT pg_backend_pid()").fetchone()
        assert row is not None
        return int(_stat(row[0])[1])


def server_cpu_seconds(postmaster: int) -> float:
    """CPU time of the server so far: the postmaster, its exited backends (its children's
    time) and its live ones."""
    fields = _stat(postmaster)
    ticks = sum(int(field) for field in fields[11:15])
    for path in Path("/proc").glob("[0-9]*"):
        with contextlib.suppress(OSError, ValueError):
            child = _stat(int(path.name))
            if int(child[1]) == postmaster:
                ticks += int(child[11]) + int(child[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str]:
    """The fields of /proc/PID/stat after the command name (state first)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


async def runtime_inserts(url: str, data_dir: Path, inserts: int, concurrency: int) -> Costs:
    """`messages:send` mutations through the runtime, `concurrency` at a time."""
    from owlat.runtime.testing import open_test_app

    async with open_test_app(APP, data_dir, database_url=url, scheduler_parallelism=None) as app:
        await app.run_mutation("messages:send", {"channel": "warm", "body": "up"})

        async def worker(first: int) -> None:
            for index in range(first, inserts, concurrency):
                await app.run_mutation("messages:send", {"channel": "bench", "body": f"m{index}"})

        with Costs(url) as costs:
            await asyncio.gather(*(worker(n) for n in range(concurrency)))
        return costs


async def raw_inserts(url: str, inserts: int, concurrency: int) -> Costs:
    """The same rows inserted with psycopg, one autocommit transaction each."""
    import psycopg

    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as setup:
        await setup.execute(
            'CREATE TABLE messages (id text COLLATE "C" PRIMARY KEY, creation double '
            "precision, channel text, body text)"
        )
        await setup.execute("CREATE INDEX by_channel ON messages (channel, creation, id)")
    connections = [
        await psycopg.AsyncConnection.connect(url, autocommit=True, prepare_threshold=0)
        for _ in range(concurrency)
    ]
    statement = "INSERT INTO messages VALUES (%s, %s, %s, %s)"
    try:

        async def worker(connection: Any, first: int) -> None:
            for index in range(first, inserts, concurrency):
                row = (uuid.uuid4().hex, time.time() * 1000, "bench", f"m{index}")
                await connection.execute(statement, row)

        with Costs(url) as costs:
            await asyncio.gather(*(worker(c, n) for n, c in enumerate(connections)))
        return costs
    finally:
        for connection in connections:
            await connection.close()


# -- owlat serve processes -----------------------------------------------------------------


@contextlib.contextmanager
def serve_nodes(url: str, count: int, folder: Path) -> Iterator[list[tuple[str, int]]]:
    """`count` `owlat serve` processes on the database at `url`: (client URL, pid) each."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)]),  # this tree's code
        "OWLAT_APP": APP,
        "OWLAT_DATABASE_URL": url,
        "OWLAT_ADMIN_KEY": ADMIN_KEY,
    }
    processes: list[subprocess.Popen[bytes]] = []
    logs: list[Path] = []
    folder.mkdir(parents=True, exist_ok=True)
    with children(processes):
        for n in range(count):
            log = folder / f"node{n}.log"
            with log.open("wb") as output:
                processes.append(
                    subprocess.Popen(
                        [*SERVE, "--data-dir", str(folder / f"node{n}")],
                        env=env,
                        cwd=ROOT,
                        stdout=output,
                        stderr=subprocess.STDOUT,
                    )
                )
            logs.append(log)
        urls = [
            _wait_for_banner(process, log) for process, log in zip(processes, logs, strict=True)
        ]
        yield [(node_url, process.pid) for node_url, process in zip(urls, processes, strict=True)]
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(30)


def _wait_for_banner(process: subprocess.Popen[bytes], log: Path) -> str:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        match = BANNER.search(log.read_text(errors="replace"))
        if match:
            return match.group(1)
        if process.poll() is not None:
            raise RuntimeError(f"owlat serve exited: {log.read_text(errors='replace')}")
        time.sleep(0.05)
    raise RuntimeError("owlat serve did not start within 60 s")


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


async def post_ok(client: RawHttpClient, path: str, kind: str, args: Any) -> Any:
    status, body = await client.post(f"/api/{kind}", {"path": path, "args": args})
    answer = json.loads(body)
    if status != 200 or answer.get("status") != "success":
        raise RuntimeError(f"{path} failed: {status} {answer}")
    return answer["value"]


async def node_throughput(
    nodes: list[tuple[str, int]], clients: int, seconds: float, postmaster: int
) -> tuple[float, float, float, float]:
    """Mutations/s with `clients` connections over `nodes`; the nodes', PostgreSQL's and
    the clients' CPU per s."""
    pools = []
    for index, (node_url, _) in enumerate(nodes):
        share = clients // len(nodes) + (1 if index < clients % len(nodes) else 0)
        pools.append(await RawHttpClient(port_of(node_url), share).__aenter__())
    counted = False
    done = 0

    async def connection(client: RawHttpClient, number: int, stop: float) -> None:
        nonlocal done
        sent = 0
        while time.monotonic() < stop:
            args = {"channel": f"c{number}", "body": f"m{sent}"}
            await post_ok(client, "messages:send", "mutation", args)
            sent += 1
            if counted:
                done += 1

    try:
        stop = time.monotonic() + WARMUP_SECONDS + seconds
        tasks = [
            asyncio.create_task(connection(pool, n * 1000 + i, stop))
            for n, pool in enumerate(pools)
            for i in range(pool.count)
        ]
        await asyncio.sleep(WARMUP_SECONDS)
        counted = True
        cpu_before = sum(cpu_seconds(pid) for _, pid in nodes)
        database_before = server_cpu_seconds(postmaster)
        client_before = time.process_time()
        start = time.monotonic()
        await asyncio.gather(*tasks)
        elapsed = time.monotonic() - start
        server_cpu = (sum(cpu_seconds(pid) for _, pid in nodes) - cpu_before) / elapsed
        database_cpu = (server_cpu_seconds(postmaster) - database_before) / elapsed
        client_cpu = (time.process_time() - client_before) / elapsed
        return rate(done, elapsed), server_cpu, database_cpu, client_cpu
    finally:
        for pool in pools:
            await pool.__aexit__()


# -- (3) cross-node latency ----------------------------------------------------------------


class Subscriber:
    """A sync socket subscribed to the `hits` counter; records when each value arrives."""

    def __init__(self) -> None:
        self.arrivals: list[tuple[float, float]] = []  # (value, perf_counter)

    @contextlib.asynccontextmanager
    async def open(self, node_url: str) -> AsyncIterator[Subscriber]:
        import websockets

        async with websockets.connect(
            node_url.replace("http://", "ws://") + "/api/sync", max_size=None
        ) as socket:
            connect = {
                "type": "Connect",
                "sessionId": str(uuid.uuid4()),
                "connectionCount": 0,
                "lastCloseReason": "InitialConnect",
                "clientTs": 0,
            }
            add = {
                "type": "Add",
                "queryId": 0,
                "udfPath": "bank:balances",
                "args": [{"names": ["hits"]}],
            }
            modify = {"type": "ModifyQuerySet", "baseVersion": 0, "newVersion": 1}
            await socket.send(json.dumps(connect))
            await socket.send(json.dumps({**modify, "modifications": [add]}))
            reader = asyncio.create_task(self._read(socket))
            try:
                yield self
            finally:
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reader

    async def _read(self, socket: Any) -> None:
        async for raw in socket:
            message = json.loads(raw)
            if message["type"] != "Transition":
                continue
            now = time.perf_counter()
            for update in message["modifications"]:
                if update["type"] == "QueryUpdated" and update["value"][0] is not None:
                    self.arrivals.append((float(update["value"][0]), now))

    def latencies(self, sent: dict[int, float]) -> list[float]:
        """Per count: first arrival of a value >= count - when the count was sent."""
        result = []
        arrivals = sorted(self.arrivals, key=lambda arrival: arrival[1])
        position = 0
        for count in sorted(sent):
            while position < len(arrivals) and arrivals[position][0] < count:
                position += 1
            if position < len(arrivals):
                result.append(arrivals[position][1] - sent[count])
        return result


async def cross_node_latency(
    nodes: list[tuple[str, int]], subscribers: int, per_second: float, seconds: float
) -> tuple[list[float], list[float], int, float]:
    """Latencies (s) of node B's sockets and of node A's (baseline); commits written; this
    process's CPU per second while writing (sockets and writer share it)."""
    (a_url, _), (b_url, _) = nodes
    sent: dict[int, float] = {}
    async with contextlib.AsyncExitStack() as stack, RawHttpClient(port_of(a_url), 1) as writer:
        await post_ok(writer, "bank:bump", "mutation", {"name": "hits"})  # the counter exists
        remote = [
            await stack.enter_async_context(Subscriber().open(b_url)) for _ in range(subscribers)
        ]
        local = [
            await stack.enter_async_context(Subscriber().open(a_url)) for _ in range(subscribers)
        ]
        await asyncio.sleep(WARMUP_SECONDS)  # every socket has its first value
        interval = 1.0 / per_second
        cpu_before, wall_before = time.process_time(), time.perf_counter()
        next_at = time.perf_counter()
        stop = next_at + seconds
        while next_at < stop:
            await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
            started = time.perf_counter()
            count = await post_ok(writer, "bank:bump", "mutation", {"name": "hits"})
            sent[int(count)] = started
            next_at += interval
        client_cpu = (time.process_time() - cpu_before) / (time.perf_counter() - wall_before)
        await asyncio.sleep(1.5)  # the last pushes arrive
        missing = sum(1 for s in remote + local if not s.arrivals or s.arrivals[-1][0] < max(sent))
        if missing:
            raise RuntimeError(f"{missing} sockets did not receive the last value")
        remote_latencies = sorted(x for s in remote for x in s.latencies(sent))
        local_latencies = sorted(x for s in local for x in s.latencies(sent))
    return remote_latencies, local_latencies, len(sent), client_cpu


# -- main ----------------------------------------------------------------------------------


def ms(value: float) -> str:
    return f"{value * 1000:.1f}"


async def run(options: argparse.Namespace, server_url: str) -> None:
    from tests.postgres import PostgresForTests

    raise_fd_limit()
    database = PostgresForTests(server_url)
    try:
        with tempfile.TemporaryDirectory() as folder:
            await _run(options, database, Path(folder))
    finally:
        database.close()


async def _run(options: argparse.Namespace, database: Any, folder: Path) -> None:
    import psycopg

    import owlat

    print(f"owlat from {Path(owlat.__file__).parent}")  # PYTHONPATH=<src> measures other code

    with psycopg.connect(database.url) as db:
        version = db.execute("SHOW server_version").fetchone()
        fsync = db.execute("SHOW fsync").fetchone()
        commit = db.execute("SHOW synchronous_commit").fetchone()
    print(
        f"PostgreSQL {version[0] if version else '?'} (fsync={fsync[0] if fsync else '?'}, "
        f"synchronous_commit={commit[0] if commit else '?'}), {os.cpu_count()} CPUs"
    )

    if 1 in options.parts:
        await _throughput(options, database, folder)
    if 2 in options.parts:
        await _nodes(options, database, folder)
    if 4 in options.parts:
        await _lock(options, database)
    if 3 in options.parts:
        await _latency(options, database, folder)


async def _throughput(options: argparse.Namespace, database: Any, folder: Path) -> None:
    print(f"\n(1) mutation throughput in process, {options.inserts} single-insert transactions")
    print("(CPU: this process's and the PostgreSQL server's, in µs per insert)")
    print(
        f"{'clients':<10}{'runtime /s':>12}{'raw psycopg /s':>16}{'ratio':>8}"
        f"{'CPU ours':>10}{'CPU raw':>9}{'PG ours':>9}{'PG raw':>8}"
    )
    for concurrency in (1, options.concurrency):
        with database.schema() as url:
            raw = await raw_inserts(url, options.inserts, concurrency)
        with database.schema() as url:
            ours = await runtime_inserts(
                url, folder / f"inproc{concurrency}", options.inserts, concurrency
            )
        ours_rate = rate(options.inserts, ours.seconds)
        raw_rate = rate(options.inserts, raw.seconds)
        per = 1e6 / options.inserts
        print(
            f"{concurrency:<10}{ours_rate:>12,.0f}{raw_rate:>16,.0f}{ours_rate / raw_rate:>8.2f}"
            f"{ours.cpu * per:>10,.0f}{raw.cpu * per:>9,.0f}"
            f"{ours.server_cpu * per:>9,.0f}{raw.server_cpu * per:>8,.0f}"
        )


async def _nodes(options: argparse.Namespace, database: Any, folder: Path) -> None:
    print(
        f"\n(2) `owlat serve` processes on one database, {options.clients} HTTP clients "
        f"posting messages:send for {options.seconds:.0f} s"
    )
    print("(CPU: seconds per second; and µs per mutation: the nodes' and PostgreSQL's)")
    print(
        f"{'nodes':<8}{'mutations /s':>14}{'server CPU':>12}{'PG CPU':>8}{'client CPU':>12}"
        f"{'node µs':>9}{'PG µs':>7}"
    )
    for count in options.nodes:
        with database.schema() as url, serve_nodes(url, count, folder / f"n{count}") as nodes:
            throughput, server_cpu, database_cpu, client_cpu = await node_throughput(
                nodes, options.clients, options.seconds, postmaster_of(url)
            )
        print(
            f"{count:<8}{throughput:>14,.0f}{server_cpu:>12.2f}{database_cpu:>8.2f}"
            f"{client_cpu:>12.2f}{server_cpu / throughput * 1e6:>9,.0f}"
            f"{database_cpu / throughput * 1e6:>7,.0f}"
        )


async def commit_costs(
    url: str, commits: int, listeners: int, *, work: bool
) -> tuple[float, float, float]:
    """µs per commit: the committing backend's CPU, all of PostgreSQL's CPU, wall time."""
    import psycopg

    from owlat.runtime.database.commit_feed import encode_write_set
    from owlat.runtime.database.commits import WriteSet
    from owlat.runtime.database.postgres import PostgresEngine

    engine = PostgresEngine(url)
    await engine.open()  # the schema and the commit functions
    await engine.close()
    begin, lock = (
        "BEGIN ISOLATION LEVEL SERIALIZABLE",
        "LOCK TABLE owlat_commit_lock IN EXCLUSIVE MODE",
    )
    insert = (
        "WITH first AS (INSERT INTO owlat_documents (id, table_number, value) VALUES (%s, %s, %s))"
        " INSERT INTO owlat_index_entries (index_id, key, document_id)"
        " VALUES (%s, %s, %s), (%s, %s, %s)"
    )
    commit = "SELECT ts, previous FROM owlat_commit_v1(0, NULL, %s)"
    write_set = encode_write_set(WriteSet())
    value = b'{"channel":"bench","body":"m0"}' * 3
    db = await psycopg.AsyncConnection.connect(url, autocommit=True)
    others = [await psycopg.AsyncConnection.connect(url, autocommit=True) for _ in range(listeners)]
    try:
        channel = (
            await (await db.execute("SELECT 'owlat_commits_' || current_schema()")).fetchall()
        )[0][0]
        for other in others:
            await other.execute(f'LISTEN "{channel}"')
        row = await (await db.execute("SELECT pg_backend_pid()")).fetchone()
        assert row is not None
        backend, postmaster = int(row[0]), int(_stat(int(row[0]))[1])
        backend_before, server_before = cpu_seconds(backend), server_cpu_seconds(postmaster)
        start = time.perf_counter()
        cursor = psycopg.AsyncClientCursor(db)
        for _ in range(commits):
            document = uuid.uuid4().hex
            statements = [begin, lock]
            if work:
                keys = (1, document.encode(), document, 2, b"b" + document.encode(), document)
                statements.append(cursor.mogrify(insert, (document, 1, value, *keys)))
                statements.append(cursor.mogrify(commit, (write_set,)))
            await cursor.execute("; ".join([*statements, "COMMIT"]), prepare=False)
        wall = time.perf_counter() - start
        per = 1e6 / commits
        return (
            (cpu_seconds(backend) - backend_before) * per,
            (server_cpu_seconds(postmaster) - server_before) * per,
            wall * per,
        )
    finally:
        for connection in (db, *others):
            await connection.close()


async def _lock(options: argparse.Namespace, database: Any) -> None:
    print(f"\n(4) PostgreSQL per commit, {options.commits} one-document commits on one connection")
    print("(µs per commit: the committing backend's CPU, all of PostgreSQL's CPU, wall)")
    print(f"{'listeners':<11}{'backend':>9}{'PG':>7}{'wall':>7}{'baseline: lock only':>22}")
    for listeners in (0, 1, 3):
        with database.schema() as url:
            full = await commit_costs(url, options.commits, listeners, work=True)
        with database.schema() as url:
            bare = await commit_costs(url, options.commits, listeners, work=False)
        print(
            f"{listeners:<11}{full[0]:>9,.0f}{full[1]:>7,.0f}{full[2]:>7,.0f}"
            f"{bare[0]:>10,.0f}{bare[1]:>6,.0f}{bare[2]:>6,.0f}"
        )


async def _latency(options: argparse.Namespace, database: Any, folder: Path) -> None:
    print(
        f"\n(3) commit-to-subscriber latency, writer on node A at {options.rate:.0f}/s for "
        f"{options.seconds:.0f} s, {options.subscribers} sockets on each node"
    )
    with database.schema() as url, serve_nodes(url, 2, folder / "latency") as nodes:
        remote, local, commits, client_cpu = await cross_node_latency(
            nodes, options.subscribers, options.rate, options.seconds
        )
    print(f"{'subscribers on':<26}{'p50 ms':>8}{'p99 ms':>8}{'max ms':>8}{'samples':>9}")
    for label, values in (("node B (other node)", remote), ("node A (writer's node)", local)):
        print(
            f"{label:<26}{ms(percentile(values, 0.5)):>8}{ms(percentile(values, 0.99)):>8}"
            f"{ms(values[-1]):>8}{len(values):>9}"
        )
    print(f"({commits} commits; client process CPU {client_cpu:.2f} s/s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default="", help="a PostgreSQL server (CREATEDB)")
    parser.add_argument("--inserts", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument(
        "--nodes", type=lambda text: [int(n) for n in text.split(",")], default=[1, 2, 4]
    )
    parser.add_argument("--subscribers", type=int, default=10)
    parser.add_argument("--commits", type=int, default=2000)
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument(
        "--parts", type=lambda text: {int(n) for n in text.split(",")}, default={1, 2, 3, 4}
    )
    options = parser.parse_args()
    server_url = options.database_url or os.environ.get(URL_VARIABLE, "")
    if not server_url:
        if os.environ.get("OWLAT_BENCH_CLUSTER_STARTED"):
            raise SystemExit("scripts/pg-test-cluster could not start PostgreSQL")
        script = ROOT / "scripts" / "pg-test-cluster"
        env = {**os.environ, "OWLAT_BENCH_CLUSTER_STARTED": "1"}
        os.execve(script, [str(script), PYTHON, __file__, *sys.argv[1:]], env)
    asyncio.run(run(options, server_url))


if __name__ == "__main__":
    main()
