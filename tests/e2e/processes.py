"""`owlat` commands as real processes, for end-to-end tests."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OWLAT_APP": "tests.fixtures.app"}
_BANNER = re.compile(r"Owlat is serving (http://127\.0\.0\.1:\d+) \((\w+);")
_SITE = re.compile(r"HTTP actions on (http://127\.0\.0\.1:\d+)\)")


async def owlat(*args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "owlat.cli",
        *args,
        env=ENV,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def finished(*args: str) -> tuple[int, str, str]:
    process = await owlat(*args)
    stdout, stderr = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


async def started(command: str, data_dir: Path) -> tuple[asyncio.subprocess.Process, str]:
    """Start `owlat <command>` on free ports; the process and its URL from the banner."""
    process, url, _ = await started_with_site(command, data_dir)
    return process, url


async def started_with_site(
    command: str, data_dir: Path
) -> tuple[asyncio.subprocess.Process, str, str]:
    """Start `owlat <command>` on free ports; the process, its client URL and its site URL."""
    process = await owlat(command, "--port", "0", "--site-port", "0", "--data-dir", str(data_dir))
    assert process.stdout is not None
    line = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
    match, site = _BANNER.match(line), _SITE.search(line)
    assert match and site, line + (await process.stderr.read()).decode()  # type: ignore[union-attr]
    assert match.group(2) == ("production" if command == "serve" else "development")
    return process, match.group(1), site.group(1)
