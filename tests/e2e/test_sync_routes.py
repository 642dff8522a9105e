"""The sync socket as mounted by the server factory (`create_app`): both paths, and the
HTTP API and the socket seeing each other's writes."""

from __future__ import annotations

import httpx
import pytest

from tests.e2e.conftest import RunningServer
from tests.e2e.sync_harness import RawSocket
from tests.e2e.sync_messages import add, modify

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize("path", ["/api/sync", "/api/1.48.0/sync", "//api/sync"])
async def test_create_app_serves_sync_on_every_client_path(
    server: RunningServer, client: httpx.AsyncClient, path: str
) -> None:
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
