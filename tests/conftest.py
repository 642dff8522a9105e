"""Fixtures shared by every test tier."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

from tests.postgres import PostgresForTests
from tests.s3 import MotoServer

# Property tests judge behaviour, not speed: no per-example deadline and no "input
# generation is slow" failure when parallel test workers share a busy machine (a test's own
# @settings still chooses its example count).
settings.register_profile("owlat", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("owlat")

# The slowest tiers first: the test workers take whole modules in collection order
# (`./dev test` passes --no-loadscope-reorder), so a long browser or server module starts
# early instead of last, when the other workers would sit idle waiting for it.
_SLOW_TIERS_FIRST = ("tests/web/", "tests/e2e/")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def tier(item: pytest.Item) -> int:
        for rank, prefix in enumerate(_SLOW_TIERS_FIRST):
            if item.nodeid.startswith(prefix):
                return rank
        return len(_SLOW_TIERS_FIRST)

    items.sort(key=tier)  # stable: each tier keeps its own order


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    """A real AWS-compatible server (moto_server: S3, SES) for the whole run, started on
    first use."""
    with MotoServer.running() as server:
        yield server


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresForTests]:
    """This run's database in the test cluster (tests/postgres.py), created on first use."""
    database = PostgresForTests.required()
    yield database
    database.close()


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """The engine a test runs on, as `OWLAT_DATABASE_URL`: "" (SQLite in the test's data
    folder) or a fresh PostgreSQL schema. Every test that takes it runs on both engines."""
    if request.param == "sqlite":
        yield ""
        return
    postgres: PostgresForTests = request.getfixturevalue("postgres")
    with postgres.schema() as url:
        yield url
