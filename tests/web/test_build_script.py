"""scripts/build-web without Node.js: it says which versions it needs and how to install
them, and exits 3 (./dev start then starts Owlat without the dashboard)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from tests.web.conftest import ROOT


def test_without_node_it_says_how_to_install_it(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"  # the tools the script uses, and no node or npm
    bin_dir.mkdir()
    for tool in ("bash", "env", "cat", "cut", "find", "sort", "xargs", "sha256sum", "dirname"):
        found = shutil.which(tool)
        assert found, tool
        (bin_dir / tool).symlink_to(found)
    done = subprocess.run(
        [str(bin_dir / "bash"), str(ROOT / "scripts" / "build-web")],
        env={**os.environ, "PATH": str(bin_dir)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 3, done.stderr
    assert "needs Node.js 20.19 or newer, with npm" in done.stderr
    assert "node: missing, npm: missing" in done.stderr
    assert "https://nodejs.org/en/download" in done.stderr
    assert "pip install owlat" in done.stderr
