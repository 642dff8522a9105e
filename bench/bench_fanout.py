"""The sync fan-out in one process (issue 19): CPU per socket of pushing a commit.

    .venv/bin/python bench/bench_fanout.py [--sockets 500] [--commits 200] [--repeat 2]
        [--code /work/main]

`--sockets` sync workers (the real `SyncService` / `SyncWorker`, on the fixture app in a
temporary folder) subscribe to one shared query, `counters:get {"name": "n"}`; then
`--commits` mutations each change it, and the CPU time of the push task that walks the
invalidated sockets is measured (process time, from the commit to the last frame). Frames
go to a list instead of a socket, so this is the Python part of a push without the write
syscall and without HTTP (bench_sync.py measures the whole server).

`--code` measures another checkout's `src/` (and its fixture app) with this script, e.g. the
code before a change, in the same minutes. Baseline, in the same run and independent of the
code measured: per socket, formatting its frame from prebuilt pieces (its versions, the
shared result's bytes) and handing it to the same writer, with no Owlat code at all.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import struct
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path


class ListTransport:
    """A worker's transport whose frames are counted, not sent."""

    def __init__(self) -> None:
        self.incoming: asyncio.Queue[str | None] = asyncio.Queue()
        self.frames = 0

    async def receive(self) -> str | None:
        return await self.incoming.get()

    async def send(self, text: str) -> None:
        self.write(text.encode())

    def sender(self) -> Callable[[bytes], None]:
        return self.write

    def write(self, frame: bytes) -> None:
        self.frames += 1


def subscribed(k: int) -> ListTransport:
    """A socket whose client connects and subscribes to the shared query (queryId 0)."""
    transport = ListTransport()
    add = {"type": "Add", "queryId": 0, "udfPath": "counters:get", "args": [{"name": "n"}]}
    transport.incoming.put_nowait(json.dumps({"type": "Connect", "sessionId": f"s{k}"}))
    transport.incoming.put_nowait(
        json.dumps(
            {"type": "ModifyQuerySet", "baseVersion": 0, "newVersion": 1, "modifications": [add]}
        )
    )
    return transport


def frame_floor(sockets: int, commits: int) -> float:
    """CPU seconds to format each socket's frame from prebuilt pieces (its versions, the
    shared result's bytes) and hand it to a writer, with no Owlat code."""
    fields = b'"type":"QueryUpdated","value":2.0,"logLines":[],"journal":null}'
    write = ListTransport().write
    started = time.process_time()
    for ts in range(commits):
        for query_id in range(sockets):
            start = b'{"querySet":1,"identity":0,"ts":"%b"}' % base64.b64encode(
                struct.pack("<Q", ts)
            )
            end = b'{"querySet":1,"identity":0,"ts":"%b"}' % base64.b64encode(
                struct.pack("<Q", ts + 1)
            )
            write(
                b'{"type":"Transition","startVersion":%b,"endVersion":%b,'
                b'"modifications":[{"queryId":%d,%b]}' % (start, end, query_id, fields)
            )
    return time.process_time() - started


async def measure(sockets: int, commits: int) -> tuple[float, float]:
    """(push CPU per socket, baseline CPU per socket), in µs."""
    from owlat.runtime.auth import Authenticator
    from owlat.runtime.sync.worker import SyncService, SyncWorker
    from owlat.runtime.testing import open_test_app

    with tempfile.TemporaryDirectory() as folder:
        async with open_test_app(
            "tests.fixtures.app", Path(folder), scheduler_parallelism=None
        ) as app:
            await app.run_mutation("counters:increment", {"name": "n"}, internal=True)
            service = SyncService(app, Authenticator())
            transports = [subscribed(k) for k in range(sockets)]
            tasks = [asyncio.create_task(SyncWorker(service, t).run()) for t in transports]
            while any(t.frames < 1 for t in transports):  # noqa: ASYNC110
                await asyncio.sleep(0.01)  # each socket's first Transition
            pushing = 0.0
            for _ in range(commits):
                await app.run_mutation("counters:increment", {"name": "n"}, internal=True)
                started = time.process_time()
                while (pusher := service._pusher) is not None:
                    await pusher
                pushing += time.process_time() - started
            assert all(t.frames == commits + 1 for t in transports), "a push was missed"
            for transport in transports:
                transport.incoming.put_nowait(None)
            await asyncio.gather(*tasks)
            service.close()

    baseline = frame_floor(sockets, commits)
    per = 1e6 / (sockets * commits)
    return pushing * per, baseline * per


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sockets", type=int, default=500)
    parser.add_argument("--commits", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument(
        "--code", type=Path, default=Path(__file__).resolve().parents[1], help="checkout to measure"
    )
    options = parser.parse_args()
    sys.path[:0] = [str(options.code / "src"), str(options.code)]
    print(
        f"bench_fanout: {options.sockets} sockets on one query, {options.commits} commits, "
        f"code of {options.code}"
    )
    print(f"{'run':<6}{'push µs/socket':>16}{'baseline µs/socket':>20}{'ratio':>8}")
    for run in range(options.repeat):
        push, baseline = asyncio.run(measure(options.sockets, options.commits))
        print(f"{run + 1:<6}{push:>16.2f}{baseline:>20.2f}{push / baseline:>8.2f}")


if __name__ == "__main__":
    main()
