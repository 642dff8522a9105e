"""The data browser's JSON endpoints over real HTTP, on both engines
(runtime/server/data_browser.py)."""

from __future__ import annotations

from typing import Any

import httpx

from owlat.runtime.server.data_browser import CONTENT_SECURITY_POLICY, MAX_PAGE
from tests.e2e.conftest import RunningServer

ENDPOINTS = [
    ("GET", "/_admin/api/tables"),
    ("GET", "/_admin/api/documents?table=items"),
    ("GET", "/_admin/api/document?id=x"),
    ("GET", "/_admin/api/scheduled"),
    ("POST", "/_admin/api/run"),
    ("GET", "/_admin/api/logs"),
]


def admin(server: RunningServer) -> dict[str, str]:
    return {"authorization": f"Convex {server.admin_key}"}


async def run(http: httpx.AsyncClient, server: RunningServer, path: str, args: Any) -> Any:
    reply = await http.post(
        "/_admin/api/run", json={"path": path, "args": args}, headers=admin(server)
    )
    assert reply.status_code == 200, reply.text
    return reply.json()


async def test_every_endpoint_refuses_without_the_admin_key(
    server: RunningServer, client: httpx.AsyncClient
) -> None:
    for method, path in ENDPOINTS:
        for headers in (
            {},
            {"authorization": "Convex wrong"},
            {"authorization": f"Bearer {server.admin_key}"},
        ):
            reply = await client.request(method, path, headers=headers, json={})
            assert reply.status_code == 401, (method, path, headers)
            assert reply.json()["code"] == "Unauthenticated"


async def test_the_page_is_served_with_a_strict_policy(client: httpx.AsyncClient) -> None:
    page = await client.get("/_admin/")
    assert page.status_code == 200 and "Data browser" in page.text
    assert page.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert (
        "script-src 'self'" in CONTENT_SECURITY_POLICY and "unsafe" not in CONTENT_SECURITY_POLICY
    )
    script = await client.get("/_admin/browser.js")
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]


async def test_tables_pages_and_documents(server: RunningServer, client: httpx.AsyncClient) -> None:
    for index in range(7):
        await run(
            client,
            server,
            "messages:send",
            {"channel": "a" if index % 2 else "b", "body": str(index)},
        )
    tables = (await client.get("/_admin/api/tables", headers=admin(server))).json()
    messages = next(table for table in tables if table["name"] == "messages")
    assert messages["count"] == 7
    assert {"name": "by_channel", "fields": ["channel"]} in messages["indexes"]
    assert any(table["name"] == "_scheduled_functions" and table["system"] for table in tables)

    bodies: list[str] = []
    cursor: str | None = None
    while True:
        params = {"table": "messages", "limit": "3", **({"cursor": cursor} if cursor else {})}
        page = (
            await client.get("/_admin/api/documents", params=params, headers=admin(server))
        ).json()
        assert len(page["page"]) <= 3
        bodies += [document["body"] for document in page["page"]]
        if page["isDone"]:
            break
        cursor = page["continueCursor"]
    assert bodies == ["6", "5", "4", "3", "2", "1", "0"]  # newest first

    ranged = await client.get(
        "/_admin/api/documents",
        params={"table": "messages", "index": "by_channel", "eq": '["a"]'},
        headers=admin(server),
    )
    assert [document["body"] for document in ranged.json()["page"]] == ["5", "3", "1"]

    first = ranged.json()["page"][0]
    one = await client.get(
        "/_admin/api/document", params={"id": first["_id"]}, headers=admin(server)
    )
    assert one.json() == {"table": "messages", "document": first}


async def test_bad_input_is_refused_precisely(
    server: RunningServer, client: httpx.AsyncClient
) -> None:
    cases = [
        ({"table": "nope"}, 404, "No table 'nope'"),
        ({}, 400, "?table= is required"),
        ({"table": "messages", "limit": str(MAX_PAGE + 1)}, 400, f"from 1 to {MAX_PAGE}"),
        ({"table": "messages", "limit": "x"}, 400, "whole number"),
        ({"table": "messages", "index": "by_x"}, 400, "has no index 'by_x'"),
        ({"table": "messages", "index": "by_channel", "eq": '["a", 1]'}, 400, "1 field(s)"),
        ({"table": "messages", "index": "by_channel", "eq": "{"}, 400, "not JSON"),
        ({"table": "messages", "index": "by_channel", "eq": '{"a": 1}'}, 400, "JSON array"),
        ({"table": "messages", "cursor": "garbage"}, 400, ""),
    ]
    for params, status, message in cases:
        reply = await client.get("/_admin/api/documents", params=params, headers=admin(server))
        assert reply.status_code == status, (params, reply.text)
        assert message in reply.json()["message"], (params, reply.text)
    unknown = await client.get("/_admin/api/document", params={"id": "nope"}, headers=admin(server))
    assert unknown.status_code == 400 and "not an id of any table" in unknown.json()["message"]
    for body in ({"args": {}}, {"path": "probes:shout", "args": [1]}):
        reply = await client.post("/_admin/api/run", json=body, headers=admin(server))
        assert reply.status_code == 400, reply.text
    logs = await client.get("/_admin/api/logs", params={"after": "-1"}, headers=admin(server))
    assert logs.status_code == 400


async def test_run_scheduled_and_logs(server: RunningServer, client: httpx.AsyncClient) -> None:
    shouted = await run(client, server, "probes:shout", {"text": "hi"})
    assert shouted["status"] == "success" and shouted["value"] == "HI"
    failed = await run(client, server, "probes:shout", {"text": 1})
    assert failed["status"] == "error" and "text" in failed["errorMessage"]
    scheduling = await run(
        client, server, "jobs:scheduleRecords", {"keys": ["k"], "delay_ms": 60_000}
    )
    assert scheduling["status"] == "success", scheduling

    scheduled = (await client.get("/_admin/api/scheduled", headers=admin(server))).json()
    assert [(job["name"], job["state"]["kind"]) for job in scheduled["page"]] == [
        ("jobs:record", "pending")
    ]
    assert isinstance(scheduled["crons"], list)

    lines = (await client.get("/_admin/api/logs", headers=admin(server))).json()["lines"]
    mine = [line for line in lines if line["line"] == "[LOG] shouting hi"]
    assert mine and mine[-1]["function"] == "probes:shout"
    after = (
        await client.get(
            "/_admin/api/logs", params={"after": str(mine[-1]["seq"])}, headers=admin(server)
        )
    ).json()["lines"]
    assert all(line["seq"] > mine[-1]["seq"] for line in after)
