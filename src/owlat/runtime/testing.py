"""An in-process runtime for tests of app packages.

async with open_test_app("tests.fixtures.app", tmp_path) as app:
    contact_id = (await app.run_mutation("contacts:create", {...})).value

`database_url` selects the engine as `OWLAT_DATABASE_URL` does (empty: SQLite in the data
folder); the runtime's own tests run on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from owlat.runtime.app_package import load_app_package
from owlat.runtime.application import Application
from owlat.runtime.database.engines import create_engine
from owlat.runtime.storage.file_storage import open_file_storage

# Where the file URLs of a test app point (no server listens there unless a test starts one).
TEST_PUBLIC_URL = "http://127.0.0.1:3210"


@asynccontextmanager
async def open_test_app(
    app: str, data_dir: Path, *, scheduler_parallelism: int | None = 8, database_url: str = ""
) -> AsyncIterator[Application]:
    """A started `Application` of app package `app` on `database_url`, or on SQLite in
    `data_dir` (running its scheduled functions and crons unless `scheduler_parallelism` is
    None), with files in `data_dir/storage`, closed after."""
    application = Application(
        load_app_package(app),
        create_engine(data_dir, database_url),
        scheduler_parallelism=scheduler_parallelism,
        storage=open_file_storage(data_dir, public_url=TEST_PUBLIC_URL),
    )
    await application.start()
    try:
        yield application
    finally:
        await application.close()
