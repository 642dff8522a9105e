"""The HTTP function API (reference §1) against the real server: routes, argument forms,
formats, function errors, protocol errors, CORS."""

from __future__ import annotations

import asyncio
import base64
import logging
import re
import struct
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from owlat.runtime import query
from owlat.runtime.errors import EngineError
from owlat.runtime.server import create_app
from owlat.runtime.server._requests import MAX_BODY_BYTES
from tests.e2e.conftest import RunningServer

pytestmark = pytest.mark.timeout(30)

_FAILURE = re.compile(r"\[Request ID: [0-9a-f]{16}\] Server Error\n(.*)", re.DOTALL)


async def call(
    client: httpx.AsyncClient, route: str, path: str, args: Any = None, **fields: Any
) -> dict[str, Any]:
    """POST a call; asserts HTTP 200 and returns the `UdfResponse` body."""
    body = {"path": path, "args": {} if args is None else args, **fields}
    response = await client.post(route, json=body)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def failure(body: dict[str, Any]) -> str:
    """What a failed call's `errorMessage` says after `[Request ID: …] Server Error`."""
    assert body["status"] == "error", body
    match = _FAILURE.fullmatch(body["errorMessage"])
    assert match, body["errorMessage"]
    return match.group(1)


def refusal(response: httpx.Response, status: int, code: str) -> str:
    """Asserts a protocol error `{code, message}` with `status`; returns the message."""
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == code, body
    message: str = body["message"]
    return message


async def test_health_routes(client: httpx.AsyncClient) -> None:
    assert (await client.get("/")).text == "This Owlat deployment is running."
    assert (await client.get("/instance_name")).text == "owlat"
    assert (await client.get("/instance_version")).status_code == 200


async def test_public_functions_with_object_or_array_args(client: httpx.AsyncClient) -> None:
    sent = await call(client, "/api/mutation", "messages:send", {"channel": "a", "body": "hi"})
    assert sent["status"] == "success" and sent["logLines"] == []
    listed = await call(client, "/api/query", "messages.js:list", [{"channel": "a"}])
    (message,) = listed["value"]
    assert message["_id"] == sent["value"] and message["body"] == "hi"
    counted = await call(client, "/api/action", "counters:incrementMany", {"name": "c", "times": 3})
    assert counted == {"status": "success", "value": 3.0, "logLines": []}
    response = await client.get(
        "/api/query", params={"path": "messages:list", "args": '{"channel": "a"}'}
    )
    assert response.json()["value"] == listed["value"]


async def test_value_formats(client: httpx.AsyncClient) -> None:
    encoded = {
        "int64": {"$integer": base64.b64encode(struct.pack("<q", 2**53 + 1)).decode()},
        "float": 1.5,
        "bytes": {"$bytes": "AAE="},
        "inf": {"$float": base64.b64encode(struct.pack("<d", float("inf"))).decode()},
    }
    clean = {"int64": "9007199254740993", "float": 1.5, "bytes": "AAE=", "inf": "Infinity"}
    for name, expected in [
        ("convex_encoded_json", encoded),
        ("convex_json", encoded),
        ("json", clean),
        ("convex_clean_json", clean),
    ]:
        body = await call(client, "/api/query", "probes:values", format=name)
        assert body["value"] == expected, name
    # Without `format`, the Convex-Client header decides: old official clients get encoded.
    for header, expected in [(None, clean), ("npm-1.48.0", clean), ("npm-1.3.0", encoded)]:
        headers = {} if header is None else {"Convex-Client": header}
        response = await client.post(
            "/api/query", json={"path": "probes:values", "args": {}}, headers=headers
        )
        assert response.json()["value"] == expected, header
    response = await client.post("/api/query", json={"path": "probes:values", "format": "xml"})
    assert "Unsupported format 'xml'" in refusal(response, 400, "BadJsonBody")


