"""SIGTERM to a real `owlat serve` under load: it stops taking work, answers what it started,
lets a running scheduled job finish and closes sync sockets with 1001 (going away); no
acknowledged mutation is lost (cli/server.py, runtime/server/operations.py)."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import sys
import time
from pathlib import Path

import httpx

from tests.e2e.processes import ENV, ROOT, finished
from tests.e2e.sync_harness import RawSocket
from tests.e2e.sync_messages import add, modify, mutation
from tests.postgres import PostgresForTests

_BANNER = re.compile(r"Owlat is serving (http://127\.0\.0\.1:\d+)")


async def serve(
    data_dir: Path, log: Path, database_url: str = ""
) -> tuple[asyncio.subprocess.Process, str]:
    """`owlat serve` on free ports (on `database_url`, default SQLite in `data_dir`)."""
    env = {
        **ENV,
        "OWLAT_SHUTDOWN_TIMEOUT": "20",
        "OWLAT_DATABASE_URL": database_url,
        "OWLAT_ADMIN_KEY": "owlat-admin|graceful",  # nodes of one deployment share it
    }
    with log.open("ab") as stderr:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "owlat.cli", "serve", "--port", "0", "--site-port", "0",
            "--data-dir", str(data_dir), env=env, cwd=ROOT,
            stdout=asyncio.subprocess.PIPE, stderr=stderr,
        )  # fmt: skip
    assert process.stdout is not None
    banner = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
    match = _BANNER.match(banner)
    assert match, banner + await asyncio.to_thread(log.read_text)
    return process, match.group(1)


async def http_writer(url: str, name: str, acknowledged: list[str]) -> None:
    """Send messages until the server stops answering; note those it acknowledged."""
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        for i in range(100_000):
            body = f"{name}-{i}"
            try:
                reply = await http.post(
                    "/api/mutation",
                    json={"path": "messages:send", "args": {"channel": "load", "body": body}},
                )
            except httpx.HTTPError:
                return
            if reply.status_code == 200 and reply.json()["status"] == "success":
                acknowledged.append(body)


async def socket_writer(socket: RawSocket, acknowledged: list[str]) -> tuple[int, str]:
    """Mutations over the sync socket, one at a time, until it is closed; its close code."""
    for request_id in range(100_000):
        body = f"socket-{request_id}"
        try:
            await socket.send(
                mutation(request_id, "messages:send", {"channel": "load", "body": body})
            )
            while True:
                message = await socket.receive(within=30)
                if message["type"] == "MutationResponse":
                    assert message["success"] is True, message
                    acknowledged.append(body)
                    break
        except Exception:
            break
    return await socket.closed()


LOAD = 20  # mutations acknowledged before the signal: the server is stopped under load


async def under_load(acknowledged: list[str]) -> None:
    """Until the writers have `LOAD` mutations acknowledged (at most 20 s: a busy machine)."""
    async with asyncio.timeout(20):
        while len(acknowledged) < LOAD:  # noqa: ASYNC110
            await asyncio.sleep(0.05)


async def test_sigterm_under_load_loses_no_acknowledged_mutation(tmp_path: Path) -> None:
    data, log, side_effects = tmp_path / "data", tmp_path / "serve.log", tmp_path / "jobs.log"
    process, url = await serve(data, log)
    async with httpx.AsyncClient(base_url=url) as http:
        ready = await http.get("/readyz")
        assert ready.json()["checks"] == {"database": "ok", "schema": "ok", "scheduler": "ok"}
        scheduled = await http.post(
            "/api/action",
            json={
                "path": "jobs:scheduleActions",
                "args": {"keys": ["slow"], "sleep_ms": 1500, "log": str(side_effects)},
            },
        )
        assert scheduled.json()["status"] == "success", scheduled.text
    deadline = time.monotonic() + 20
    while not (side_effects.exists() and "start slow" in side_effects.read_text()):
        assert time.monotonic() < deadline, "the scheduled action did not start"
        await asyncio.sleep(0.02)

    acknowledged: list[str] = []
    async with RawSocket.open(url.replace("http", "ws") + "/api/sync") as socket:
        await socket.send(modify(0, 1, add(0, "messages:list", {"channel": "load"})))
        assert (await socket.receive())["type"] == "Transition"
        writers = [
            asyncio.create_task(http_writer(url, f"http{n}", acknowledged)) for n in range(6)
        ]
        over_socket = asyncio.create_task(socket_writer(socket, acknowledged))
        await under_load(acknowledged)
        process.send_signal(signal.SIGTERM)
        code, reason = await asyncio.wait_for(over_socket, 30)
        await asyncio.wait_for(asyncio.gather(*writers), 30)
    assert await asyncio.wait_for(process.wait(), 30) == 0, log.read_text()
    assert (code, reason) == (1001, "GoingAway: The server is stopping; reconnect")
    assert len(acknowledged) >= LOAD and any(b.startswith("socket-") for b in acknowledged)

    status, out, err = await finished(
        "run", "messages:list", '{"channel": "load"}', "--data-dir", str(data)
    )
    assert status == 0, err
    stored = {message["body"] for message in json.loads(out)}
    assert set(acknowledged) <= stored
    status, out, err = await finished("run", "jobs:runs", "--data-dir", str(data))
    assert json.loads(out) == ["slow"], "the running scheduled action was not let finish"


async def test_a_client_reconnected_to_the_second_node_sees_every_commit(
    tmp_path: Path, postgres: PostgresForTests
) -> None:
    with postgres.schema() as database_url:
        first, first_url = await serve(tmp_path / "a", tmp_path / "a.log", database_url)
        second, second_url = await serve(tmp_path / "b", tmp_path / "b.log", database_url)
        acknowledged: list[str] = []
        try:
            async with RawSocket.open(first_url.replace("http", "ws") + "/api/sync") as socket:
                await socket.send(modify(0, 1, add(0, "messages:list", {"channel": "load"})))
                assert (await socket.receive())["type"] == "Transition"
                writers = [
                    asyncio.create_task(http_writer(first_url, f"http{n}", acknowledged))
                    for n in range(4)
                ]
                over_socket = asyncio.create_task(socket_writer(socket, acknowledged))
                await under_load(acknowledged)
                first.send_signal(signal.SIGTERM)
                code, _ = await asyncio.wait_for(over_socket, 30)
                await asyncio.wait_for(asyncio.gather(*writers), 30)
            assert code == 1001
            assert await asyncio.wait_for(first.wait(), 30) == 0
            assert len(acknowledged) >= LOAD

            # the client reconnects, now to the other node
            async with RawSocket.open(second_url.replace("http", "ws") + "/api/sync") as again:
                await again.send(modify(0, 1, add(0, "messages:list", {"channel": "load"})))
                transition = await again.receive()
            (added,) = transition["modifications"]
            seen = {message["body"] for message in added["value"]}
            assert set(acknowledged) <= seen
        finally:
            for process in (first, second):
                if process.returncode is None:
                    process.send_signal(signal.SIGTERM)
                    await asyncio.wait_for(process.wait(), 30)
