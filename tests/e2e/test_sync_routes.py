"""The sync socket as mounted by the server factory (`create_app`): both paths, and the
HTTP API and the socket seeing each other's writes."""

from __future__ import annotations

import httpx
import pytest

from owlat.runtime.server import websocket as websocket_adapter
from tests.e2e.conftest import RunningServer
from tests.e2e.sync_harness import RawSocket
from tests.e2e.sync_messages import add, modify

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize("path", ["/api/sync", "/api/1.48.0/sync", "//api/sync"])
async def test_create_app_serves_sync_on_every_client_path(
    server: RunningServer, client: httpx.AsyncClient, path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through the app's whole middleware stack, and with its frames written straight on
    the transport (server/websocket.py finds uvicorn's protocol behind it)."""
    written: list[bytes] = []
    write_frame = websocket_adapter._SocketTransport._write_frame

    def recording(transport: websocket_adapter._SocketTransport, payload: bytes) -> None:
        written.append(payload)
        write_frame(transport, payload)

    monkeypatch.setattr(websocket_adapter._SocketTransport, "_write_frame", recording)
    url = server.url.replace("http://", "ws://") + path
    async with RawSocket.open(url) as socket:
        await socket.send(modify(0, 1, add(0, "messages:list", {"channel": "h"})))
        assert (await socket.receive())["modifications"][0]["value"] == []
        response = await client.post(
            "/api/mutation",
            json={"path": "messages:send", "args": {"channel": "h", "body": "over http"}},
        )
        assert response.json()["status"] == "success"
        (update,) = (await socket.receive())["modifications"]
    assert [m["body"] for m in update["value"]] == ["over http"]
    assert len(written) == 2 and b"over http" in written[1]
