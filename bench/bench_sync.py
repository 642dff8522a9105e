"""Sync sockets at scale: many subscribed sockets, commits that touch one or all of them.

    .venv/bin/python bench/bench_sync.py [--sockets N] [--commits N]

Opens N sockets (raw protocol, `websockets`) against an in-process uvicorn server on the
fixture app; each subscribes to its own `messages:list` channel and to one shared channel.
Then measures (1) mutations/s with every socket subscribed, each mutation touching one
socket's private channel (the other N-1 subscriptions must cost ~nothing), and the latency
until that socket sees its Transition; (2) fan-out: one mutation on the shared channel,
the time until all N sockets have the update, and how many times the query actually ran.
Server and clients share one process and event loop, so client work is included.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import websockets
from starlette.applications import Starlette
from tests.e2e.conftest import serve_in_process

from owlat.runtime.auth import Authenticator
from owlat.runtime.server.websocket import service_routes
from owlat.runtime.sync.worker import SyncService
from owlat.runtime.testing import open_test_app


async def open_socket(url: str, number: int) -> Any:
    socket = await websockets.connect(url, max_size=None)
    add = [
        {
            "type": "Add",
            "queryId": 0,
            "udfPath": "messages:list",
            "args": [{"channel": f"c{number}"}],
        },
        {"type": "Add", "queryId": 1, "udfPath": "messages:list", "args": [{"channel": "shared"}]},
    ]
    await socket.send(
        json.dumps({"type": "Connect", "sessionId": str(uuid.uuid4()), "connectionCount": 0})
    )
    await socket.send(
        json.dumps(
            {"type": "ModifyQuerySet", "baseVersion": 0, "newVersion": 1, "modifications": add}
        )
    )
    await socket.recv()
    return socket


async def transition_with(socket: Any, query_id: int) -> None:
    while True:
        message = json.loads(await socket.recv())
        if message["type"] == "Transition" and any(
            m.get("queryId") == query_id for m in message["modifications"]
        ):
            return


async def main(sockets_count: int, commits: int) -> None:
    with tempfile.TemporaryDirectory() as data_dir:
        async with open_test_app("tests.fixtures.app", Path(data_dir)) as app:
            service = SyncService(app, Authenticator())
            async with serve_in_process(Starlette(routes=service_routes(service))) as base:
                url = base.replace("http://", "ws://") + "/api/sync"
                started = time.perf_counter()
                sockets = []
                for start in range(0, sockets_count, 100):
                    batch = range(start, min(start + 100, sockets_count))
                    sockets += await asyncio.gather(*(open_socket(url, n) for n in batch))
                print(
                    f"{sockets_count} sockets subscribed in {time.perf_counter() - started:.2f} s "
                    f"({service.subscriptions.cached_keys()} cached results)"
                )

                latencies = []
                started = time.perf_counter()
                for i in range(commits):
                    target = i % sockets_count
                    begin = time.perf_counter()
                    await app.run_mutation("messages:send", {"channel": f"c{target}", "body": "x"})
                    await transition_with(sockets[target], 0)
                    latencies.append(time.perf_counter() - begin)
                elapsed = time.perf_counter() - started
                print(
                    f"{commits} targeted commits: {commits / elapsed:.0f}/s, latency "
                    f"median {statistics.median(latencies) * 1000:.2f} ms, "
                    f"p99 {sorted(latencies)[int(len(latencies) * 0.99)] * 1000:.2f} ms"
                )

                runs = service.subscriptions.computations
                begin = time.perf_counter()
                await app.run_mutation("messages:send", {"channel": "shared", "body": "all"})
                await asyncio.gather(*(transition_with(s, 1) for s in sockets))
                print(
                    f"fan-out of one commit to {sockets_count} sockets: "
                    f"{(time.perf_counter() - begin) * 1000:.0f} ms, "
                    f"{service.subscriptions.computations - runs} query run(s)"
                )
                for socket in sockets:
                    await socket.close()
            service.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sockets", type=int, default=1000)
    parser.add_argument("--commits", type=int, default=500)
    options = parser.parse_args()
    asyncio.run(main(options.sockets, options.commits))
