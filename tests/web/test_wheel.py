"""The wheel ships the built dashboard: installed in a new virtual environment, away from the
source tree (nothing of it on the path), `owlat dev` serves it at / of the site port; it
never runs Node.js."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import httpx
import pytest

from tests.web.conftest import BUILD, ROOT

pytestmark = pytest.mark.timeout(300)
UV = Path(sys.executable).parent / "uv"


@pytest.fixture
def installed(built_web: Path, tmp_path: Path) -> dict[str, str]:
    """The wheel built from this tree, checked to hold the dashboard's build and installed in
    a new virtual environment; the environment variables that use it."""
    subprocess.run(
        [str(UV), "build", "--wheel", "--out-dir", str(tmp_path / "dist"), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=240,
    )
    (wheel,) = (tmp_path / "dist").glob("owlat-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    built = {f"owlat/web/{p.relative_to(BUILD)}" for p in BUILD.rglob("*") if p.is_file()}
    assert {name for name in built if "/." not in name} <= names
    assert "owlat/web/index.html" in names

    venv = tmp_path / "venv"
    subprocess.run([str(UV), "venv", "--quiet", str(venv)], check=True, timeout=60)
    env = {**os.environ, "VIRTUAL_ENV": str(venv)}
    env.pop("PYTHONPATH", None)
    subprocess.run(
        [str(UV), "pip", "install", "--quiet", str(wheel)], check=True, env=env, timeout=240
    )
    return env


async def test_the_wheel_serves_the_dashboard(installed: dict[str, str], tmp_path: Path) -> None:
    owlat = Path(installed["VIRTUAL_ENV"]) / "bin" / "owlat"
    process = await asyncio.create_subprocess_exec(
        str(owlat), "dev", "--port", "0", "--site-port", "0",
        "--data-dir", str(tmp_path / "data"),
        cwd=tmp_path, env=installed, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        await asyncio.wait_for(process.stdout.readline(), 60)
        line = (await asyncio.wait_for(process.stdout.readline(), 10)).decode()
        match = re.fullmatch(r"Dashboard: (http://127\.0\.0\.1:\d+)/\n", line)
        assert match, line
        async with httpx.AsyncClient(base_url=match.group(1)) as http:
            page = await http.get("/contacts")
            assert page.status_code == 200
            script = re.search(r'src="(/assets/index-[^"]+\.js)"', page.text)
            assert script, page.text
            assert (await http.get(script.group(1))).status_code == 200
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), 30)