async def test_function_errors_are_http_200(client: httpx.AsyncClient) -> None:
    missing = await call(client, "/api/query", "messages:lis")
    assert failure(missing) == "Could not find public function for 'messages:lis'."
    wrong_kind = await call(client, "/api/query", "messages:send", {"channel": "a", "body": "b"})
    assert failure(wrong_kind) == (
        "Trying to execute messages:send as Query, but it is defined as Mutation."
    )
    internal = await call(client, "/api/query", "probes:secret")
    assert failure(internal) == "Could not find public function for 'probes:secret'."
    invalid = await call(client, "/api/mutation", "messages:send", {"channel": "a"})
    assert failure(invalid).startswith("ArgumentValidationError: ")
    assert "missing the required field `body`" in failure(invalid)


async def test_thrown_error_message_log_lines_and_server_log(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="owlat.server"):
        body = await call(client, "/api/action", "probes:fail", {"message": "boom"})
    assert failure(body) == "Uncaught Error: boom"
    assert body["logLines"] == ["[LOG] about to fail"]
    assert "errorData" not in body
    (record,) = caplog.records
    assert "probes:fail failed" in record.getMessage() and record.exc_info is not None
    request_id = body["errorMessage"][len("[Request ID: ") :][:16]
    assert request_id in record.getMessage()


async def test_convex_error_carries_its_data(client: httpx.AsyncClient) -> None:
    data = {"code": "NOPE", "big": {"$integer": "AQAAAAAAAAA="}}
    encoded = {"format": "convex_encoded_json"}
    body = await call(client, "/api/mutation", "probes:failWithData", {"data": data}, **encoded)
    assert (
        failure(body) == 'Uncaught ConvexError: {"code":"NOPE","big":{"$integer":"AQAAAAAAAAA="}}'
    )
    assert body["errorData"] == data and body["logLines"] == ["[LOG] refusing"]
    clean = await call(
        client, "/api/mutation", "probes:failWithData", {"data": data}, format="json"
    )
    assert clean["errorData"] == {"code": "NOPE", "big": "1"}
    text = await call(client, "/api/mutation", "probes:failWithData", {"data": "plain"}, **encoded)
    assert failure(text) == "Uncaught ConvexError: plain" and text["errorData"] == "plain"


async def test_log_lines_of_a_successful_call(client: httpx.AsyncClient) -> None:
    body = await call(client, "/api/query", "probes:shout", {"text": "hey"})
    assert body == {"status": "success", "value": "HEY", "logLines": ["[LOG] shouting hey"]}


async def test_malformed_requests_are_refused(client: httpx.AsyncClient) -> None:
    headers = {"Content-Type": "application/json"}
    response = await client.post("/api/query", content=b"{nope", headers=headers)
    assert "not valid JSON" in refusal(response, 400, "BadJsonBody")
    response = await client.post("/api/query", content=b"[1]", headers=headers)
    assert "must be a JSON object" in refusal(response, 400, "BadJsonBody")
    response = await client.post("/api/query", json={"args": {}})
    assert "`path`" in refusal(response, 400, "BadJsonBody")
    response = await client.post("/api/query", json={"path": "messages:list", "args": [{}, {}]})
    assert "array of 2" in refusal(response, 400, "BadJsonBody")
    bad_int = {"path": "messages:list", "args": {"channel": {"$integer": "nope"}}}
    response = await client.post("/api/query", json=bad_int)
    assert "$integer" in refusal(response, 400, "InvalidValue")
    response = await client.get("/api/query", params={"path": "messages:list", "args": "{"})
    assert "`args` parameter" in refusal(response, 400, "BadJsonBody")


async def test_oversized_bodies_are_refused(client: httpx.AsyncClient) -> None:
    payload = b"x" * (MAX_BODY_BYTES + 1)
    response = await client.post("/api/mutation", content=payload)
    assert "larger than the limit" in refusal(response, 413, "PayloadTooLarge")

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted while read
        for start in range(0, len(payload), 1 << 20):
            yield payload[start : start + (1 << 20)]

    response = await client.post("/api/mutation", content=chunks())
    refusal(response, 413, "PayloadTooLarge")
    fits = {"path": "messages:send", "args": {"channel": "big", "body": "y" * (1 << 19)}}
    assert (await client.post("/api/mutation", json=fits)).json()["status"] == "success"


