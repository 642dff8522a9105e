"""`owlat dev` / `owlat serve` as real processes: they print the URL, serve the HTTP API,
answer `owlat run --url`, stop gracefully (status 0) on SIGINT and SIGTERM, and guard their
connections (slow clients, the per-address cap, forwarded headers)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.processes import finished, started, started_with_site

pytestmark = pytest.mark.timeout(60)


async def stopped(process: asyncio.subprocess.Process, signum: int) -> str:
    process.send_signal(signum)
    _, stderr = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, stderr.decode()
    return stderr.decode()


async def test_serve_dev_run_url_and_admin_key(tmp_path: Path) -> None:
    serve_dir, dev_dir = tmp_path / "serve", tmp_path / "dev"
    (serve, serve_url), (dev, dev_url) = await asyncio.gather(
        started("serve", serve_dir), started("dev", dev_dir)
    )
    serve_data, dev_data = ("--data-dir", str(serve_dir)), ("--data-dir", str(dev_dir))
    try:
        key, sent, secret, shout, refused, wrong_key, fail = await asyncio.gather(
            finished("admin-key", *serve_data),
            finished("run", "messages:send", '{"channel": "cli", "body": "over http"}',
                     "--url", serve_url, *serve_data),
            finished("run", "probes:secret", "--url", serve_url + "/", *serve_data),
            finished("run", "probes:shout", '{"text": "x"}', "--url", dev_url, *dev_data),
            finished("run", "messages:send", '{"channel": "c", "body": ""}',
                     "--url", serve_url, *serve_data),
            finished("run", "probes:secret", "--url", serve_url, "--admin-key", "owlat-admin|x"),
            finished("run", "probes:fail", '{"message": "boom"}', "--url", dev_url, *dev_data),
        )  # fmt: skip
        assert key[0] == 0 and key[1].strip() == (serve_dir / "admin_key").read_text().strip()
        assert (serve_dir / "admin_key").stat().st_mode & 0o777 == 0o600
        assert sent[0] == 0 and isinstance(json.loads(sent[1]), str), sent[2]
        assert (secret[0], json.loads(secret[1])) == (0, "for admins"), secret[2]
        assert (shout[0], json.loads(shout[1]), shout[2]) == (0, "X", "[LOG] shouting x\n")
        assert refused[0] == 1 and "Uncaught ConvexError:" in refused[2]
        assert '"code":"EMPTY_BODY"' in refused[2]
        assert wrong_key[0] == 1
        assert "401 Unauthenticated: The admin key is not valid" in wrong_key[2]
        assert fail[0] == 1 and "Uncaught Error: boom" in fail[2]
    finally:
        serve_log = await stopped(serve, signal.SIGTERM)
        dev_log = await stopped(dev, signal.SIGINT)
    assert "Traceback" not in serve_log
    assert "probes:fail failed" in dev_log and "RuntimeError: boom" in dev_log  # for the developer
    code, out, _ = await finished(
        "run", "messages:list", '{"channel": "cli"}', "--data-dir", str(serve_dir)
    )
    assert code == 0 and [m["body"] for m in json.loads(out)] == ["over http"]


# -- connections: slow clients, the per-address cap, forwarded headers ------------------------


async def _connection(url: str, local: str = "127.0.0.1") -> tuple[asyncio.StreamReader, Any]:
    host, port = url.removeprefix("http://").split(":")
    return await asyncio.open_connection(host, int(port), local_addr=(local, 0))


async def _until_closed(reader: asyncio.StreamReader) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection, and how long that took.
    A reset counts as a close: a server that closes with a client's bytes unread (a body
    still trickling in) resets the connection instead of ending it."""
    began = time.monotonic()
    data = b""
    async with asyncio.timeout(10):
        with contextlib.suppress(ConnectionResetError):
            while chunk := await reader.read(65536):
                data += chunk
    return data, time.monotonic() - began


