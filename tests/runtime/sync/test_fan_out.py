"""Sockets woken by one commit share its work: one query run, no snapshot per socket, the
same bytes for the same result (each socket keeping its own versions), and one task writing
the Transitions of the sockets that can take them at once (the others update themselves)."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import pytest

from owlat.runtime.application import Application, Snapshot
from owlat.runtime.auth import Authenticator
from owlat.runtime.sync.worker import SocketClosed, SyncService, SyncWorker
from owlat.runtime.testing import open_test_app

SOCKETS = 20


class MemoryTransport:
    """Frames in from a queue, frames out to a list (with an event per frame sent)."""

    def __init__(self, *, direct: bool = True) -> None:
        self.direct = direct  # frames may be written at once (`Transport.sender`)
        self.incoming: asyncio.Queue[str | None] = asyncio.Queue()
        self.sent: list[dict[str, Any]] = []
        self.writers: list[asyncio.Task[Any] | None] = []  # the task that sent each frame
        self.arrived = asyncio.Event()

    async def receive(self) -> str | None:
        return await self.incoming.get()

    async def send(self, text: str) -> None:
        self.write(text.encode())

    def sender(self) -> Callable[[bytes], None] | None:
        return self.write if self.direct else None

    def write(self, frame: bytes) -> None:
        self.sent.append(json.loads(frame))
        self.writers.append(asyncio.current_task())
        self.arrived.set()

    async def wait_for(self, count: int) -> None:
        while len(self.sent) < count:
            self.arrived.clear()
            await asyncio.wait_for(self.arrived.wait(), 10)


@pytest.fixture
async def application(tmp_path: Path) -> AsyncIterator[Application]:
    async with open_test_app("tests.fixtures.app", tmp_path, scheduler_parallelism=None) as app:
        yield app


def subscribe(transport: MemoryTransport, k: int, name: str = "n") -> None:
    """Connect, then subscribe query id `k` to `counters:get` (query set version 1 + k % 2)."""
    transport.incoming.put_nowait(json.dumps({"type": "Connect", "sessionId": f"s{k}"}))
    add = {"type": "Add", "queryId": k, "udfPath": "counters:get", "args": [{"name": name}]}
    modify = {"type": "ModifyQuerySet", "baseVersion": 0, "newVersion": 1 + k % 2}
    transport.incoming.put_nowait(json.dumps({**modify, "modifications": [add]}))


def assert_chained(transitions: list[dict[str, Any]]) -> None:
    """Each Transition starts where the previous one ended and moves ts forward."""
    for before, after in itertools.pairwise(transitions):
        assert after["startVersion"] == before["endVersion"]
        assert after["endVersion"]["ts"] != before["endVersion"]["ts"]


@pytest.mark.parametrize("direct", ["every", "none", "half"])
async def test_one_commit_runs_a_shared_query_once_and_opens_one_snapshot(
    application: Application, monkeypatch: pytest.MonkeyPatch, direct: str
) -> None:
    await application.run_mutation("counters:increment", {"name": "n"}, internal=True)
    service = SyncService(application, Authenticator())
    transports = [
        MemoryTransport(direct=direct == "every" or (direct == "half" and k % 2 == 0))
        for k in range(SOCKETS)
    ]
    tasks = [asyncio.create_task(SyncWorker(service, t).run()) for t in transports]
    for k, transport in enumerate(transports):
        subscribe(transport, k)
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
    for count in (2.0, 3.0):
        await application.run_mutation("counters:increment", {"name": "n"}, internal=True)
        for transport in transports:
            await transport.wait_for(int(count))
    assert service.subscriptions.computations == 3
    assert snapshots == 2  # one per commit; every other socket found its result cached

    for k, transport in enumerate(transports):
        assert len(transport.sent) == 3  # nothing sent twice, whichever path sent it
        assert_chained(transport.sent)
        for count, transition in zip((2.0, 3.0), transport.sent[1:], strict=True):
            assert transition["endVersion"]["querySet"] == 1 + k % 2
            assert transition["endVersion"] == {
                **transports[0].sent[int(count) - 1]["endVersion"],
                "querySet": 1 + k % 2,
            }
            assert transition["modifications"] == [
                {
                    "type": "QueryUpdated",
                    "queryId": k,
                    "value": count,
                    "logLines": [],
                    "journal": None,
                }
            ]
    for transport in transports:
        transport.incoming.put_nowait(None)
    assert await asyncio.gather(*tasks) == [None] * SOCKETS
    service.close()


async def test_one_commit_is_written_to_every_socket_by_one_task(
    application: Application,
) -> None:
    """No worker is woken per socket: the service's push task writes every Transition."""
    await application.run_mutation("counters:increment", {"name": "n"}, internal=True)
    service = SyncService(application, Authenticator())
    transports = [MemoryTransport() for _ in range(SOCKETS)]
    tasks = [asyncio.create_task(SyncWorker(service, t).run()) for t in transports]
    for k, transport in enumerate(transports):
        subscribe(transport, k)
    for transport in transports:
        await transport.wait_for(1)
    await application.run_mutation("counters:increment", {"name": "n"}, internal=True)
    for transport in transports:
        await transport.wait_for(2)
    writers = {transport.writers[1] for transport in transports}
    assert len(writers) == 1
    assert writers.isdisjoint(tasks)
    for transport in transports:
        transport.incoming.put_nowait(None)
    await asyncio.gather(*tasks)
    service.close()


