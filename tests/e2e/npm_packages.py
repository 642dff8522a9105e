"""The npm packages the end-to-end tests run (the official `convex` and `better-auth`
clients), installed once per folder even when several test processes (pytest-xdist
workers) ask for them at the same moment."""

from __future__ import annotations

import fcntl
import shutil
import subprocess
from pathlib import Path

import pytest


def installed(directory: Path, package: str) -> Path:
    """`directory` with its locked npm packages: `npm ci` on first use (`package` missing
    from its node_modules), under a lock file; the test is skipped without Node.js."""
    if shutil.which("node") is None or (npm := shutil.which("npm")) is None:
        pytest.skip("Node.js (node and npm) is not installed: the npm client tests need it")
    with open(directory / ".npm-ci.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if not (directory / "node_modules" / package / "package.json").exists():
            subprocess.run(
                [npm, "ci", "--no-audit", "--no-fund"],
                cwd=directory,
                check=True,
                capture_output=True,
                timeout=300,
            )
    return directory
