"""Fixtures shared by every test tier."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.s3 import MotoServer


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    """A real S3-compatible server (moto_server) for the whole run, started on first use."""
    with MotoServer.running() as server:
        yield server
