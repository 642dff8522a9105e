"""Shared pieces of the benchmarks that run a real server in its own process.

    python bench/_harness.py owlat --data-dir D --info F [--commits F] [--deflate]
    python bench/_harness.py raw --database PATH --info F

`owlat` serves the fixture app's client API (`create_app`: HTTP API + sync WebSocket) with
uvicorn configured as `owlat dev/serve` configures it (uvloop + httptools when installed,
`ws="websockets-sansio"` without permessage-deflate, scheduler running), on a free
127.0.0.1 port; `--deflate` accepts permessage-deflate instead. With `--commits` it also
records, for every commit that writes a `counters` document, `(name, count, time_ns)` at
the moment the commit is published, and writes them to that file on shutdown.

`raw` serves a plain Starlette app (no Owlat code) with the same uvicorn settings: one
endpoint reading a document of an Owlat SQLite file with stdlib `sqlite3` (bench_http.py).

Both write `{"port", "pid", "admin_key"}` to `--info` once listening and stop gracefully on
SIGTERM. `ServerProcess` starts either as a subprocess and always stops it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))

APP = "tests.fixtures.app"
PYTHON = sys.executable


def raise_fd_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def rss_mb(pid: int) -> float:
    """Resident set size of process `pid` (VmRSS) in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def rss_anon_mb(pid: int) -> float:
    """The anonymous part of the resident set (RssAnon: heap and stacks, not mapped files
    such as SQLite's memory-mapped database) of process `pid`, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no RssAnon for {pid}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process `pid` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(sorted_values: list[float], fraction: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(fraction * len(sorted_values)) - 1))
    return sorted_values[index]


def uvicorn_config(app: Any, *, deflate: bool = False) -> Any:
    import uvicorn

    return uvicorn.Config(
        app,
        host="127.0.0.1",
        port=0,
        ws="websockets-sansio",
        ws_per_message_deflate=deflate,
        lifespan="on",
        log_level="warning",
        access_log=False,
    )


def _run(config: Any, info: Path, extra: dict[str, Any], profile: Path | None = None) -> None:
    """Serve until SIGTERM/SIGINT. uvicorn re-raises the signal to the previous handler
    after its graceful shutdown; a no-op one lets this process go on (and save records).
    With `profile`, the whole run is profiled with cProfile (stats written there)."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: None)
    with asyncio.Runner(loop_factory=config.get_loop_factory()) as runner:
        if profile is None:
            runner.run(_serve(config, info, extra))
            return
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
        try:
            runner.run(_serve(config, info, extra))
        finally:
            profiler.disable()
            profiler.dump_stats(profile)


async def _serve(config: Any, info: Path, extra: dict[str, Any]) -> None:
    import uvicorn

    from owlat.runtime.server import listen_socket

    sock = listen_socket("127.0.0.1", 0)
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started and not serving.done():  # noqa: ASYNC110
        await asyncio.sleep(0.01)
    if server.started:
        body = {"port": sock.getsockname()[1], "pid": os.getpid(), **extra}
        tmp = info.with_suffix(".tmp")
        tmp.write_text(json.dumps(body))
        tmp.rename(info)
    await serving


def serve_owlat(
    data_dir: Path,
    info: Path,
    commits: Path | None,
    profile: Path | None = None,
    *,
    deflate: bool = False,
    metrics: bool = True,
) -> None:
    import logging

    from owlat.runtime.app_package import load_app_package
    from owlat.runtime.application import Application
    from owlat.runtime.auth import Authenticator, load_or_create_admin_key
    from owlat.runtime.database.commits import Commit
    from owlat.runtime.database.engines import create_engine
    from owlat.runtime.server import create_app

    logging.basicConfig(level=logging.WARNING)
    raise_fd_limit()
    application = Application(
        load_app_package(APP), create_engine(data_dir), scheduler_parallelism=8, metrics=metrics
    )
    records: list[tuple[str, float, int]] = []
    if commits is not None:

        def on_commit(commit: Commit) -> None:
            now = time.time_ns()
            for change in commit.write_set.documents:
                if change.table == "counters" and change.new is not None:
                    records.append((change.new["name"], change.new["count"], now))

        application.on_commit(on_commit)  # before the sync layer's listener
    admin_key = load_or_create_admin_key(data_dir)
    app = create_app(application, Authenticator([], admin_key=admin_key))
    _run(uvicorn_config(app, deflate=deflate), info, {"admin_key": admin_key}, profile)
    if commits is not None:
        commits.write_text(json.dumps(records))


