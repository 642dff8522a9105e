"""The sync socket with a hand-driven client: the protocol's rules and its edge cases.

Each misbehaving socket gets the documented answer (a close frame with code and reason, or
a failed request), and the server goes on serving the other sockets.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import struct
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import websockets
from websockets.frames import Frame, Opcode

from owlat.runtime.server import websocket as websocket_adapter
from owlat.runtime.server.websocket import text_frame_header
from owlat.runtime.sync.worker import SyncConfig
from owlat.runtime.testing import in_mutation
from tests.e2e.conftest import Issuers
from tests.e2e.sync_harness import ADMIN_KEY, RawSocket, SyncServer, sync_server
from tests.e2e.sync_messages import add, modify, mutation

pytestmark = pytest.mark.timeout(60)


def ts_of(encoded: str) -> int:
    value: int = struct.unpack("<Q", base64.b64decode(encoded))[0]
    return value


def encode_ts(ts: int) -> str:
    return base64.b64encode(struct.pack("<Q", ts)).decode()


@pytest.fixture
async def server(tmp_path: Path, issuers: Issuers, database_url: str) -> AsyncIterator[SyncServer]:
    config = SyncConfig(
        max_args_bytes=4096, ping_interval=0.3, max_pending_mutations=3, max_inflight_actions=2
    )
    async with sync_server(tmp_path, issuers, config, database_url=database_url) as running:
        yield running


async def assert_still_serving(server: SyncServer) -> None:
    async with RawSocket.open(server.ws_url) as socket:
        await socket.send(modify(0, 1, add(0, "messages:list", {"channel": "alive"})))
        transition = await socket.receive()
        assert transition["modifications"][0]["value"] == []


@pytest.mark.parametrize("length", [0, 125, 126, 65535, 65536, 70000])
def test_frames_written_on_the_transport_are_websockets_own(length: int) -> None:
    payload = b"x" * length
    expected = Frame(Opcode.TEXT, payload).serialize(mask=False, extensions=[])
    assert text_frame_header(length) + payload == expected


@pytest.mark.parametrize("deflate", [False, True])
async def test_large_and_small_frames_reach_the_client_whole(
    tmp_path: Path, issuers: Issuers, deflate: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Transitions of every frame length class (with 2-byte UTF-8 characters in them) and
    Pings parse and decode on a real client: written straight on the transport, or through
    websockets when permessage-deflate was negotiated."""
    written: list[int] = []
    write_frame = websocket_adapter._SocketTransport._write_frame

    def counting(transport: websocket_adapter._SocketTransport, payload: bytes) -> None:
        written.append(len(payload))
        write_frame(transport, payload)

    monkeypatch.setattr(websocket_adapter._SocketTransport, "_write_frame", counting)
    config = SyncConfig(ping_interval=0.3)
    async with (
        sync_server(tmp_path, issuers, config, deflate=deflate) as server,
        RawSocket.open(server.ws_url, compression="deflate") as socket,
    ):
        for k, size in enumerate([1, 1_000, 40_000]):
            await socket.send(modify(k, k + 1, add(k, "syncTest:text", {"size": size})))
            transition = await socket.receive()
            [modification] = transition["modifications"]
            assert modification["queryId"] == k
            assert modification["value"] == "é" * size
        ping = json.loads(await asyncio.wait_for(socket.connection.recv(), 5))
        assert ping == {"type": "Ping"}
    if not deflate:
        assert len(written) == 4 and written[-1] == len(b'{"type":"Ping"}')
        assert written[2] > 80_000
    else:
        assert written == []