async def test_bad_convex_client_headers(client: httpx.AsyncClient) -> None:
    for header, code in [
        ("npm", "InvalidClientVersion"),
        ("my-client", "InvalidClientVersion"),
        ("npm-one.two", "ClientVersionUnsupported"),
        ("python-0.0.2", "ClientVersionUnsupported"),
        ("npm-0.19.1", "ClientVersionUnsupported"),
    ]:
        response = await client.post(
            "/api/query",
            json={"path": "messages:list", "args": {}},
            headers={"Convex-Client": header},
        )
        assert header in refusal(response, 400, code), header


async def test_custom_client_names_are_accepted(client: httpx.AsyncClient) -> None:
    for header in ("my-swift-client-0.0.10-alpha.0", "python-0.8.1", "rust-0.10.4"):
        response = await client.post(
            "/api/query",
            json={"path": "messages:list", "args": {"channel": "x"}},
            headers={"Convex-Client": header},
        )
        assert response.json()["status"] == "success", header


async def test_cors_preflight_and_simple_requests(client: httpx.AsyncClient) -> None:
    origin = "https://app.example.com"
    response = await client.options(
        "/api/query",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type, convex-client, authorization",
        },
    )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == origin
    assert response.headers["access-control-allow-headers"] == (
        "content-type, convex-client, authorization"
    )
    assert response.headers["access-control-allow-credentials"] == "true"
    assert response.headers["access-control-max-age"] == "86400"
    assert {"GET", "POST", "OPTIONS", "PATCH", "DELETE", "PUT"} <= set(
        response.headers["access-control-allow-methods"].split(", ")
    )
    ids = {response.headers["x-request-id"]}  # every answer names its request
    response = await client.post(
        "/api/query",
        json={"path": "messages:list", "args": {"channel": "x"}},
        headers={"Origin": origin, "X-Request-Id": "given-1"},
    )
    assert response.headers["access-control-allow-origin"] == origin
    assert response.headers["access-control-allow-credentials"] == "true"
    assert response.headers["x-request-id"] == "given-1"
    response = await client.post(  # no Origin: no CORS headers, but caches are told to vary
        "/api/query",
        json={"path": "messages:list", "args": {"channel": "x"}},
        headers={"X-Request-Id": "not valid!"},
    )
    assert "access-control-allow-origin" not in response.headers
    assert response.headers["vary"] == "Origin"
    ids.add(response.headers["x-request-id"])
    assert len(ids) == 2 and all(re.fullmatch("[0-9a-f]{16}", each) for each in ids)


def test_the_function_api_is_routed_first(server: RunningServer) -> None:
    """The router tries routes in order: every other route before them would cost each
    function call a failed match."""
    app = create_app(server.application, server.authenticator)
    paths = [getattr(route, "path", None) for route in app.routes[:3]]
    assert paths == ["/api/query", "/api/mutation", "/api/action"]


async def test_duplicate_slashes_and_unknown_routes(
    client: httpx.AsyncClient, server: RunningServer
) -> None:
    url = httpx.URL(server.url + "//api//query")  # the npm client's URL + "/" + "/api/..."
    response = await client.post(url, json={"path": "messages:list", "args": {"channel": "x"}})
    assert response.json() == {"status": "success", "value": [], "logLines": []}
    refusal(await client.post("/api/nothing"), 404, "NotFound")
    response = await client.get("/api/mutation")
    refusal(response, 405, "MethodNotAllowed")
    assert response.headers["allow"] == "POST"


async def test_query_batch_runs_every_query_at_one_snapshot(
    client: httpx.AsyncClient, server: RunningServer
) -> None:
    await server.application.run_mutation("messages:send", {"channel": "a", "body": "first"})
    batch = client.post(
        "/api/query_batch",
        json={
            "queries": [
                {"path": "probes:countSlowly", "args": {"pause": 0.2}},
                {"path": "messages:list", "args": [{"channel": "a"}], "format": "json"},
                {"path": "messages:send", "args": {"channel": "a", "body": "no"}},
            ]
        },
    )
    running = asyncio.ensure_future(batch)
    await asyncio.sleep(0.05)  # the batch is inside its first query: commit meanwhile
    await server.application.run_mutation("messages:send", {"channel": "a", "body": "second"})
    count, listed, wrong_kind = (await running).json()["results"]
    assert count == {"status": "success", "value": 1.0, "logLines": []}
    assert [message["body"] for message in listed["value"]] == ["first"]
    assert failure(wrong_kind).startswith("Trying to execute messages:send as Query")
    after = await call(client, "/api/query", "messages:list", {"channel": "a"})
    assert len(after["value"]) == 2
    response = await client.post("/api/query_batch", json={"queries": [1]})
    refusal(response, 400, "BadJsonBody")


