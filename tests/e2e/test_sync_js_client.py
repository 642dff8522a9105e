"""The npm `ConvexClient` (convex 1.48.0, WebSocket, via node) against the sync socket."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from owlat.runtime.database.commits import Commit
from tests.e2e.conftest import Issuers
from tests.e2e.sync_harness import SyncServer, sync_server
from tests.e2e.test_http_official_clients import node_client_dir, run_client

__all__ = ["node_client_dir"]  # the fixture, shared with the HTTP client tests

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def server(tmp_path: Path, issuers: Issuers, database_url: str) -> AsyncIterator[SyncServer]:
    async with sync_server(tmp_path, issuers, database_url=database_url) as running:
        yield running


async def test_npm_client_gets_pushes_and_reads_its_writes(
    server: SyncServer, node_client_dir: Path
) -> None:
    token = server.issuers.rs256.token("js-user")
    out = await run_client(
        "node", "sync_client.mjs", server.url, "basic", token, cwd=node_client_dir
    )
    assert out["first"] == []
    assert isinstance(out["sent"]["value"], str)
    assert out["afterOwnMutation"] == ["mine"]
    assert out["afterOtherMutation"] == ["mine", "theirs"]
    assert out["action"] == {"value": 3}
    assert out["convexError"]["isConvexError"] is True
    assert out["convexError"]["data"] == {"code": "EMPTY_BODY", "message": "A message needs a body"}
    assert "Could not find public function for 'messages:nope'" in out["missing"]["error"]
    assert out["oneShot"] == {"value": ["mine", "theirs"]}
    assert out["identities"] == [None, "js-user"]
    assert out["updates"] == [[], ["mine"], ["mine", "theirs"]]  # no spurious re-sends
    assert not any("Invalid start version" in line for line in out["logged"])


async def test_npm_client_resends_a_mutation_after_a_dropped_socket_exactly_once(
    server: SyncServer, node_client_dir: Path
) -> None:
    drops: list[int] = []

    def drop_on_first_write(commit: Commit) -> None:
        channels = {
            (change.new or {}).get("channel")
            for change in commit.write_set.documents
            if change.table == "messages"
        }
        if "drop" in channels and not drops:
            drops.append(commit.ts)
            server.service.drop_connections()  # before the MutationResponse goes out

    server.application.on_commit(drop_on_first_write)
    out = await run_client(
        "node", "sync_client.mjs", server.url, "reconnect", "", cwd=node_client_dir
    )
    assert len(drops) == 1
    assert out["updates"][0] == [] and out["updates"][-1] == ["once", "twice"]
    messages = (await server.application.run_query("messages:list", {"channel": "drop"})).value
    assert [m["body"] for m in messages] == ["once", "twice"]  # applied exactly once
    assert out["sent"] == {"value": messages[0]["_id"]}  # the replayed result
