"""HTTP actions through the real server, on the site port and under `/http/` on the client
port: routing precedence, HEAD, 404s, calls into functions, identity, errors; and
`owlat dev` serving both ports from one process."""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import RunningServer
from tests.e2e.processes import finished, started_with_site


@pytest.fixture(params=["site port", "client port /http"])
def base(request: pytest.FixtureRequest, server: RunningServer) -> str:
    return server.site_url if request.param == "site port" else server.url + "/http"


async def route_of(client: httpx.AsyncClient, url: str, method: str = "GET") -> object:
    reply = await client.request(method, url)
    assert reply.status_code == 200, reply.text
    return reply.json()["route"]


async def test_exact_paths_win_then_the_longest_prefix(
    base: str, client: httpx.AsyncClient
) -> None:
    assert await route_of(client, f"{base}/files/special") == "exact"
    assert await route_of(client, f"{base}/files/other") == "files prefix"
    assert await route_of(client, f"{base}/files/deep") == "files prefix"
    assert await route_of(client, f"{base}/files/deep/a/b") == "deep prefix"
    # exact routes are per method: PUT finds only the catch-all prefix
    assert await route_of(client, f"{base}/files/special", "PUT") == "catch-all put"


async def test_head_unrouted_paths_and_methods(base: str, client: httpx.AsyncClient) -> None:
    get = await client.get(f"{base}/files/special")
    head = await client.head(f"{base}/files/special")
    assert (head.status_code, head.content) == (200, b"")
    assert head.headers["content-length"] == get.headers["content-length"]
    assert head.headers["content-type"] == "application/json"
    for method, path in (("GET", "/nothing"), ("DELETE", "/files/special"), ("GET", "/")):
        reply = await client.request(method, f"{base}{path}")
        assert (reply.status_code, reply.text) == (404, f"No HttpAction routed for {path}")
    # an encoded newline still reaches the router
    reply = await client.get(f"{base}/no%0Athing")
    assert (reply.status_code, reply.text) == (404, "No HttpAction routed for /no\nthing")


async def test_handlers_call_functions(
    base: str, server: RunningServer, client: httpx.AsyncClient
) -> None:
    reply = await client.post(f"{base}/messages", json={"channel": "hooks", "body": "hi"})
    assert reply.status_code == 201, reply.text
    assert reply.json()["count"] == 1
    listed = await server.application.run_query("messages:list", {"channel": "hooks"})
    assert [message["_id"] for message in listed.value] == [reply.json()["id"]]


async def test_handler_failures_are_500s(
    base: str, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="owlat.server"):
        boom = await client.get(f"{base}/boom")
        odd = await client.get(f"{base}/not-a-response")
    assert boom.status_code == 500
    assert boom.text.startswith("[Request ID: ")
    assert boom.text.endswith("] Server Error\nUncaught Error: the handler broke")
    assert odd.status_code == 500 and "must return a Starlette Response" in odd.text
    assert "HTTP action GET /boom failed" in caplog.text
    assert "RuntimeError: the handler broke" in caplog.text


async def test_identity_and_foreign_authorization_headers(
    base: str, server: RunningServer, client: httpx.AsyncClient
) -> None:
    token = server.issuers.rs256.token("user-7")
    user = await client.get(f"{base}/whoami", headers={"Authorization": f"Bearer {token}"})
    assert user.json() == "user-7"
    api_key = await client.get(f"{base}/whoami", headers={"Authorization": "Bearer lm_live_x"})
    assert (api_key.status_code, api_key.json()) == (200, None)


async def test_actions_answer_their_own_preflights(base: str, client: httpx.AsyncClient) -> None:
    reply = await client.options(
        f"{base}/messages",
        headers={"Origin": "https://elsewhere.test", "Access-Control-Request-Method": "POST"},
    )
    assert reply.status_code == 204
    assert reply.headers["access-control-allow-origin"] == "https://app.test"


async def test_the_site_port_serves_only_http_actions(
    server: RunningServer, client: httpx.AsyncClient
) -> None:
    reply = await client.post(f"{server.site_url}/api/query", json={"path": "x", "args": {}})
    assert (reply.status_code, reply.text) == (404, "No HttpAction routed for /api/query")
    api = await client.post("/api/query", json={"path": "messages:list", "args": {"channel": "c"}})
    assert api.json()["status"] == "success"


async def test_owlat_dev_serves_both_ports(tmp_path: Path) -> None:
    process, url, site_url = await started_with_site("dev", tmp_path)
    try:
        async with httpx.AsyncClient() as client:
            assert (await client.get(f"{site_url}/files/special")).json()["route"] == "exact"
            assert (await client.get(f"{url}/http/files/special")).json()["route"] == "exact"
            reply = await client.post(f"{site_url}/upload", content=b"via dev")
            assert reply.json()["url"].startswith(f"{url}/api/storage/")
            assert (await client.get(reply.json()["url"])).content == b"via dev"
    finally:
        process.send_signal(signal.SIGINT)
        _, stderr = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, stderr.decode()
    code, out, _ = await finished("run", "files:allMetadata", "--data-dir", str(tmp_path))
    assert code == 0 and '"size":7.0' in out