def raw_app(database: Path) -> Any:
    """A plain Starlette app: `POST /raw/get {"args": {"id": ...}}` reads the document
    with that id from an Owlat SQLite file (stdlib sqlite3, WAL, a reader connection kept
    open, one deferred transaction per request as Owlat reads) and answers it in Convex's
    `{status, value, logLines}` shape."""
    import sqlite3

    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    db = sqlite3.connect(database, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = NORMAL")

    async def get(request: Request) -> JSONResponse:
        body = await request.json()
        db.execute("BEGIN")
        try:
            row = db.execute(
                "SELECT value FROM owlat_documents WHERE id = ?", (body["args"]["id"],)
            ).fetchone()
        finally:
            db.execute("COMMIT")
        value = None if row is None else json.loads(row[0])
        return JSONResponse({"status": "success", "value": value, "logLines": []})

    return Starlette(routes=[Route("/raw/get", get, methods=["POST"])])


def serve_raw(database: Path, info: Path, profile: Path | None = None) -> None:
    _run(uvicorn_config(raw_app(database)), info, {}, profile)


class RawHttpClient:
    """A minimal HTTP/1.1 keep-alive client for JSON POSTs to 127.0.0.1 (responses with a
    Content-Length only): far cheaper per request than httpx, so the process generating
    load stays light. `connections` requests can be in flight at once."""

    def __init__(self, port: int, connections: int, headers: dict[str, str] | None = None):
        self.port = port
        self.count = connections
        self.headers = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        self._idle: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = (
            asyncio.Queue()
        )
        self._all: list[asyncio.StreamWriter] = []

    async def __aenter__(self) -> RawHttpClient:
        for _ in range(self.count):
            reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
            self._all.append(writer)
            self._idle.put_nowait((reader, writer))
        return self

    async def __aexit__(self, *exc: object) -> None:
        for writer in self._all:
            writer.close()

    async def post(self, path: str, body: Any) -> tuple[int, bytes]:
        data = json.dumps(body).encode()
        head = (
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n{self.headers}"
            f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
        )
        reader, writer = await self._idle.get()
        try:
            writer.write(head.encode() + data)
            return await read_response(reader)
        finally:
            self._idle.put_nowait((reader, writer))


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """Status and body of one HTTP/1.1 response with a Content-Length."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    return int(head[9:12]), await reader.readexactly(length)


class ServerProcess:
    """`with ServerProcess([...args of this script...], info) as server:` a server
    subprocess; `server.url`, `server.pid`, `server.admin_key`. Stopped with SIGTERM
    (graceful; SIGKILL after `stop_timeout`)."""

    def __init__(self, args: list[str], info: Path, *, stop_timeout: float = 30.0) -> None:
        self.args = args
        self.info = info
        self.stop_timeout = stop_timeout
        self.process: subprocess.Popen[bytes] | None = None
        self.url = ""
        self.pid = 0
        self.admin_key = ""

    def __enter__(self) -> ServerProcess:
        self.process = subprocess.Popen(
            [PYTHON, str(Path(__file__)), *self.args, "--info", str(self.info)]
        )
        deadline = time.monotonic() + 60
        while not self.info.exists():
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("server did not start within 60 s")
            time.sleep(0.02)
        body = json.loads(self.info.read_text())
        self.url = f"http://127.0.0.1:{body['port']}"
        self.pid = body["pid"]
        self.admin_key = body.get("admin_key", "")
        return self

    def stop(self) -> None:
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(self.stop_timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def children(processes: list[subprocess.Popen[Any]]) -> Iterator[list[subprocess.Popen[Any]]]:
    """Kill (by pid) whichever of `processes` are still running when the block ends."""
    try:
        yield processes
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("kind", choices=["owlat", "raw"])
    parser.add_argument("--data-dir", type=Path)
    parser.add_argument("--database", type=Path)
    parser.add_argument("--info", type=Path, required=True)
    parser.add_argument("--commits", type=Path)
    parser.add_argument("--profile", type=Path, help="write cProfile stats of the server here")
    parser.add_argument("--deflate", action="store_true", help="offer permessage-deflate")
    parser.add_argument("--no-metrics", action="store_true", help="count nothing for /metrics")
    options = parser.parse_args()
    if options.kind == "owlat":
        serve_owlat(
            options.data_dir,
            options.info,
            options.commits,
            options.profile,
            deflate=options.deflate,
            metrics=not options.no_metrics,
        )
    else:
        serve_raw(options.database, options.info, options.profile)


if __name__ == "__main__":
    main()
