"""Choosing a storage engine from settings: SQLite in the data folder unless a database URL
names PostgreSQL (`postgresql://` or `postgres://`)."""

from __future__ import annotations

from pathlib import Path

from owlat.runtime.database.engine import Engine
from owlat.runtime.database.sqlite import MMAP_BYTES, SqliteEngine
from owlat.runtime.errors import OperatorError

SQLITE_FILE = "owlat.sqlite3"
DEFAULT_POOL_SIZE = 16  # PostgreSQL connections per process (OWLAT_DATABASE_POOL_SIZE)
POSTGRES_SCHEMES = ("postgresql", "postgres")


def create_engine(
    data_dir: Path,
    database_url: str = "",
    *,
    sqlite_synchronous: str = "NORMAL",
    pool_size: int = DEFAULT_POOL_SIZE,
    memory_map: bool = True,
) -> Engine:
    """The engine for `database_url`, or embedded SQLite under `data_dir` when it is empty.
    `pool_size`: connections of the PostgreSQL engine (SQLite has one writer).
    `memory_map`: SQLite maps the file into memory (off: a one-off long read)."""
    if database_url:
        scheme = database_url.split(":", 1)[0].lower()
        if scheme not in POSTGRES_SCHEMES:
            raise OperatorError(
                f"Unsupported database URL scheme {scheme!r}: use postgresql://... for "
                "PostgreSQL, or leave OWLAT_DATABASE_URL empty for the embedded SQLite engine"
            )
        from owlat.runtime.database.postgres import PostgresEngine  # psycopg only when used

        return PostgresEngine(database_url, pool_size=pool_size)
    return SqliteEngine(
        Path(data_dir) / SQLITE_FILE,
        synchronous=sqlite_synchronous,
        mmap_bytes=MMAP_BYTES if memory_map else 0,
    )
