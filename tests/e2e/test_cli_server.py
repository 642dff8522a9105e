"""`owlat dev` / `owlat serve` as real processes: they print the URL, serve the HTTP API,
answer `owlat run --url`, and stop gracefully (status 0) on SIGINT and SIGTERM."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path

import pytest

from tests.e2e.processes import finished, started

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