async def test_a_mutation_response_comes_before_the_transition_showing_it(
    application: Application,
) -> None:
    """A commit pushed to many sockets while one of them runs the mutation that made it:
    that socket gets its MutationResponse first, then the Transition reaching the commit."""
    service = SyncService(application, Authenticator())
    transports = [MemoryTransport() for _ in range(SOCKETS)]
    tasks = [asyncio.create_task(SyncWorker(service, t).run()) for t in transports]
    for k, transport in enumerate(transports):
        subscribe(transport, k, name="b")
    for transport in transports:
        await transport.wait_for(1)
    mutation = {"type": "Mutation", "requestId": 0, "udfPath": "bank:bump", "args": [{"name": "b"}]}
    for _ in range(3):
        transports[0].incoming.put_nowait(json.dumps({**mutation, "requestId": _}))
    for transport in transports[1:]:
        await transport.wait_for(2)
    while not any(
        m["type"] == "Transition" and m["modifications"] and m["modifications"][0]["value"] == 3
        for m in transports[0].sent
    ):
        await transports[0].wait_for(len(transports[0].sent) + 1)
    sent = transports[0].sent
    responses = [m for m in sent if m["type"] == "MutationResponse"]
    assert [r["requestId"] for r in responses] == [0, 1, 2]
    shown = 0.0  # the newest count a Transition showed so far
    answered = 0.0  # the newest count a MutationResponse returned so far
    for message in sent[1:]:
        if message["type"] == "MutationResponse":
            answered = message["result"]
        else:
            for modification in message["modifications"]:
                shown = modification["value"]
        assert shown <= answered  # no Transition shows a write before its response
    assert shown == 3.0
    assert_chained([m for m in sent if m["type"] == "Transition"])
    for transport in transports:
        transport.incoming.put_nowait(None)
    await asyncio.gather(*tasks)
    service.close()


class ClosingTransport(MemoryTransport):
    """A socket whose client goes away when `close()` is called: nothing more can be sent."""

    def __init__(self) -> None:
        super().__init__()
        self.closed = False

    def close(self) -> None:
        self.closed = True
        self.incoming.put_nowait(None)

    async def send(self, text: str) -> None:
        if self.closed:
            raise SocketClosed()
        await super().send(text)

    def sender(self) -> Callable[[bytes], None] | None:
        return None if self.closed else super().sender()

    def write(self, frame: bytes) -> None:
        assert not self.closed, "a frame written after the client went away"
        super().write(frame)


async def test_a_fan_out_gives_each_socket_its_own_ids_and_versions(
    application: Application, caplog: pytest.LogCaptureFixture
) -> None:
    """One commit pushed to sockets numbering the query alike or not, at different query set
    versions and start versions, past a socket that cannot take a frame at once (it updates
    itself) and one whose client goes away in the middle of the walk: every open socket gets
    exactly its own next Transition, and the walk goes on past the closed one."""
    await application.run_mutation("counters:increment", {"name": "n"}, internal=True)
    service = SyncService(application, Authenticator())
    transports = [
        ClosingTransport() if k == 5 else MemoryTransport(direct=k != 3) for k in range(SOCKETS)
    ]
    tasks = [asyncio.create_task(SyncWorker(service, t).run()) for t in transports]
    for k, transport in enumerate(transports):
        adds = [
            {"type": "Add", "queryId": k % 3, "udfPath": "counters:get", "args": [{"name": "n"}]}
        ]
        if k == 0:  # socket 0 also follows another counter: its versions move on their own
            adds.append(
                {"type": "Add", "queryId": 9, "udfPath": "counters:get", "args": [{"name": "o"}]}
            )
        transport.incoming.put_nowait(json.dumps({"type": "Connect", "sessionId": f"s{k}"}))
        modify = {"type": "ModifyQuerySet", "baseVersion": 0, "newVersion": 1 + k % 2}
        transport.incoming.put_nowait(json.dumps({**modify, "modifications": adds}))
    for transport in transports:
        await transport.wait_for(1)
    await application.run_mutation("counters:increment", {"name": "o"}, internal=True)
    await transports[0].wait_for(2)

    closing = transports[5]
    assert isinstance(closing, ClosingTransport)
    for transport in transports:  # the client of socket 5 leaves once a frame is written
        write = transport.write

        def write_then_close(frame: bytes, write: Callable[[bytes], None] = write) -> None:
            write(frame)
            if not closing.closed:
                closing.close()

        transport.write = write_then_close  # type: ignore[method-assign]
    await application.run_mutation("counters:increment", {"name": "n"}, internal=True)
    for k, transport in enumerate(transports):
        if k != 5:
            await transport.wait_for(3 if k == 0 else 2)
    assert await tasks[5] is None
    assert closing.closed and len(closing.sent) <= 2

    pushed = [transport.sent[-1] for k, transport in enumerate(transports) if k != 5]
    assert len({json.dumps(t["endVersion"]["ts"]) for t in pushed}) == 1
    for k, transport in enumerate(transports):
        if k == 5:
            continue
        assert_chained(transport.sent)
        last = transport.sent[-1]
        assert last["endVersion"]["querySet"] == 1 + k % 2
        assert last["modifications"] == [
            {
                "type": "QueryUpdated",
                "queryId": k % 3,
                "value": 2.0,
                "logLines": [],
                "journal": None,
            }
        ]
    assert transports[0].sent[-1]["startVersion"] == transports[0].sent[1]["endVersion"]
    assert transports[0].sent[-1]["startVersion"] != transports[1].sent[-1]["startVersion"]
    assert transports[3].writers[-1] in tasks  # the slow socket updated itself
    assert "could not push" not in caplog.text
    for k, transport in enumerate(transports):
        if k != 5:
            transport.incoming.put_nowait(None)
    await asyncio.gather(*tasks)
    service.close()