async def test_subscribe_mutate_and_see_the_update(server: SyncServer) -> None:
    async with RawSocket.open(server.ws_url) as socket:
        await socket.send(modify(0, 1, add(0, "messages:list", {"channel": "a"})))
        first = await socket.receive()
        assert first["type"] == "Transition"
        assert first["startVersion"] == {"querySet": 0, "identity": 0, "ts": "AAAAAAAAAAA="}
        assert first["modifications"] == [
            {"type": "QueryUpdated", "queryId": 0, "value": [], "logLines": [], "journal": None}
        ]
        await socket.send(mutation(0, "messages:send", {"channel": "a", "body": "hi"}))
        response = await socket.receive()
        assert response["type"] == "MutationResponse" and response["success"] is True
        update = await socket.receive()
        assert update["startVersion"] == first["endVersion"]
        assert ts_of(update["endVersion"]["ts"]) >= ts_of(response["ts"])
        ((updated,),) = [update["modifications"]]
        assert [m["body"] for m in updated["value"]] == ["hi"]
        assert updated["value"][0]["_id"] == response["result"]


async def test_errors_reach_the_client_with_their_data(server: SyncServer) -> None:
    async with RawSocket.open(server.ws_url) as socket:
        await socket.send(mutation(0, "messages:send", {"channel": "a", "body": ""}))
        response = await socket.receive()
        assert response["success"] is False and response["ts"] is None
        assert response["errorData"] == {"code": "EMPTY_BODY", "message": "A message needs a body"}
        assert "Uncaught ConvexError" in response["result"]
        assert (await socket.receive())["type"] == "Transition"  # one follows every response
        await socket.send(mutation(1, "messages:nope", {}))
        missing = await socket.receive()
        assert "Could not find public function for 'messages:nope'" in missing["result"]
        assert "errorData" not in missing
        assert (await socket.receive())["modifications"] == []
        await socket.send(modify(0, 1, add(0, "counters:get", {"name": 5})))
        (failed,) = (await socket.receive())["modifications"]
        assert failed["type"] == "QueryFailed"
        assert "ArgumentValidationError" in failed["errorMessage"]


async def test_actions_answer_and_are_followed_by_a_transition(server: SyncServer) -> None:
    async with RawSocket.open(server.ws_url) as socket:
        await socket.send(
            {
                "type": "Action",
                "requestId": 0,
                "udfPath": "counters:incrementMany",
                "args": [{"name": "n", "times": 3}],
            }
        )
        response = await socket.receive()
        assert response == {
            "type": "ActionResponse",
            "requestId": 0,
            "success": True,
            "result": 3.0,
            "logLines": [],
        }
        assert (await socket.receive())["type"] == "Transition"


@pytest.mark.parametrize(
    ("messages", "reason"),
    [
        ([modify(1, 2)], "BaseVersionMismatch"),
        ([modify(0, 0)], "must be greater than baseVersion"),
        ([modify(0, 1, {"type": "Remove", "queryId": 9})], "not in the set"),
        (
            [
                modify(0, 1, add(0, "messages:list", {"channel": "a"})),
                modify(1, 2, add(0, "messages:list", {"channel": "b"})),
            ],
            "already in the set",
        ),
        (["{this is not json"], "not valid JSON"),
        ([{"type": "Subscribe", "queryId": 1}], "Unknown message type 'Subscribe'"),
        (
            [{"type": "Authenticate", "baseVersion": 3, "tokenType": "None"}],
            "Authenticate.baseVersion",
        ),
    ],
)
async def test_protocol_violations_close_the_socket_and_nothing_else(
    server: SyncServer, messages: list[Any], reason: str
) -> None:
    async with RawSocket.open(server.ws_url) as socket:
        for message in messages:
            await socket.send(message)
        code, text = await socket.closed()
    assert code == 1008
    assert text.startswith("BadClientMessage: ") and reason in text
    await assert_still_serving(server)


async def test_a_message_before_connect_is_refused(server: SyncServer) -> None:
    async with RawSocket.open(server.ws_url, connect=False) as socket:
        await socket.send(modify(0, 1))
        code, text = await socket.closed()
    assert code == 1008 and "the first message must be Connect" in text


