"""An in-process runtime for tests of app packages.

async with open_test_app("tests.fixtures.app", tmp_path) as app:
    contact_id = (await app.run_mutation("contacts:create", {...})).value
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from owlat.runtime.app_package import load_app_package
from owlat.runtime.application import Application
from owlat.runtime.engines import create_engine


@asynccontextmanager
async def open_test_app(app: str, data_dir: Path) -> AsyncIterator[Application]:
    """A started `Application` of app package `app` on SQLite in `data_dir`, closed after."""
    application = Application(load_app_package(app), create_engine(data_dir))
    await application.start()
    try:
        yield application
    finally:
        await application.close()