async def _trickle(reader: asyncio.StreamReader, writer: Any, head: bytes, piece: bytes) -> None:
    """Send `head`, then `piece` every 0.25 s until the server closes the connection."""
    writer.write(head)
    with contextlib.suppress(ConnectionError):
        while not reader.at_eof():
            await asyncio.sleep(0.25)
            writer.write(piece)
            await writer.drain()


async def _client_address(site: str, local: str, forwarded: str) -> str:
    transport = httpx.AsyncHTTPTransport(local_address=local)
    async with httpx.AsyncClient(transport=transport) as http:
        answer = await http.get(site + "/client", headers={"x-forwarded-for": forwarded})
    assert answer.status_code == 200, answer.text
    return str(answer.json())


async def test_serve_times_out_slow_clients_and_caps_connections(tmp_path: Path) -> None:
    """A request's headers and body must arrive in time (1 s here); an address holds at most
    3 connections here; X-Forwarded-For counts only from OWLAT_TRUSTED_PROXIES (none by
    default, loopback included)."""
    quick = {
        "OWLAT_HTTP_HEADER_TIMEOUT": "1",
        "OWLAT_HTTP_BODY_TIMEOUT": "1",
        "OWLAT_TRUSTED_PROXIES": "127.0.0.2",
    }
    (fast, _, fast_site), (capped, _, capped_site) = await asyncio.gather(
        started_with_site("serve", tmp_path / "fast", quick),
        started_with_site("serve", tmp_path / "capped", {"OWLAT_MAX_CONNECTIONS_PER_ADDRESS": "3"}),
    )
    writers: list[Any] = []

    async def connection(url: str) -> tuple[asyncio.StreamReader, Any]:
        reader, writer = await _connection(url)
        writers.append(writer)
        return reader, writer

    try:
        # nothing sent, headers a line at a time, a body a byte at a time: all cut after ~1 s
        idle, _ = await connection(fast_site)
        slow_head, head_writer = await connection(fast_site)
        slow_body, body_writer = await connection(fast_site)
        request = b"POST /messages HTTP/1.1\r\nhost: x\r\ncontent-length: 1000\r\n\r\n"
        tasks = [
            asyncio.create_task(
                _trickle(slow_head, head_writer, b"GET /client HTTP/1.1\r\n", b"x-a: b\r\n")
            ),
            asyncio.create_task(_trickle(slow_body, body_writer, request, b"{")),
        ]
        (nothing, idle_for), (refusal, head_for), (cut, body_for) = await asyncio.gather(
            _until_closed(idle), _until_closed(slow_head), _until_closed(slow_body)
        )
        await asyncio.gather(*tasks)
        assert nothing == b"" and 0.8 < idle_for < 4, idle_for
        assert refusal.startswith(b"HTTP/1.1 408 ") and 0.8 < head_for < 4, (refusal, head_for)
        assert cut == b"" and 0.8 < body_for < 4, body_for
        # forwarded headers: believed from the listed proxy only
        assert await _client_address(fast_site, "127.0.0.1", "203.0.113.7") == "127.0.0.1"
        assert await _client_address(fast_site, "127.0.0.2", "203.0.113.7") == "203.0.113.7"
        assert await _client_address(capped_site, "127.0.0.1", "203.0.113.7") == "127.0.0.1"

        # three connections from 127.0.0.1 are its share; a fourth is refused, 127.0.0.2 is not
        held = [await connection(capped_site) for _ in range(3)]
        answer, _ = await _until_closed((await connection(capped_site))[0])
        assert answer.startswith(b"HTTP/1.1 503 ") and b"Too many connections" in answer
        assert await _client_address(capped_site, "127.0.0.2", "") == "127.0.0.2"
        held[0][1].close()
        await asyncio.sleep(0.2)  # the server sees the close
        assert await _client_address(capped_site, "127.0.0.1", "") == "127.0.0.1"
    finally:
        for writer in writers:
            writer.close()
        fast_log, capped_log = await asyncio.gather(
            stopped(fast, signal.SIGTERM), stopped(capped, signal.SIGTERM)
        )
    assert "Traceback" not in fast_log, fast_log
    assert "Refusing connections from 127.0.0.1" in capped_log