async def test_oversized_args_fail_the_request_not_the_socket(server: SyncServer) -> None:
    big = "x" * 5000  # over the 4 KiB limit of this server
    async with RawSocket.open(server.ws_url) as socket:
        await socket.send(mutation(0, "messages:send", {"channel": "a", "body": big}))
        response = await socket.receive()
        assert response["success"] is False and "Arguments are too large" in response["result"]
        await socket.receive()  # its Transition
        await socket.send(modify(0, 1, add(0, "messages:list", {"channel": big})))
        (failed,) = (await socket.receive())["modifications"]
        assert failed["type"] == "QueryFailed" and "too large" in failed["errorMessage"]
        await socket.send(mutation(1, "messages:send", {"channel": "a", "body": "small"}))
        assert (await socket.receive())["success"] is True
    assert await server.count("a") == 1


async def test_frames_over_the_servers_frame_limit_close_with_1009(server: SyncServer) -> None:
    async with RawSocket.open(server.ws_url) as socket:
        with contextlib.suppress(websockets.ConnectionClosed):  # closed while it is sent
            await socket.send(
                mutation(0, "messages:send", {"channel": "a", "body": "y" * 17_000_000})
            )
        code, _ = await socket.closed()
    assert code == 1009
    await assert_still_serving(server)


async def test_too_many_queued_mutations_close_the_socket_as_overloaded(
    server: SyncServer,
) -> None:
    async with RawSocket.open(server.ws_url) as socket:
        for request_id in range(6):  # one runs, three wait, the fifth is one too many
            await socket.send(mutation(request_id, "syncTest:slow", {"seconds": 0.2}))
        code, reason = await socket.closed()
    assert code == 1013 and reason.startswith("TooManyConcurrentRequests: ")
    await assert_still_serving(server)


async def test_too_many_running_actions_fail_the_extra_ones(server: SyncServer) -> None:
    async with RawSocket.open(server.ws_url) as socket:
        for request_id in range(3):
            await socket.send(
                {
                    "type": "Action",
                    "requestId": request_id,
                    "udfPath": "syncTest:slowAction",
                    "args": [{"seconds": 0.2}],
                }
            )
        outcomes: dict[int, bool] = {}
        while len(outcomes) < 3:
            response = await socket.receive()
            if response["type"] == "ActionResponse":
                outcomes[response["requestId"]] = response["success"]
    assert outcomes == {0: True, 1: True, 2: False}


async def test_idle_sockets_get_json_pings(server: SyncServer) -> None:
    async with RawSocket.open(server.ws_url) as socket:
        frame = await asyncio.wait_for(socket.connection.recv(), 2)
    assert json.loads(frame) == {"type": "Ping"}


async def test_a_repeated_mutation_is_answered_from_its_record(server: SyncServer) -> None:
    send = mutation(0, "messages:send", {"channel": "once", "body": "x"})
    async with RawSocket.open(server.ws_url, session_id="s1") as socket:
        await socket.send(send)
        first = await socket.receive()
    async with RawSocket.open(server.ws_url, session_id="s1") as socket:  # npm's reconnect
        await socket.send(send)
        again = await socket.receive()
    assert (again["result"], again["ts"]) == (first["result"], first["ts"])
    assert await server.count("once") == 1


async def test_authenticate_with_a_token_an_admin_key_and_none(server: SyncServer) -> None:
    token = server.issuers.rs256.token("user-42")
    async with RawSocket.open(server.ws_url) as socket:
        await socket.send(modify(0, 1, add(0, "syncTest:whoami", {})))
        assert (await socket.receive())["modifications"][0]["value"] is None
        await socket.send(
            {"type": "Authenticate", "baseVersion": 0, "tokenType": "User", "value": token}
        )
        signed_in = await socket.receive()
        assert signed_in["endVersion"]["identity"] == 1
        assert signed_in["modifications"][0]["value"] == "user-42"
        await socket.send({"type": "Authenticate", "baseVersion": 1, "tokenType": "None"})
        signed_out = await socket.receive()
        assert signed_out["endVersion"]["identity"] == 2
        assert signed_out["modifications"][0]["value"] is None
        await socket.send(
            {"type": "Authenticate", "baseVersion": 2, "tokenType": "Admin", "value": ADMIN_KEY}
        )
        await socket.receive()
        await socket.send(modify(1, 2, add(1, "messages:countAll", {})))  # internal
        admin = await socket.receive()
        assert admin["modifications"] == [
            {"type": "QueryUpdated", "queryId": 1, "value": 0.0, "logLines": [], "journal": None}
        ]


