from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from owlat.runtime.application import Application
from owlat.runtime.database.sqlite import SqliteEngine
from owlat.runtime.testing import open_test_app
from tests.postgres import PostgresForTests

FIXTURE_APP = "tests.fixtures.app"


@pytest.fixture
async def app(tmp_path: Path, database_url: str) -> AsyncIterator[Application]:
    async with open_test_app(FIXTURE_APP, tmp_path, database_url=database_url) as application:
        yield application


@pytest.fixture
def target_url(request: pytest.FixtureRequest, database_url: str) -> Iterator[str]:
    """A second, empty database of the same engine as `database_url`."""
    if not database_url:
        yield ""
        return
    postgres: PostgresForTests = request.getfixturevalue("postgres")
    with postgres.schema() as url:
        yield url


@pytest.fixture
async def sqlite_engine(tmp_path: Path) -> AsyncIterator[SqliteEngine]:
    """A SQLite engine, open, on a new file."""
    engine = SqliteEngine(tmp_path / "owlat.sqlite3")
    await engine.open()
    try:
        yield engine
    finally:
        await engine.close()
