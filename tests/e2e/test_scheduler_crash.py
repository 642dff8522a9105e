"""The scheduler across a crash: a server process is killed with SIGKILL while scheduled
jobs are in flight, then restarted on the same data folder. Scheduled mutations must run
exactly once, scheduled actions at most once."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.processes import ENV, ROOT, finished

pytestmark = pytest.mark.timeout(120)

_BANNER = re.compile(r"Owlat is serving (http://127\.0\.0\.1:\d+)")


class Server:
    """`owlat dev` with its output in a file (a pipe nobody reads would fill and block it)."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.log = data_dir.parent / f"{data_dir.name}.log"
        self.process: asyncio.subprocess.Process | None = None
        self.url = ""

    async def start(self) -> None:
        with self.log.open("ab") as output:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "owlat.cli", "dev", "--port", "0", "--site-port", "0",
                "--data-dir", str(self.data_dir), env=ENV, cwd=ROOT,
                stdout=output, stderr=output,
            )  # fmt: skip
        for _ in range(300):
            match = _BANNER.search(self.log.read_text(errors="replace").split("KILLED")[-1])
            if match:
                self.url = match.group(1)
                return
            await asyncio.sleep(0.05)
        raise AssertionError("server did not start:\n" + self.log.read_text())

    async def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        await self.process.wait()
        with self.log.open("a") as output:
            output.write("\nKILLED\n")

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            await asyncio.wait_for(self.process.wait(), 30)

    async def call(self, kind: str, path: str, args: dict[str, Any]) -> Any:
        async with httpx.AsyncClient(base_url=self.url, timeout=30) as client:
            body = (await client.post(f"/api/{kind}", json={"path": path, "args": args})).json()
        assert body["status"] == "success", body
        return body["value"]


async def local_query(data_dir: Path, path: str) -> Any:
    """Read the data folder of a dead server with `owlat run` (no scheduler runs there)."""
    code, out, err = await finished("run", path, "{}", "--data-dir", str(data_dir))
    assert code == 0, err
    return json.loads(out)


async def wait_until_done(server: Server) -> list[dict[str, Any]]:
    for _ in range(600):
        jobs: list[dict[str, Any]] = await server.call("query", "jobs:jobs", {})
        if all(job["state"]["kind"] not in ("pending", "inProgress") for job in jobs):
            return jobs
        await asyncio.sleep(0.05)
    raise AssertionError("jobs did not finish")


async def test_scheduled_mutations_run_exactly_once_across_sigkill(tmp_path: Path) -> None:
    server = Server(tmp_path / "data")
    await server.start()
    keys = [f"m{i:03}" for i in range(300)]
    try:
        await server.call("mutation", "jobs:scheduleRecords", {"keys": keys, "delay_ms": 0})
        for _ in range(400):
            if len(await server.call("query", "jobs:runs", {})) >= 30:
                break
            await asyncio.sleep(0.005)
        await server.kill()
        done_at_kill = await local_query(server.data_dir, "jobs:runs")
        assert 0 < len(done_at_kill) < len(keys), "the kill must land while jobs are in flight"
        await server.start()
        jobs = await wait_until_done(server)
        runs = await server.call("query", "jobs:runs", {})
    finally:
        await server.stop()
    duplicates = [key for key, seen in Counter(runs).items() if seen > 1]
    assert duplicates == []
    assert sorted(runs) == keys
    assert {job["state"]["kind"] for job in jobs} == {"success"}


async def test_scheduled_actions_run_at_most_once_across_sigkill(tmp_path: Path) -> None:
    server = Server(tmp_path / "data")
    side_effects = tmp_path / "side-effects.log"
    side_effects.touch()
    keys = [f"a{i}" for i in range(4)]
    await server.start()
    try:
        await server.call("action", "jobs:scheduleActions",
                          {"keys": keys, "sleep_ms": 30_000, "log": str(side_effects)})  # fmt: skip
        for _ in range(400):
            if len(side_effects.read_text().splitlines()) == len(keys):
                break
            await asyncio.sleep(0.01)
        await server.kill()
        await server.start()
        jobs = await wait_until_done(server)
        await asyncio.sleep(0.3)
        runs = await server.call("query", "jobs:runs", {})
    finally:
        await server.stop()
    started = Counter(line.split()[1] for line in side_effects.read_text().splitlines())
    assert started == Counter(keys), "every action started once and was never re-run"
    assert runs == []
    assert {(job["state"]["kind"], job["state"].get("error")) for job in jobs} == {
        ("failed", "Transient error while executing action")
    }
