"""Restart persistence, timestamps across restarts, schema evolution of indexes."""

from __future__ import annotations

import dataclasses
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from owlat.runtime.database._sql import Statements, load_statements, parse_statements
from owlat.runtime.database.sqlite import SqliteEngine
from owlat.runtime.system_tables import SYSTEM_TABLES
from owlat.runtime.testing import in_query, open_test_app

APP = "tests.fixtures.app"
SQL_FOLDER = Path(__file__).parents[2] / "src" / "owlat" / "runtime" / "database" / "sql"


async def test_documents_and_timestamps_survive_a_restart(
    tmp_path: Path, database_url: str
) -> None:
    async with open_test_app(APP, tmp_path, database_url=database_url) as app:
        first = await app.run_mutation("messages:send", {"channel": "p", "body": "kept"})
        number = app.catalog.table("messages").number
    async with open_test_app(APP, tmp_path, database_url=database_url) as app:
        assert app.latest_ts == first.ts
        listed = await app.run_query("messages:list", {"channel": "p"})
        assert [m["body"] for m in listed.value] == ["kept"]
        assert listed.ts == first.ts
        second = await app.run_mutation("messages:send", {"channel": "p", "body": "new"})
        assert second.ts is not None and first.ts is not None and second.ts > first.ts
        assert app.catalog.table("messages").number == number


async def test_every_system_table_is_stored_under_its_own_number(
    tmp_path: Path, database_url: str
) -> None:
    assert len({table.name for table in SYSTEM_TABLES}) == len(SYSTEM_TABLES)
    assert len({table.number for table in SYSTEM_TABLES}) == len(SYSTEM_TABLES)
    async with open_test_app(APP, tmp_path, database_url=database_url) as app:
        for table in SYSTEM_TABLES:
            stored = app.catalog.table(table.name)
            assert (stored.number, stored.definition) == (table.number, table.definition)


def write_app(root: Path, name: str, indexes: str) -> str:
    package = root / name
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "schema.py").write_text(
        textwrap.dedent(f"""
        from owlat.runtime import define_schema, define_table, v
        schema = define_schema({{
            "notes": define_table({{"title": v.string(), "rank": v.number()}}){indexes},
        }})
    """)
    )
    (package / "notes.py").write_text(
        textwrap.dedent("""
        from owlat.runtime import mutation, v

        @mutation(args={"title": v.string(), "rank": v.number()})
        async def add(ctx, args):
            return await ctx.db.insert("notes", args)
    """)
    )
    return name


@pytest.fixture
def app_root(tmp_path: Path) -> Any:
    root = tmp_path / "apps"
    root.mkdir()
    sys.path.insert(0, str(root))
    yield root
    sys.path.remove(str(root))
    for module in [m for m in sys.modules if m.startswith("evolving_")]:
        del sys.modules[module]


async def test_adding_an_index_backfills_existing_documents(
    tmp_path: Path, app_root: Path, database_url: str
) -> None:
    data = tmp_path / "data"
    before = write_app(app_root, "evolving_v1", "")
    after = write_app(app_root, "evolving_v2", '.index("by_rank", ["rank"])')
    async with open_test_app(before, data, database_url=database_url) as app:
        for title, rank in (("b", 2), ("a", 1), ("c", 3)):
            await app.run_mutation("notes:add", {"title": title, "rank": rank})
    async with open_test_app(after, data, database_url=database_url) as app:

        async def ranked(ctx: Any) -> Any:
            return [
                n["title"]
                for n in await ctx.db.query("notes")
                .with_index("by_rank", lambda q: q.gte("rank", 2))
                .collect()
            ]

        assert await in_query(app, ranked) == ["b", "c"]
        await app.run_mutation("notes:add", {"title": "d", "rank": 2.5})
        assert await in_query(app, ranked) == ["b", "d", "c"]
    async with open_test_app(before, data, database_url=database_url) as app:

        async def all_titles(ctx: Any) -> Any:
            return [n["title"] for n in await ctx.db.query("notes").collect()]

        assert await in_query(app, all_titles) == ["b", "a", "c", "d"]
        indexes = await _stored_indexes(app)
        assert ("notes", "by_rank") not in indexes


async def _stored_indexes(app: Any) -> set[tuple[str, str]]:
    async with app.engine.read() as reader:
        return {(index.table, index.name) for index in await reader.list_indexes()}


@pytest.mark.parametrize("engine", ["sqlite", "postgres"])
def test_statement_files_define_exactly_the_statements(engine: str) -> None:
    statements = load_statements(engine)
    assert isinstance(statements, Statements)
    assert "owlat_index_entries" in statements.scan_asc


def test_both_engines_define_the_same_statement_names() -> None:
    def names(engine: str) -> list[str]:
        text = (SQL_FOLDER / f"{engine}.sql").read_text()
        return sorted(parse_statements(text))

    assert names("sqlite") == names("postgres")
    assert set(names("sqlite")) == {field.name for field in dataclasses.fields(Statements)}
    with pytest.raises(ValueError, match="defined twice"):
        parse_statements("-- name: a\nSELECT 1;\n-- name: a\nSELECT 2;")


def test_sqlite_engine_rejects_unknown_synchronous_mode(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="NORMAL, FULL"):
        SqliteEngine(tmp_path / "x.db", synchronous="SOMETIMES")
