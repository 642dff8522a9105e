"""`owlat` commands as real processes, for end-to-end tests."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]
# the checkout's own `src` first: the virtualenv's editable install may point at another
ENV = {
    **os.environ,
    "PYTHONPATH": os.pathsep.join((str(ROOT / "src"), str(ROOT))),
    "OWLAT_APP": "tests.fixtures.app",
}
_BANNER = re.compile(r"Owlat is serving (http://127\.0\.0\.1:\d+) \((\w+);")
_SITE = re.compile(r"HTTP actions on (http://127\.0\.0\.1:\d+)\)")
# for `owlat dev` to print its banner, and for a finished command (its Python start alone
# took over 15 s at load 12-14 on two cores)
START_SECONDS = 60


async def owlat(*args: str, env: dict[str, str] | None = None) -> asyncio.subprocess.Process:
    """`owlat <args>` with the fixture app (`env`: extra environment variables)."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "owlat.cli",
        *args,
        env={**ENV, **(env or {})},
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def finished(*args: str) -> tuple[int, str, str]:
    process = await owlat(*args)
    stdout, stderr = await asyncio.wait_for(process.communicate(), START_SECONDS)
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


async def started(command: str, data_dir: Path) -> tuple[asyncio.subprocess.Process, str]:
    """Start `owlat <command>` on free ports; the process and its URL from the banner."""
    process, url, _ = await started_with_site(command, data_dir)
    return process, url


async def started_with_site(
    command: str, data_dir: Path, env: dict[str, str] | None = None
) -> tuple[asyncio.subprocess.Process, str, str]:
    """Start `owlat <command>` on free ports; the process, its client URL and its site URL."""
    process = await owlat(
        command, "--port", "0", "--site-port", "0", "--data-dir", str(data_dir), env=env
    )
    assert process.stdout is not None
    line = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
    match, site = _BANNER.match(line), _SITE.search(line)
    assert match and site, line + (await process.stderr.read()).decode()  # type: ignore[union-attr]
    assert match.group(2) == ("production" if command == "serve" else "development")
    return process, match.group(1), site.group(1)


_SERVING = re.compile(r"Owlat is serving (http://127\.0\.0\.1:\d+)")


class LoggedServer:
    """`owlat dev` (or `command`) with its output in a file (a pipe nobody reads would fill
    and block it); `env`: extra environment variables."""

    def __init__(
        self,
        data_dir: Path,
        name: str = "server",
        env: dict[str, str] | None = None,
        command: str = "dev",
    ) -> None:
        self.command = command
        self.data_dir = data_dir
        self.log = data_dir.parent / f"{data_dir.name}-{name}.log"
        self.env = {**ENV, **(env or {})}
        self.process: asyncio.subprocess.Process | None = None
        self.url = ""
        self.site_url = ""  # the site port (HTTP actions)

    async def start(self, port: int = 0) -> None:
        """Start it on the client port `port` (0: a free one) and a free site port."""
        with self.log.open("ab") as output:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "owlat.cli", self.command, "--port", str(port),
                "--site-port", "0",
                "--data-dir", str(self.data_dir), env=self.env, cwd=ROOT,
                stdout=output, stderr=output,
            )  # fmt: skip
        # a deadline, not a count of polls: on a loaded machine (load 12, two cores) the
        # start alone took over 15 s; a process that exits stops the wait at once
        loop = asyncio.get_running_loop()
        deadline = loop.time() + START_SECONDS
        while self.process.returncode is None and loop.time() < deadline:
            output = self.log.read_text(errors="replace").split("KILLED")[-1]
            match, site = _SERVING.search(output), _SITE.search(output)
            if match and site:
                self.url, self.site_url = match.group(1), site.group(1)
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
