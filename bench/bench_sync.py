"""Sync sockets at scale (issue 3): commit-to-subscriber latency, and idle sessions per GB.

    .venv/bin/python bench/bench_sync.py [--sessions 1000] [--rate 100] [--seconds 10]
        [--shared-fraction 0.5] [--client-procs 2] [--idle-steps 1000,2000,5000,8000]
        [--no-compression] [--server-deflate]

The server runs in its own process (bench/_harness.py: the fixture app's `create_app` on
uvicorn, configured as `owlat dev` configures it); the WebSocket clients (the `websockets`
library, speaking the sync protocol) run in `--client-procs` other processes, so client
work does not slow the server down. All processes share this machine's clock. The clients
offer permessage-deflate as browsers do (`--no-compression`: they don't); the server, like
`owlat dev`, declines it (`--server-deflate`: it accepts).

(1) Latency. `--sessions` sockets each subscribe to one query, `counters:get`: the first
half all to `{"name": "shared"}` (one shared result), the second half each to its own
`{"name": "c<i>"}`. A writer (this process, HTTP `POST /api/mutation` with the admin key)
commits `counters:increment` at `--rate` per second for `--seconds` (after a 1 s
warm-up): a `--shared-fraction` of the commits increment the shared counter (a push to
half the sockets), the rest one distinct counter each, round-robin (a push to one socket).
The server records the wall-clock time at which each commit is published; each client
records when a Transition carrying a value >= the committed count arrives. Latency = arrival
- commit, for every (commit, subscribed socket) pair: p50, p99, max, overall and per kind.
Goal: p50 <= 10 ms, p99 <= 50 ms. The server's CPU use during the window shows how close it
is to saturation; divided by the Transitions that arrived in the window it is the server CPU
per pushed Transition (goal <= 30 µs, issue 19). The floor, measured right after: this
process writing one prebuilt frame to each of half as many loopback sockets per round, with
no server code at all (what the writes alone cost in CPU, and how long 500 of them take on
the machine as loaded now).

(2) Idle sessions. A fresh server; sessions are opened in steps (`--idle-steps`), each
subscribed to its own `counters:get` query; after each step the server's VmRSS
(/proc/<pid>/status) is printed. Stops at the last step or once RSS passes 1 GiB.
Goal: >= 5,000 sessions under 1 GiB. Baseline: the RSS of the same server with no session.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import json
import math
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import (
    PYTHON,
    RawHttpClient,
    ServerProcess,
    children,
    cpu_seconds,
    percentile,
    raise_fd_limit,
    rss_mb,
)

WARMUP_SECONDS = 1.0
DRAIN_SECONDS = 1.5
RSS_LIMIT_MB = 1024


def query_name(index: int, plan: str, half: int) -> str:
    if plan == "distinct":
        return f"i{index}"
    return "shared" if index < half else f"c{index}"


# -- the client processes ------------------------------------------------------------------


class Clients:
    """Inside a client process: sockets, and what they received while recording."""

    def __init__(self, url: str) -> None:
        self.url = url.replace("http://", "ws://") + "/api/sync"
        self.sockets: dict[int, Any] = {}
        self.readers: list[asyncio.Task[None]] = []
        self.recording = False
        self.log: list[tuple[int, int, str]] = []
        self.compression: str | None = "deflate"

    async def open_one(self, index: int, name: str) -> None:
        from websockets.asyncio.client import connect

        socket = await connect(
            self.url,
            max_size=None,
            ping_interval=None,
            compression=self.compression,
            open_timeout=60,
        )
        await socket.send(
            json.dumps({"type": "Connect", "sessionId": str(uuid.uuid4()), "connectionCount": 0})
        )
        await socket.send(
            json.dumps(
                {
                    "type": "ModifyQuerySet",
                    "baseVersion": 0,
                    "newVersion": 1,
                    "modifications": [
                        {
                            "type": "Add",
                            "queryId": 0,
                            "udfPath": "counters:get",
                            "args": [{"name": name}],
                        }
                    ],
                }
            )
        )
        first = json.loads(await socket.recv())
        assert first["type"] == "Transition", first
        self.sockets[index] = socket
        self.readers.append(asyncio.create_task(self.read(index, socket)))

    async def read(self, index: int, socket: Any) -> None:
        from websockets.exceptions import ConnectionClosed

        try:
            async for text in socket:
                now = time.time_ns()
                if self.recording:
                    self.log.append((index, now, text))
        except ConnectionClosed:
            pass

    async def open(self, indices: list[int], plan: str, half: int) -> None:
        for start in range(0, len(indices), 100):
            batch = indices[start : start + 100]
            await asyncio.gather(*(self.open_one(i, query_name(i, plan, half)) for i in batch))

    def dump(self, path: str) -> int:
        records = []
        for index, at, text in self.log:
            message = json.loads(text)
            if message.get("type") != "Transition":
                continue
            for modification in message["modifications"]:
                if modification.get("type") == "QueryUpdated":
                    records.append((index, modification["value"], at))
        Path(path).write_text(json.dumps(records))
        return len(records)

    async def close(self) -> None:
        for start in range(0, len(self.sockets), 200):
            batch = list(self.sockets.values())[start : start + 200]
            await asyncio.gather(*(socket.close() for socket in batch), return_exceptions=True)
        for task in self.readers:
            task.cancel()
        await asyncio.gather(*self.readers, return_exceptions=True)


async def client_main(url: str, compression: bool) -> None:
    raise_fd_limit()
    clients = Clients(url)
    clients.compression = "deflate" if compression else None
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

    def reply(body: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(body) + "\n")
        sys.stdout.flush()

    while line := await reader.readline():
        command = json.loads(line)
        kind = command["cmd"]
        try:
            if kind == "open":
                await clients.open(command["indices"], command["plan"], command["half"])
                reply({"ok": True, "open": len(clients.sockets)})
            elif kind == "record":
                clients.recording = command["on"]
                reply({"ok": True})
            elif kind == "dump":
                reply({"ok": True, "records": clients.dump(command["path"])})
            elif kind == "close":
                await clients.close()
                reply({"ok": True})
                return
        except Exception as error:  # report to the coordinator instead of hanging it
            reply({"ok": False, "error": repr(error)})
            return


class ClientProcess:
    """The coordinator's handle on one client process (JSON lines over stdin/stdout)."""

    def __init__(self, url: str, compression: bool) -> None:
        flags = [] if compression else ["--no-compression"]
        self.process = subprocess.Popen(
            [PYTHON, __file__, "--role", "clients", "--url", url, *flags],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def send(self, **command: Any) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()

    def answer(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError("client process died")
        body: dict[str, Any] = json.loads(line)
        if not body.get("ok"):
            raise RuntimeError(f"client process failed: {body.get('error')}")
        return body


def broadcast(clients: list[ClientProcess], commands: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for client, command in zip(clients, commands, strict=True):
        client.send(**command)
    return [client.answer() for client in clients]


# -- the writer --------------------------------------------------------------------------


def commit_names(total: int, shared_fraction: float, half: int, sessions: int) -> list[str]:
    names, distinct = [], 0
    for i in range(total):
        if math.floor((i + 1) * shared_fraction) > math.floor(i * shared_fraction):
            names.append("shared")
        else:
            names.append(f"c{half + distinct % (sessions - half)}")
            distinct += 1
    return names


async def write(url: str, admin_key: str, names: list[str], rate: float) -> dict[str, Any]:
    """Commit `counters:increment` for each name, one every 1/rate s, over HTTP."""
    port = int(url.rsplit(":", 1)[1])
    errors = 0

    async def one(http: RawHttpClient, name: str) -> None:
        nonlocal errors
        status, body = await http.post(
            "/api/mutation",
            {"path": "counters:increment", "args": {"name": name}, "format": "json"},
        )
        if status != 200 or b'"success"' not in body:
            errors += 1

    async with RawHttpClient(port, 16, {"Authorization": f"Convex {admin_key}"}) as http:
        tasks = []
        start = time.perf_counter()
        for i, name in enumerate(names):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(http, name)))
        await asyncio.gather(*tasks)
    return {"errors": errors}


# -- the coordinator ---------------------------------------------------------------------


def split(indices: list[int], parts: int) -> list[list[int]]:
    return [indices[k::parts] for k in range(parts)]


def latency_phase(options: argparse.Namespace, folder: Path) -> None:
    sessions, half = options.sessions, options.sessions // 2
    commits_file = folder / "commits.json"
    server_args = ["owlat", "--data-dir", str(folder / "latency"), "--commits", str(commits_file)]
    if options.server_deflate:
        server_args.append("--deflate")
    if options.profile_server:
        server_args += ["--profile", str(options.profile_server)]
    with ServerProcess(server_args, folder / "latency.json") as server:
        clients = [
            ClientProcess(server.url, options.compression) for _ in range(options.client_procs)
        ]
        with children([client.process for client in clients]):
            started = time.perf_counter()
            broadcast(
                clients,
                [
                    {"cmd": "open", "indices": part, "plan": "mix", "half": half}
                    for part in split(list(range(sessions)), len(clients))
                ],
            )
            print(
                f"{sessions} sessions subscribed in {time.perf_counter() - started:.1f} s "
                f"(server RSS {rss_mb(server.pid):.0f} MiB)"
            )
            broadcast(clients, [{"cmd": "record", "on": True}] * len(clients))
            warm = commit_names(
                int(WARMUP_SECONDS * options.rate), options.shared_fraction, half, sessions
            )
            asyncio.run(write(server.url, server.admin_key, warm, options.rate))
            measured_from = time.time_ns()
            pids = [server.pid, *(client.process.pid for client in clients)]
            cpu_before, wall_before = [cpu_seconds(pid) for pid in pids], time.perf_counter()
            names = commit_names(
                int(options.seconds * options.rate), options.shared_fraction, half, sessions
            )
            written = asyncio.run(write(server.url, server.admin_key, names, options.rate))
            wall = time.perf_counter() - wall_before
            measured_to = time.time_ns()
            cpu = [
                (cpu_seconds(pid) - before) / wall
                for pid, before in zip(pids, cpu_before, strict=True)
            ]
            time.sleep(DRAIN_SECONDS)
            dumps = [folder / f"received{k}.json" for k in range(len(clients))]
            answers = broadcast(clients, [{"cmd": "dump", "path": str(p)} for p in dumps])
            transitions = sum(answer["records"] for answer in answers)
            broadcast(clients, [{"cmd": "close"}] * len(clients))
            for client in clients:
                client.process.wait(30)
    commits = json.loads(commits_file.read_text())
    received: dict[int, tuple[list[float], list[int]]] = {}
    in_window = 0  # Transitions that arrived while the server's CPU was measured
    for path in dumps:
        for index, value, at in sorted(json.loads(path.read_text()), key=lambda r: r[2]):
            in_window += measured_from <= at <= measured_to
            values, times = received.setdefault(index, ([], []))
            values.append(value)
            times.append(at)
    subscribers: dict[str, list[int]] = {}
    for index in range(sessions):
        subscribers.setdefault(query_name(index, "mix", half), []).append(index)
    latencies: dict[str, list[float]] = {"shared": [], "distinct": []}
    missing = 0
    window = [at for _, _, at in commits if at >= measured_from]
    achieved = (len(window) - 1) / ((window[-1] - window[0]) / 1e9) if len(window) > 1 else 0
    for name, count, at in commits:
        if at < measured_from:
            continue
        kind = "shared" if name == "shared" else "distinct"
        for index in subscribers.get(name, ()):
            values, times = received.get(index, ([], []))
            i = bisect.bisect_left(values, count)
            if i == len(values):
                missing += 1
            else:
                latencies[kind].append((times[i] - at) / 1e6)
    print(
        f"writer: {len(window)} commits at {achieved:.0f}/s "
        f"({written['errors']} errors); {transitions} Transitions received for "
        f"{sum(map(len, latencies.values()))} (commit, subscriber) pairs, {missing} missing; "
        f"CPU (% of one core): "
        f"server {cpu[0] * 100:.0f}%, clients "
        f"{' + '.join(f'{c * 100:.0f}%' for c in cpu[1:])}"
    )
    print(
        f"server CPU per pushed Transition: {cpu[0] * wall / max(1, in_window) * 1e6:.1f} µs "
        f"({cpu[0] * wall:.2f} s over {in_window} Transitions in the writer's window; "
        "goal <= 30 µs)"
    )
    print(
        f"{'commit -> subscriber latency':<34}{'pushes':>8}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}"
    )
    rows = [
        ("all", latencies["shared"] + latencies["distinct"]),
        (f"shared query ({half} sockets)", latencies["shared"]),
        ("distinct queries (1 socket each)", latencies["distinct"]),
    ]
    for label, values in rows:
        values.sort()
        print(
            f"  {label:<32}{len(values):>8}{percentile(values, 0.5):>9.1f}"
            f"{percentile(values, 0.99):>9.1f}{(values[-1] if values else math.nan):>9.1f}"
        )
    print("  goal: p50 <= 10 ms, p99 <= 50 ms")


FLOOR_FRAME_BYTES = 180  # about a shared `counters:get` Transition
FLOOR_ROUNDS = 100


def _floor_sink(port: Any) -> None:
    """A process reading and dropping whatever its connections send."""

    async def serve() -> None:
        async def drain(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            while await reader.read(65536):
                pass

        server = await asyncio.start_server(drain, "127.0.0.1", 0, backlog=4096)
        port.put(server.sockets[0].getsockname()[1])
        await asyncio.sleep(3600)

    asyncio.run(serve())


def floor_phase(sockets: int) -> None:
    """The floor under the fan-out: this process (no server code at all) writing one
    prebuilt WebSocket frame to each of `sockets` loopback TCP connections per round, as a
    push to a shared query does; the readers are another process."""
    import multiprocessing
    import socket

    port: Any = multiprocessing.Queue()
    sink = multiprocessing.Process(target=_floor_sink, args=(port,), daemon=True)
    sink.start()

    async def write_rounds(port_number: int) -> tuple[float, list[float]]:
        loop = asyncio.get_running_loop()
        transports = []
        for _ in range(sockets):
            transport, _protocol = await loop.create_connection(
                asyncio.Protocol, "127.0.0.1", port_number
            )
            transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            transports.append(transport)
        frame = b"\x81\x7e" + FLOOR_FRAME_BYTES.to_bytes(2, "big") + b"x" * FLOOR_FRAME_BYTES
        rounds, cpu = [], time.process_time()
        for _ in range(FLOOR_ROUNDS):
            started = time.perf_counter()
            for transport in transports:
                transport.write(frame)
            rounds.append((time.perf_counter() - started) * 1000)
            await asyncio.sleep(0.01)
        cpu = time.process_time() - cpu
        for transport in transports:
            transport.close()
        return cpu / (sockets * FLOOR_ROUNDS) * 1e6, sorted(rounds)

    try:
        import uvloop

        per_write, rounds = uvloop.run(write_rounds(port.get(timeout=30)))
    except ImportError:
        per_write, rounds = asyncio.run(write_rounds(port.get(timeout=30)))
    finally:
        sink.terminate()
    print(
        f"floor, same machine now: writing a prebuilt {FLOOR_FRAME_BYTES}-byte frame to each of "
        f"{sockets} sockets costs {per_write:.1f} µs CPU per write; the {sockets} writes take "
        f"p50 {percentile(rounds, 0.5):.1f} ms, p99 {percentile(rounds, 0.99):.1f} ms"
    )


def idle_phase(options: argparse.Namespace, folder: Path) -> None:
    steps = [int(step) for step in options.idle_steps.split(",") if step]
    with ServerProcess(
        ["owlat", "--data-dir", str(folder / "idle"), *(["--deflate"] * options.server_deflate)],
        folder / "idle.json",
        stop_timeout=60,
    ) as server:
        clients = [
            ClientProcess(server.url, options.compression) for _ in range(options.client_procs)
        ]
        with children([client.process for client in clients]):
            time.sleep(0.5)
            print(f"{'idle sessions':<16}{'server RSS MiB':>16}{'KiB/session':>13}{'open s':>8}")
            baseline = rss_mb(server.pid)
            print(f"{0:<16}{baseline:>16.0f}{'':>13}{'':>8}")
            opened = 0
            for step in steps:
                started = time.perf_counter()
                new = list(range(opened, step))
                broadcast(
                    clients,
                    [
                        {"cmd": "open", "indices": part, "plan": "distinct", "half": 0}
                        for part in split(new, len(clients))
                    ],
                )
                opened = step
                elapsed = time.perf_counter() - started
                time.sleep(1.0)
                rss = rss_mb(server.pid)
                per = (rss - baseline) * 1024 / step
                print(f"{step:<16}{rss:>16.0f}{per:>13.0f}{elapsed:>8.1f}")
                if rss >= RSS_LIMIT_MB:
                    break
            broadcast(clients, [{"cmd": "close"}] * len(clients))
            for client in clients:
                client.process.wait(60)
    print("  goal: >= 5,000 idle sessions with RSS < 1 GiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=100.0, help="commits per second")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured writer time")
    parser.add_argument(
        "--shared-fraction",
        type=float,
        default=0.5,
        help="fraction of commits that change the shared query",
    )
    parser.add_argument("--client-procs", type=int, default=2)
    parser.add_argument("--idle-steps", default="1000,2000,5000,8000")
    parser.add_argument(
        "--no-compression",
        dest="compression",
        action="store_false",
        help="clients do not offer permessage-deflate (default: they do, as browsers do)",
    )
    parser.add_argument(
        "--server-deflate",
        action="store_true",
        help="the server accepts permessage-deflate (default: declines it, as `owlat dev`)",
    )
    parser.add_argument(
        "--profile-server",
        type=Path,
        help="cProfile the latency phase's server; stats written here",
    )
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--skip-idle", action="store_true")
    parser.add_argument("--role", default="coordinator", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.role == "clients":
        try:
            import uvloop

            uvloop.run(client_main(options.url, options.compression))
        except ImportError:
            asyncio.run(client_main(options.url, options.compression))
        return
    print(
        f"bench_sync: {options.sessions} sessions, {options.rate:.0f} commits/s for "
        f"{options.seconds:.0f} s, shared fraction {options.shared_fraction}, "
        f"{options.client_procs} client processes, permessage-deflate offered by the clients: "
        f"{'yes' if options.compression else 'no'}, accepted by the server: "
        f"{'yes' if options.server_deflate else 'no'}"
    )
    with tempfile.TemporaryDirectory() as folder:
        if not options.skip_latency:
            latency_phase(options, Path(folder))
            floor_phase(options.sessions // 2)
        if not options.skip_idle:
            idle_phase(options, Path(folder))


if __name__ == "__main__":
    main()
