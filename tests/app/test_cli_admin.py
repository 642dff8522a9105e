"""`owlat admin create`: the first user of a fresh install, a verified platform admin."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from owlat.app.lib.passwords import verify_password
from owlat.cli import main


@pytest.fixture
def database(database_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """The CLI runs on SQLite and on PostgreSQL (OWLAT_DATABASE_URL, as in production)."""
    monkeypatch.setenv("OWLAT_DATABASE_URL", database_url)
    return database_url


def _users(data_dir: Path, database_url: str) -> list[dict]:  # type: ignore[type-arg]
    from owlat.runtime.testing import open_test_app

    async def read() -> list[dict]:  # type: ignore[type-arg]
        async with open_test_app(
            "owlat.app", data_dir, scheduler_parallelism=None, database_url=database_url
        ) as app:
            result = await app.run_query(
                "auth:findCredential", {"email": "root@example.com"}, internal=True
            )
            return [] if result.value is None else [result.value]

    return asyncio.run(read())


def test_create_with_password_option(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], database: str
) -> None:
    args = ["admin", "create", "--data-dir", str(tmp_path), "--app", "owlat.app"]
    assert (
        main(
            [*args, "--email", "Root@Example.com", "--name", "Root", "--password", "root-password"]
        )
        == 0
    )
    assert "Platform admin root@example.com" in capsys.readouterr().out
    (credential,) = _users(tmp_path, database)
    assert (
        credential["user"]["isPlatformAdmin"] is True
        and credential["user"]["emailVerified"] is True
    )
    assert asyncio.run(verify_password(credential["passwordHash"], "root-password"))
    # again: the existing user stays one user and gets the new password
    assert (
        main(
            [*args, "--email", "root@example.com", "--name", "Root", "--password", "other-password"]
        )
        == 0
    )
    (credential,) = _users(tmp_path, database)
    assert asyncio.run(verify_password(credential["passwordHash"], "other-password"))
    assert (tmp_path / "auth_signing_key.pem").exists() and (tmp_path / "auth_secret").exists()


def test_refusals(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    database: str,
) -> None:
    args = ["admin", "create", "--data-dir", str(tmp_path), "--app", "owlat.app", "--name", "Root"]
    assert main([*args, "--email", "root@example.com", "--password", "short"]) == 2
    assert "Password too short" in capsys.readouterr().err
    assert main([*args, "--email", "not-an-email", "--password", "long-enough-1"]) == 1
    assert "Invalid email" in capsys.readouterr().err
    answers = iter(["first-password", "second-password"])
    monkeypatch.setattr("getpass.getpass", lambda prompt: next(answers))
    assert main([*args, "--email", "root@example.com"]) == 2
    assert "the passwords differ" in capsys.readouterr().err
    assert _users(tmp_path, database) == []
    monkeypatch.setattr("getpass.getpass", lambda prompt: "typed-password")
    assert main([*args, "--email", "root@example.com"]) == 0
