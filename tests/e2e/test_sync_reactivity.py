"""Reactivity under concurrency: N writers, M subscribers, over real sockets.

Every subscriber must end at the value a fresh query returns, and no Transition may show a
state that never existed: `syncTest:bumpPair` always raises two counters together, so the
pair query never shows them unequal, and `counters:get` of the first counter, subscribed on
the same socket, always agrees with the pair (one Transition, one snapshot).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Issuers
from tests.e2e.sync_harness import RawSocket, SyncServer, sync_server
from tests.e2e.sync_messages import add, modify, mutation

WRITERS = 5
MUTATIONS_PER_WRITER = 20
SUBSCRIBERS = 25
TOTAL = float(WRITERS * MUTATIONS_PER_WRITER)

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def server(tmp_path: Path, issuers: Issuers, database_url: str) -> AsyncIterator[SyncServer]:
    async with sync_server(tmp_path, issuers, database_url=database_url) as running:
        yield running


async def write(server: SyncServer, pipelined: bool) -> None:
    """Send MUTATIONS_PER_WRITER bumps, all at once or each after the previous answer."""
    async with RawSocket.open(server.ws_url) as socket:
        answered = 0
        for request_id in range(MUTATIONS_PER_WRITER):
            await socket.send(mutation(request_id, "syncTest:bumpPair", {"prefix": "r"}))
            while answered < (request_id + 1 if not pipelined else 0):
                answered += await answer(socket)
        while answered < MUTATIONS_PER_WRITER:
            answered += await answer(socket)


async def answer(socket: RawSocket) -> int:
    message = await socket.receive(within=20)
    if message["type"] != "MutationResponse":
        return 0
    assert message["success"], message
    return 1


async def subscribe(server: SyncServer, ready: asyncio.Event) -> list[dict[int, Any]]:
    """Follow the pair until it reaches TOTAL; the states seen, checked as they come."""
    states: list[dict[int, Any]] = []
    async with RawSocket.open(server.ws_url) as socket:
        await socket.send(
            modify(
                0,
                1,
                add(0, "syncTest:pair", {"prefix": "r"}),
                add(1, "counters:get", {"name": "r-a"}),
            )
        )
        version: dict[str, Any] = {"querySet": 0, "identity": 0, "ts": "AAAAAAAAAAA="}
        values: dict[int, Any] = {}
        ready.set()
        while values.get(0) != [TOTAL, TOTAL]:
            transition = await socket.receive(within=20)
            assert transition["type"] == "Transition"
            assert transition["startVersion"] == version, "a Transition was skipped"
            version = transition["endVersion"]
            for modification in transition["modifications"]:
                assert modification["type"] == "QueryUpdated", modification
                values[modification["queryId"]] = modification["value"]
            first, second = values[0]
            assert first == second, f"the pair was seen half-updated: {values[0]}"
            assert (values[1] or 0.0) == first, f"two queries disagree: {values}"
            states.append(dict(values))
    return states


async def test_every_subscriber_sees_only_consistent_states_and_ends_up_current(
    server: SyncServer,
) -> None:
    readiness = [asyncio.Event() for _ in range(SUBSCRIBERS)]
    subscribers = [asyncio.create_task(subscribe(server, ready)) for ready in readiness]
    await asyncio.wait_for(asyncio.gather(*(ready.wait() for ready in readiness)), 10)
    started = time.perf_counter()
    writers = (write(server, pipelined=w % 2 == 0) for w in range(WRITERS))
    await asyncio.wait_for(asyncio.gather(*writers), 30)
    histories = await asyncio.wait_for(asyncio.gather(*subscribers), 30)
    elapsed = time.perf_counter() - started

    fresh = await server.application.run_query("syncTest:pair", {"prefix": "r"})
    assert fresh.value == [TOTAL, TOTAL]
    for history in histories:
        assert history[-1][0] == fresh.value
        seen = [state[0][0] for state in history]
        assert seen == sorted(seen), "a subscriber went back in time"
    manager = server.service.subscriptions
    # 25 sockets share two cached results; far fewer runs than sockets × commits
    assert manager.computations < 2 * (TOTAL + 1) * 3
    print(
        f"{int(TOTAL)} commits to {SUBSCRIBERS} subscribers: {elapsed:.2f} s, "
        f"{manager.computations} query runs"
    )
