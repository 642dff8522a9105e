"""Sockets woken by one commit share its work: one query run, no snapshot per socket, and
the same bytes for the same result (each socket keeping its own versions)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import pytest

from owlat.runtime.application import Application, Snapshot
from owlat.runtime.auth import Authenticator
from owlat.runtime.sync.worker import SyncService, SyncWorker
from owlat.runtime.testing import open_test_app

SOCKETS = 20


class MemoryTransport:
    """Frames in from a queue, frames out to a list (with an event per frame sent)."""

    def __init__(self) -> None:
        self.incoming: asyncio.Queue[str | None] = asyncio.Queue()
        self.sent: list[dict[str, Any]] = []
        self.arrived = asyncio.Event()

    async def receive(self) -> str | None:
        return await self.incoming.get()

    async def send(self, text: str) -> None:
        self.sent.append(json.loads(text))
        self.arrived.set()

    async def wait_for(self, count: int) -> None:
        while len(self.sent) < count:
            self.arrived.clear()
            await asyncio.wait_for(self.arrived.wait(), 10)


@pytest.fixture
async def application(tmp_path: Path) -> AsyncIterator[Application]:
    async with open_test_app("tests.fixtures.app", tmp_path, scheduler_parallelism=None) as app:
        yield app


async def test_one_commit_runs_a_shared_query_once_and_opens_one_snapshot(
    application: Application, monkeypatch: pytest.MonkeyPatch
) -> None:
    await application.run_mutation("counters:increment", {"name": "n"}, internal=True)
    service = SyncService(application, Authenticator())
    transports = [MemoryTransport() for _ in range(SOCKETS)]
    tasks = [asyncio.create_task(SyncWorker(service, t).run()) for t in transports]
    for k, transport in enumerate(transports):
        transport.incoming.put_nowait(json.dumps({"type": "Connect", "sessionId": f"s{k}"}))
        add = {"type": "Add", "queryId": k, "udfPath": "counters:get", "args": [{"name": "n"}]}
        transport.incoming.put_nowait(
            json.dumps(
                {
                    "type": "ModifyQuerySet",
                    "baseVersion": 0,
                    "newVersion": 1 + k % 2,
                    "modifications": [add],
                }
            )
        )
    for transport in transports:
        await transport.wait_for(1)
    assert service.subscriptions.computations == 1

    snapshots = 0
    original = application.snapshot

    def counting_snapshot() -> AbstractAsyncContextManager[Snapshot]:
        nonlocal snapshots
        snapshots += 1
        return original()

    monkeypatch.setattr(application, "snapshot", counting_snapshot)
    await application.run_mutation("counters:increment", {"name": "n"}, internal=True)
    for transport in transports:
        await transport.wait_for(2)
    assert service.subscriptions.computations == 2
    assert snapshots == 1  # the first worker's; the others found its result in the cache

    for k, transport in enumerate(transports):
        first, second = transport.sent
        assert second["startVersion"] == first["endVersion"]
        assert second["endVersion"]["querySet"] == 1 + k % 2
        assert second["endVersion"]["ts"] == transports[0].sent[1]["endVersion"]["ts"]
        assert second["modifications"] == [
            {"type": "QueryUpdated", "queryId": k, "value": 2.0, "logLines": [], "journal": None}
        ]
    for transport in transports:
        transport.incoming.put_nowait(None)
    assert await asyncio.gather(*tasks) == [None] * SOCKETS
    service.close()