async def test_query_ts_and_query_at_ts(client: httpx.AsyncClient, server: RunningServer) -> None:
    await server.application.run_mutation("messages:send", {"channel": "a", "body": "one"})
    ts = (await client.post("/api/query_ts")).json()["ts"]
    assert struct.unpack("<Q", base64.b64decode(ts))[0] == server.application.latest_ts
    at_ts = {"path": "messages:list", "args": [{"channel": "a"}], "ts": ts}
    body = (await client.post("/api/query_at_ts", json=at_ts)).json()
    assert body["status"] == "success" and len(body["value"]) == 1
    await server.application.run_mutation("messages:send", {"channel": "a", "body": "two"})
    response = await client.post("/api/query_at_ts", json=at_ts)
    assert "keeps only the latest snapshot" in refusal(response, 400, "SnapshotUnavailable")
    response = await client.post("/api/query_at_ts", json={**at_ts, "ts": "nope"})
    assert "`ts`" in refusal(response, 400, "BadJsonBody")


async def test_run_route(client: httpx.AsyncClient) -> None:
    sent = await client.post("/api/run/messages/send", json={"args": {"channel": "r", "body": "x"}})
    assert sent.json()["status"] == "success"
    listed = (await client.post("/api/run/messages/list", json={"args": {"channel": "r"}})).json()
    assert [message["body"] for message in listed["value"]] == ["x"]
    values = (await client.post("/api/run/probes/values", json={})).json()
    assert values["value"]["int64"] == "9007199254740993"  # clean JSON by default
    encoded = await client.post("/api/run/probes/values", json={"format": "convex_encoded_json"})
    assert "$integer" in encoded.json()["value"]["int64"]
    assert "names no function" in refusal(await client.post("/api/run/values"), 404, "NotFound")
    internal = (await client.post("/api/run/probes/secret", json={})).json()
    assert failure(internal) == "Could not find public function for 'probes:secret'."


async def test_function_route_needs_the_admin_key(
    client: httpx.AsyncClient, server: RunningServer
) -> None:
    body = {"path": "probes:secret", "args": {}, "format": "convex_encoded_json"}
    refusal(await client.post("/api/function", json=body), 403, "Forbidden")
    wrong = {"Authorization": "Convex owlat-admin|" + "0" * 64}
    response = await client.post("/api/function", json=body, headers=wrong)
    assert "admin key is not valid" in refusal(response, 401, "Unauthenticated")
    admin = {"Authorization": f"Convex {server.admin_key}"}
    response = await client.post("/api/function", json=body, headers=admin)
    assert response.json() == {"status": "success", "value": "for admins", "logLines": []}
    send = {"path": "messages:send", "args": {"channel": "f", "body": "b"}}
    assert (await client.post("/api/function", json=send, headers=admin)).json()["status"] == (
        "success"
    )
    # An admin may also call internal functions through the public routes.
    query = {"path": "probes:secret", "args": {}}
    assert (await client.post("/api/query", json=query, headers=admin)).json()["value"] == (
        "for admins"
    )
    components = {**body, "componentPath": "child"}
    response = await client.post("/api/function", json=components, headers=admin)
    refusal(response, 400, "BadJsonBody")


async def test_operator_errors_are_protocol_errors(
    client: httpx.AsyncClient, server: RunningServer, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(ctx: Any, args: Any) -> None:
        raise EngineError("SQLite: disk I/O error")

    server.application.package.functions.add("adhoc:broken", query(broken))
    with caplog.at_level(logging.ERROR, logger="owlat.server"):
        response = await client.post("/api/query", json={"path": "adhoc:broken", "args": {}})
    message = refusal(response, 500, "StorageError")
    assert re.fullmatch(r"\[Request ID: \w+\] The server could not complete the request\.", message)
    assert "disk I/O error" not in message  # details stay in the server's log
    (record,) = caplog.records
    assert record.exc_info is not None and "disk I/O error" in str(record.exc_info[1])
