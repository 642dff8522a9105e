"""The PyPI `convex` WebSocket client (`ConvexClient`) against the sync socket."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.e2e.conftest import Issuers
from tests.e2e.sync_harness import REPO, SyncServer, sync_server
from tests.e2e.test_http_official_clients import run_client

CLIENT = "tests/e2e/clients/convex_ws_client.py"

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def server(tmp_path: Path, issuers: Issuers, database_url: str) -> AsyncIterator[SyncServer]:
    async with sync_server(tmp_path, issuers, database_url=database_url) as running:
        yield running


async def test_python_client_queries_mutates_subscribes_and_authenticates(
    server: SyncServer,
) -> None:
    token = server.issuers.rs256.token("python-user")
    out = await run_client(sys.executable, CLIENT, server.url, token, cwd=REPO)
    assert out["empty"] == {"value": []}
    assert isinstance(out["sent"]["value"], str)
    assert out["listed"] == {"value": ["hi"]}
    assert out["action"] == {"value": 2.0}
    assert out["convexError"]["data"] == {"code": "EMPTY_BODY", "message": "A message needs a body"}
    assert "Could not find public function for 'messages:nope'" in out["missing"]["error"]
    assert out["subscription"] == [[], ["from the other client"]]
    assert out["signedIn"] == {"value": "python-user"}
    assert out["signedOut"] == {"value": None}
    assert await server.count("py") == 1
    assert server.service.subscriptions.subscriber_count() == 0  # every socket cleaned up
