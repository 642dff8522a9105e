"""PostgreSQL for the tests: one database per run, one schema per test.

`scripts/pg-test-cluster` (run by `./dev test` and CI) starts a throwaway cluster and sets
`OWLAT_TEST_POSTGRES_URL`. A test on PostgreSQL gets a fresh schema of one run database
(`CREATE SCHEMA` is a catalog insert, far cheaper than `CREATE DATABASE ... TEMPLATE`, and
leaves nothing to copy); the engine URL selects it through `search_path`, where the engine
creates its tables. The schema is dropped when the test ends. Without the variable the
PostgreSQL tests skip, except under CI=true, where they fail: CI must test both engines.
"""

from __future__ import annotations

import itertools
import os
import secrets
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest

URL_VARIABLE = "OWLAT_TEST_POSTGRES_URL"


def _with_database(url: str, database: str, schema: str | None = None) -> str:
    parts = urllib.parse.urlsplit(url)
    query = urllib.parse.parse_qsl(parts.query)
    if schema is not None:
        query.append(("options", f"-csearch_path={schema}"))
    return urllib.parse.urlunsplit(
        parts._replace(path=f"/{database}", query=urllib.parse.urlencode(query))
    )


class PostgresForTests:
    """A database of the test cluster for this run, handing out one schema per test."""

    def __init__(self, server_url: str) -> None:
        self.database = f"owlat_tests_{secrets.token_hex(4)}"
        self._server_url = server_url
        self._schemas = itertools.count()
        with psycopg.connect(server_url, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{self.database}"')
        self.url = _with_database(server_url, self.database)
        self._admin = psycopg.connect(self.url, autocommit=True)

    @classmethod
    def required(cls) -> PostgresForTests:
        url = os.environ.get(URL_VARIABLE, "")
        if not url:
            message = f"{URL_VARIABLE} is not set (run the tests with ./dev test)"
            if os.environ.get("CI", "").lower() == "true":
                pytest.fail(f"PostgreSQL tests cannot run in CI: {message}")
            pytest.skip(f"PostgreSQL tests skipped: {message}")
        return cls(url)

    @contextmanager
    def schema(self) -> Iterator[str]:
        """A new, empty schema for the block; yields the engine URL that uses it."""
        name = f"t{next(self._schemas)}"
        self._admin.execute(f"CREATE SCHEMA {name}")
        try:
            yield _with_database(self.url, self.database, name)
        finally:
            self._admin.execute(f"DROP SCHEMA {name} CASCADE")

    def close(self) -> None:
        self._admin.close()
        with psycopg.connect(self._server_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
