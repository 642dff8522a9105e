"""Several `owlat serve` processes on one PostgreSQL database (OWLAT_DATABASE_URL).

- A subscription on node A receives a mutation committed through node B (commits are
  announced through the database: commit log + NOTIFY).
- Under concurrency (20 clients on both nodes bumping one counter and moving money
  between accounts for 10 s): no lost update, money is conserved, and every subscriber ends
  at the value the database holds.
- Scheduled actions shared by two nodes, one killed mid-run: the dead node's actions fail
  ("Transient error while executing action") once its claims expire, the live node's
  actions are left to finish, and no action runs twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.processes import started_with_site
from tests.e2e.sync_harness import RawSocket
from tests.e2e.sync_messages import add, modify
from tests.postgres import PostgresForTests

pytestmark = pytest.mark.timeout(120)

CLIENTS = 20
SECONDS = 10.0  # the issue asks for 10 s of concurrent clients
ACCOUNTS = [f"acct-{n}" for n in range(5)]
BALANCE = 1000.0


@contextlib.asynccontextmanager
async def node_processes(
    tmp_path: Path, url: str, count: int, **settings: str
) -> AsyncIterator[list[tuple[asyncio.subprocess.Process, str]]]:
    """`count` server processes on the database at `url` (plus OWLAT_* `settings`); yields
    each process with its client URL."""
    env = {"OWLAT_DATABASE_URL": url, "OWLAT_ADMIN_KEY": "owlat-admin|nodes-test", **settings}
    launched = await asyncio.gather(
        *(started_with_site("serve", tmp_path / f"node{n}", env=env) for n in range(count))
    )
    try:
        yield [(process, node_url) for process, node_url, _ in launched]
    finally:
        for process, _, _ in launched:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
        for process, _, _ in launched:
            await asyncio.wait_for(process.communicate(), 30)


@contextlib.asynccontextmanager
async def nodes(tmp_path: Path, url: str, count: int) -> AsyncIterator[list[str]]:
    """`count` server processes on the database at `url`; yields their client URLs."""
    async with node_processes(tmp_path, url, count) as launched:
        yield [node_url for _, node_url in launched]


@pytest.fixture
def database(postgres: PostgresForTests) -> AsyncIterator[str]:
    with postgres.schema() as url:
        yield url


async def call(http: httpx.AsyncClient, base: str, kind: str, path: str, args: Any) -> Any:
    response = await http.post(f"{base}/api/{kind}", json={"path": path, "args": args})
    body = response.json()
    assert body["status"] == "success", body
    return body["value"]


def ws(base: str) -> str:
    return base.replace("http://", "ws://") + "/api/sync"


async def subscribe(socket: RawSocket, path: str, args: dict[str, Any]) -> None:
    await socket.send(modify(0, 1, add(0, path, args)))


async def next_value(socket: RawSocket, within: float = 10.0) -> Any:
    while True:
        message = await socket.receive(within=within)
        if message["type"] == "Transition" and message["modifications"]:
            update = message["modifications"][-1]
            assert update["type"] == "QueryUpdated", update
            return update["value"]


async def test_a_subscription_on_one_node_sees_a_mutation_through_another(
    tmp_path: Path, database: str
) -> None:
    async with (
        nodes(tmp_path, database, 2) as (a, b),
        RawSocket.open(ws(a)) as socket,
        httpx.AsyncClient(timeout=30) as http,
    ):
        await subscribe(socket, "messages:list", {"channel": "x"})
        assert await next_value(socket) == []
        started_at = time.perf_counter()
        await call(http, b, "mutation", "messages:send", {"channel": "x", "body": "via B"})
        value = await next_value(socket)
        latency = time.perf_counter() - started_at
        assert [message["body"] for message in value] == ["via B"]
        assert latency < 2.0


async def test_concurrent_clients_on_two_nodes_lose_nothing(tmp_path: Path, database: str) -> None:
    async with nodes(tmp_path, database, 2) as urls, httpx.AsyncClient(timeout=60) as http:
        await call(
            http, urls[0], "mutation", "bank:openAccounts", {"names": ACCOUNTS, "balance": BALANCE}
        )
        bumps = [0] * CLIENTS
        deadline = time.monotonic() + SECONDS

        async def client(n: int) -> None:
            base = urls[n % 2]
            rng = random.Random(n)
            while time.monotonic() < deadline:
                if rng.random() < 0.5:
                    await call(http, base, "mutation", "bank:bump", {"name": "hits"})
                    bumps[n] += 1
                else:
                    source, target = rng.sample(ACCOUNTS, 2)
                    args = {"source": source, "target": target, "amount": rng.randint(1, 50)}
                    await call(http, base, "mutation", "bank:transfer", args)

        async def watcher(base: str, done: asyncio.Event) -> Any:
            async with RawSocket.open(ws(base)) as socket:
                await subscribe(socket, "bank:balances", {"names": [*ACCOUNTS, "hits"]})
                value: Any = None
                while not done.is_set() or value != final:
                    with contextlib.suppress(TimeoutError):
                        value = await next_value(socket, within=0.5)
                return value

        final: Any = object()
        done = asyncio.Event()
        watchers = [asyncio.create_task(watcher(base, done)) for base in urls]
        await asyncio.gather(*(client(n) for n in range(CLIENTS)))
        final = await call(http, urls[1], "query", "bank:balances", {"names": [*ACCOUNTS, "hits"]})
        done.set()
        seen = await asyncio.wait_for(asyncio.gather(*watchers), 20)
    *balances, hits = final
    assert hits == sum(bumps) and hits > 0, "no lost update"
    assert sum(balances) == BALANCE * len(ACCOUNTS), "money is conserved"
    assert seen == [final, final], "every subscriber ends at the database's value"


async def test_a_killed_node_fails_only_its_own_actions(tmp_path: Path, database: str) -> None:
    log = tmp_path / "side-effects.log"
    log.touch()
    keys = [f"k{n}" for n in range(6)]
    async with (
        node_processes(tmp_path, database, 2, OWLAT_SCHEDULER_PARALLELISM="3") as launched,
        httpx.AsyncClient(timeout=30) as http,
    ):
        (victim, victim_url), (_, survivor_url) = launched
        args = {"keys": keys, "sleep_ms": 8000, "log": str(log)}
        await call(http, victim_url, "action", "jobs:scheduleActions", args)
        for _ in range(500):
            if len(log.read_text().splitlines()) == len(keys):
                break
            await asyncio.sleep(0.02)
        runner = {line.split()[1]: line.split()[2] for line in log.read_text().splitlines()}
        assert set(runner.values()) == {str(victim.pid), str(launched[1][0].pid)}
        victim.kill()
        await victim.wait()
        for _ in range(400):
            jobs = await call(http, survivor_url, "query", "jobs:jobs", {})
            if all(job["state"]["kind"] not in ("pending", "inProgress") for job in jobs):
                break
            await asyncio.sleep(0.05)
        runs = await call(http, survivor_url, "query", "jobs:runs", {})
    started = [line.split()[1] for line in log.read_text().splitlines()]
    assert sorted(started) == keys, "every action started once and was never re-run"
    assert sorted(runs) == sorted(k for k, pid in runner.items() if pid != str(victim.pid))
    outcomes = {(job["state"]["kind"], job["state"].get("error")) for job in jobs}
    assert outcomes == {("success", None), ("failed", "Transient error while executing action")}
