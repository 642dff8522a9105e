from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from owlat.runtime.application import Application
from owlat.runtime.testing import open_test_app

FIXTURE_APP = "tests.fixtures.app"


@pytest.fixture
async def app(tmp_path: Path, database_url: str) -> AsyncIterator[Application]:
    async with open_test_app(FIXTURE_APP, tmp_path, database_url=database_url) as application:
        yield application
