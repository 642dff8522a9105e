"""The official Convex HTTP clients, unchanged, against the real server: npm
`ConvexHttpClient` (convex 1.48.0, via node) and PyPI `convex.http_client.ConvexHttpClient`
(0.8.1). Each runs in its own process, awaited without blocking the server's loop."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import RunningServer
from tests.e2e.npm_packages import installed

pytestmark = pytest.mark.timeout(60)

HERE = Path(__file__).parent
JS_DIR = HERE / "js"
CLIENT_TIMEOUT = 30.0


@pytest.fixture(scope="session")
def node_client_dir() -> Path:
    """tests/e2e/js with its pinned npm packages installed (`npm ci` on first use)."""
    return installed(JS_DIR, "convex")


async def run_client(*command: str, cwd: Path) -> dict[str, Any]:
    """Run a client script to completion (killed after `CLIENT_TIMEOUT`); its last stdout
    line is the JSON report."""
    process = await asyncio.create_subprocess_exec(
        *command, cwd=cwd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), CLIENT_TIMEOUT)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode == 0, stderr.decode()
    report: dict[str, Any] = json.loads(stdout.decode().strip().splitlines()[-1])
    return report


async def test_npm_http_client(server: RunningServer, node_client_dir: Path) -> None:
    token = server.issuers.rs256.token("npm-user", name="Npm User")
    out = await run_client(
        "node", "http_client.mjs", server.url, token, server.admin_key, cwd=node_client_dir
    )
    message_id = out["sent"]["value"]
    assert isinstance(message_id, str)
    (message,) = out["listed"]["value"]
    assert message["_id"] == message_id and message["body"] == "hi"
    assert out["action"] == {"value": 2}
    assert out["consistent"] == out["listed"]
    assert out["values"]["value"]["int64"] == f"{2**53 + 1}n"  # a bigint in JavaScript
    assert out["shout"] == {"value": "JS"}
    (log_line,) = out["logged"]  # the client parsed our "[LOG] ..." line: level and text
    assert "[CONVEX Q(probes:shout)] [LOG]" in log_line and log_line.endswith(" shouting js")
    convex_error = out["convexError"]
    assert convex_error["isConvexError"] is True
    assert convex_error["data"] == {"code": "EMPTY_BODY", "message": "A message needs a body"}
    assert "Uncaught ConvexError:" in convex_error["error"]
    assert out["missing"]["isConvexError"] is False
    assert "Could not find public function for 'messages:lis'." in out["missing"]["error"]
    assert "Could not find public function" in out["internal"]["error"]
    assert out["anonymous"] == {"value": None}
    identity = out["identity"]["value"]
    assert identity["tokenIdentifier"] == f"{server.issuers.rs256.issuer}|npm-user"
    assert identity["name"] == "Npm User"
    assert '"code":"Unauthenticated"' in out["badToken"]["error"]
    assert out["adminFunction"] == {"value": "for admins"}
    assert out["acting"]["value"] == {
        "tokenIdentifier": "https://admin.test|acting-1",
        "subject": "acting-1",
        "issuer": "https://admin.test",
        "name": "Ada",
    }


async def test_pypi_http_client(server: RunningServer) -> None:
    token = server.issuers.es256.token("py-user")
    script = HERE / "clients" / "convex_http_client.py"
    out = await run_client(sys.executable, str(script), server.url, token, cwd=HERE)
    assert isinstance(out["sent"]["value"], str)
    assert [m["body"] for m in out["listed"]["value"]] == ["hi"]
    assert out["action"] == {"value": 2.0}
    assert out["values"]["value"]["int64"] == f"ConvexInt64({2**53 + 1})"
    assert out["values"]["value"]["bytes"] == "0001"
    assert out["convexError"]["data"] == {"code": "EMPTY_BODY", "message": "A message needs a body"}
    assert out["thrown"]["error"].startswith("ConvexExecutionError: [Request ID: ")
    assert out["thrown"]["error"].endswith("Server Error\nUncaught Error: boom")
    assert out["anonymous"] == {"value": None}
    assert out["identity"]["value"]["subject"] == "py-user"
    assert out["badToken"]["error"].startswith("Exception: 401 Unauthenticated: ")
