"""`owlat serve --log-format json`: one JSON object per line on stderr, with the request id
of the request being served (also in error messages and the X-Request-Id header) and the
functions' own log lines attributed to their path."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import sys
from pathlib import Path

import httpx

from tests.e2e.processes import ENV, ROOT

_BANNER = re.compile(r"Owlat is serving (http://127\.0\.0\.1:\d+)")


async def test_serve_writes_json_logs_with_request_ids_and_function_paths(tmp_path: Path) -> None:
    log = tmp_path / "stderr.log"
    with log.open("wb") as stderr:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "owlat.cli", "serve", "--log-format", "json",
            "--port", "0", "--site-port", "0", "--data-dir", str(tmp_path / "data"),
            env=ENV, cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=stderr,
        )  # fmt: skip
    try:
        assert process.stdout is not None
        banner = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
        match = _BANNER.match(banner)
        assert match, banner + log.read_text()
        async with httpx.AsyncClient(base_url=match.group(1)) as http:
            shout = await http.post(
                "/api/query",
                json={"path": "probes:shout", "args": {"text": "hi"}},
                headers={"x-request-id": "req-shout-1"},
            )
            assert shout.headers["x-request-id"] == "req-shout-1"
            failed = await http.post(
                "/api/action", json={"path": "probes:fail", "args": {"message": "boom"}}
            )
        request_id = failed.headers["x-request-id"]
        assert f"[Request ID: {request_id}]" in failed.json()["errorMessage"]
    finally:
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), 30)
    entries = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    assert {
        "level": "INFO",
        "logger": "owlat.functions",
        "message": "[LOG] shouting hi",
        "requestId": "req-shout-1",
        "function": "probes:shout",
    }.items() <= next(e for e in entries if e.get("function") == "probes:shout").items()
    failure = next(e for e in entries if e["level"] == "ERROR")
    assert failure["requestId"] == request_id and "RuntimeError: boom" in failure["exception"]
    lines = [e for e in entries if e.get("function") == "probes:fail"]
    assert [e["message"] for e in lines] == ["[LOG] about to fail"]
    assert all(e["time"].endswith("Z") for e in entries)
