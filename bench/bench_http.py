"""`POST /api/query` throughput vs a plain Starlette endpoint doing the same read (issue 3).

    .venv/bin/python bench/bench_http.py [--connections 32] [--seconds 5] [--rounds 2]

A data folder of the fixture app gets `--documents` messages. Two servers then run in
their own processes with the same uvicorn settings (bench/_harness.py: uvloop + httptools
when installed, as `owlat dev` runs): Owlat's client API over that folder, and the
baseline, a plain Starlette app with one endpoint that reads the same document from the
same SQLite file with the same driver (stdlib `sqlite3`, one deferred transaction per
request) and answers `{status, value, logLines}`.

The read: `messages:get {"id": ...}`, a point read through the `by_id` index, with ids
cycling over every document. Load comes from another process (a minimal HTTP/1.1
keep-alive client on asyncio, `--connections` connections each with one request in
flight, so the generator stays far cheaper than the servers); each measurement is a 1 s
warm-up then `--seconds`. Rounds alternate baseline, Owlat. Printed: requests/s of both
(best round), the ratio, and each server's CPU use during its window (near 100% of one
core means the server, not the load generator, is the limit). Goal: ratio >= 0.8.

A third server, Owlat with metrics off (`Application(metrics=False)`, as OWLAT_METRICS=0),
measures what counting calls for /metrics costs: goal, at most 3 % of the throughput.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import APP, PYTHON, ServerProcess, cpu_seconds

# -- the load generator (its own process) --------------------------------------------------


def request_bytes(port: int, path: str, body: dict[str, Any]) -> bytes:
    data = json.dumps(body).encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
    )
    return head.encode() + data


async def connection(
    port: int,
    requests: list[bytes],
    offset: int,
    start_at: float,
    stop_at: float,
    totals: dict[str, int],
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    i = offset
    try:
        while (now := time.perf_counter()) < stop_at:
            writer.write(requests[i % len(requests)])
            i += 1
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            body = await reader.readexactly(length)
            if now < start_at:
                continue
            totals["requests"] += 1
            if head[9:12] != b"200" or b'"success"' not in body:
                totals["errors"] += 1
    finally:
        writer.close()


async def load(
    port: int, path: str, ids: list[str], connections: int, warmup: float, seconds: float
) -> dict[str, Any]:
    body = {"path": "messages:get", "format": "json"}
    requests = [request_bytes(port, path, {**body, "args": {"id": i}}) for i in ids]
    totals = {"requests": 0, "errors": 0}
    start_at = time.perf_counter() + warmup
    stop_at = start_at + seconds
    cpu = time.process_time()
    await asyncio.gather(
        *(connection(port, requests, k * 97, start_at, stop_at, totals) for k in range(connections))
    )
    return {
        **totals,
        "seconds": seconds,
        "client_cpu": (time.process_time() - cpu) / (warmup + seconds),
    }


def run_load(url: str, path: str, ids_file: Path, options: argparse.Namespace) -> dict[str, Any]:
    process = subprocess.run(
        [
            PYTHON,
            __file__,
            "--role",
            "load",
            "--url",
            url,
            "--path",
            path,
            "--ids",
            str(ids_file),
            "--connections",
            str(options.connections),
            "--seconds",
            str(options.seconds),
        ],
        capture_output=True,
        text=True,
        timeout=options.seconds + 60,
        check=True,
    )
    result: dict[str, Any] = json.loads(process.stdout)
    return result


def load_main(options: argparse.Namespace) -> None:
    ids = json.loads(Path(options.ids).read_text())
    port = int(options.url.rsplit(":", 1)[1])
    runner: Any = asyncio.run
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:
        pass
    result = runner(load(port, options.path, ids, options.connections, 1.0, options.seconds))
    print(json.dumps(result))


# -- the coordinator ---------------------------------------------------------------------


async def fill(data_dir: Path, documents: int) -> list[str]:
    from owlat.runtime.testing import open_test_app

    async with open_test_app(APP, data_dir, scheduler_parallelism=None) as app:
        return [
            (
                await app.run_mutation(
                    "messages:send", {"channel": f"c{i % 10}", "body": f"message {i}"}
                )
            ).value
            for i in range(documents)
        ]


def check_same_answer(owlat_url: str, raw_url: str, document_id: str) -> None:
    import httpx

    body = {"path": "messages:get", "args": {"id": document_id}, "format": "json"}
    ours = httpx.post(owlat_url + "/api/query", json=body).json()
    raw = httpx.post(raw_url + "/raw/get", json=body).json()
    if ours != raw:
        raise SystemExit(f"the two endpoints answer differently:\n{ours}\n{raw}")


def measure(
    server: ServerProcess, path: str, ids_file: Path, options: argparse.Namespace
) -> dict[str, Any]:
    cpu, wall = cpu_seconds(server.pid), time.perf_counter()
    result = run_load(server.url, path, ids_file, options)
    result["server_cpu"] = (cpu_seconds(server.pid) - cpu) / (time.perf_counter() - wall)
    result["rate"] = result["requests"] / result["seconds"]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--documents", type=int, default=1000)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--profile-server",
        type=Path,
        help="cProfile Owlat's server during the run; stats written here",
    )
    parser.add_argument("--role", default="coordinator", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--path", help=argparse.SUPPRESS)
    parser.add_argument("--ids", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.role == "load":
        load_main(options)
        return
    from owlat.runtime.database.engines import SQLITE_FILE

    print(
        f"bench_http: messages:get by id over {options.documents} documents, "
        f"{options.connections} connections, {options.seconds:.0f} s per measurement, "
        f"{options.rounds} rounds"
    )
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        ids = asyncio.run(fill(folder / "data", options.documents))
        ids_file = folder / "ids.json"
        ids_file.write_text(json.dumps(ids))
        owlat_args = ["owlat", "--data-dir", str(folder / "data")]
        if options.profile_server:
            owlat_args += ["--profile", str(options.profile_server)]
        raw_args = ["raw", "--database", str(folder / "data" / SQLITE_FILE)]
        rounds: dict[str, list[dict[str, Any]]] = {"raw": [], "owlat": [], "bare": []}
        with (
            ServerProcess(owlat_args, folder / "owlat.json") as owlat,
            ServerProcess([*owlat_args, "--no-metrics"], folder / "bare.json") as bare,
            ServerProcess(raw_args, folder / "raw.json") as raw,
        ):
            check_same_answer(owlat.url, raw.url, ids[0])
            for _ in range(options.rounds):
                rounds["raw"].append(measure(raw, "/raw/get", ids_file, options))
                rounds["owlat"].append(measure(owlat, "/api/query", ids_file, options))
                rounds["bare"].append(measure(bare, "/api/query", ids_file, options))
    print(
        f"{'endpoint':<36}{'requests/s':>12}{'errors':>8}{'server CPU':>12}"
        f"{'loadgen CPU':>13}   rounds (req/s)"
    )
    labels = {
        "raw": "plain Starlette + sqlite3 (baseline)",
        "owlat": "Owlat POST /api/query",
        "bare": "Owlat, metrics off",
    }
    best = {}
    for key, label in labels.items():
        top = max(rounds[key], key=lambda r: r["rate"])
        best[key] = top["rate"]
        each = ", ".join(f"{r['rate']:,.0f}" for r in rounds[key])
        print(
            f"{label:<36}{top['rate']:>12,.0f}{top['errors']:>8}"
            f"{top['server_cpu'] * 100:>11.0f}%{top['client_cpu'] * 100:>12.0f}%   {each}"
        )
    print(f"ratio Owlat / baseline: {best['owlat'] / best['raw']:.2f}   (goal >= 0.80)")
    cost = 1 - best["owlat"] / best["bare"]
    print(f"cost of metrics: {cost * 100:.1f} % of the throughput   (goal <= 3 %)")


if __name__ == "__main__":
    main()