async def test_a_bad_token_gets_an_auth_error_then_a_close(server: SyncServer) -> None:
    async with RawSocket.open(server.ws_url) as socket:
        await socket.send(
            {"type": "Authenticate", "baseVersion": 0, "tokenType": "User", "value": "nope"}
        )
        error = await socket.receive()
        code, _ = await socket.closed()
    assert error["type"] == "AuthError" and error["authUpdateAttempted"] is True
    assert error["baseVersion"] == 0 and "JWT" in error["error"]
    assert code == 1000
    await assert_still_serving(server)


async def test_max_observed_timestamp_pushes_the_clock_or_is_refused(server: SyncServer) -> None:
    ahead = time.time_ns() + 2 * 10**9
    connect = {"type": "Connect", "sessionId": "t", "connectionCount": 1, "clientTs": 0}
    async with RawSocket.open(server.ws_url, connect=False) as socket:
        await socket.send({**connect, "maxObservedTimestamp": encode_ts(ahead)})
        await socket.send(modify(0, 1))
        transition = await socket.receive()
    assert ts_of(transition["endVersion"]["ts"]) >= ahead
    far = time.time_ns() + 3600 * 10**9
    async with RawSocket.open(server.ws_url, connect=False) as socket:
        await socket.send({**connect, "maxObservedTimestamp": encode_ts(far)})
        code, reason = await socket.closed()
    assert code == 1008 and reason.startswith("ClientTimestampAhead")


async def test_paginated_queries_keep_their_end_cursor(server: SyncServer) -> None:
    ids = [
        (await server.application.run_mutation("messages:send", {"channel": "p", "body": b})).value
        for b in "abc"
    ]
    options = {"numItems": 2, "cursor": None}
    async with RawSocket.open(server.ws_url) as socket:
        await socket.send(
            modify(0, 1, add(0, "messages:page", {"channel": "p", "paginationOpts": options}))
        )
        (first,) = (await socket.receive())["modifications"]
        assert [m["body"] for m in first["value"]["page"]] == ["a", "b"]
        journal = json.loads(first["journal"])
        assert journal == {"endCursor": first["value"]["continueCursor"]}
        await server.application.run_mutation("messages:send", {"channel": "p", "body": "d"})
        await server.application.run_mutation("messages:send", {"channel": "q", "body": "e"})
        await socket.send(mutation(0, "messages:send", {"channel": "other", "body": "f"}))
        await socket.receive()  # its response
        quiet = await socket.receive()
        assert quiet["modifications"] == []  # "d" lies beyond the page's end cursor

        async def delete_first(ctx: Any) -> None:
            await ctx.db.delete(ids[0])

        await in_mutation(server.application, delete_first)
        (update,) = (await socket.receive())["modifications"]
    assert [m["body"] for m in update["value"]["page"]] == ["b"]  # still ends at "b"
    assert update["journal"] == first["journal"]


async def test_results_equal_to_what_was_sent_are_not_sent_again(server: SyncServer) -> None:
    async with RawSocket.open(server.ws_url) as socket:
        await socket.send(modify(0, 1, add(0, "syncTest:pair", {"prefix": "d"})))
        assert (await socket.receive())["modifications"][0]["value"] == [0.0, 0.0]
        # creates counter d-a at 0: the query re-runs, and its result has not changed
        increment = {"name": "d-a", "by": 0}
        await server.application.run_mutation("counters:increment", increment, internal=True)
        await socket.send(mutation(0, "syncTest:bumpPair", {"prefix": "d"}))
        assert (await socket.receive())["type"] == "MutationResponse"  # no Transition before
        (update,) = (await socket.receive())["modifications"]
        assert update["value"] == [1.0, 1.0]
