"""Debian's Chromium for the browser tests (driven by Playwright; never `playwright install`):
where it is, the flags it needs here, and the skip-or-fail rule when something is missing."""

from __future__ import annotations

import os
from pathlib import Path
from typing import NoReturn

import pytest

CHROMIUM = Path("/usr/bin/chromium")
# Headless as root, and no background connections (refused by this machine's closed network).
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def unavailable(message: str) -> NoReturn:
    """Skip the test, or fail it under CI=true (CI installs what browser tests need)."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message}; CI installs it (.ci/run)")
    pytest.skip(message)
