"""`owlat` itself: every command's help shows examples and exit statuses, bad usage exits
with status 2, shell completion works, `python -m owlat.cli` is `owlat`."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer

from owlat.cli import ExitCode, app, main

ROOT = Path(__file__).resolve().parents[2]


def _command_paths(command: object, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Every command's path, from a command (typer's own copy of click's classes)."""
    yield path
    if isinstance(command, typer.core.TyperGroup):
        for name, sub in command.commands.items():
            yield from _command_paths(sub, (*path, name))


COMMANDS = list(_command_paths(typer.main.get_command(app)))


def test_every_command_is_listed() -> None:
    assert set(COMMANDS) >= {
        (),
        ("dev",),
        ("serve",),
        ("run",),
        ("admin-key",),
        ("admin",),
        ("admin", "create"),
        ("contacts",),
        ("contacts", "import"),
        ("contacts", "export"),
    }


@pytest.mark.parametrize("path", COMMANDS, ids=lambda path: " ".join(path) or "owlat")
def test_help_shows_examples_and_exit_statuses(
    path: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*path, "--help"]) == ExitCode.OK
    text = capsys.readouterr().out
    assert "Examples" in text and "Exit status" in text, text
    assert " ".join(("owlat", *path)) in text.split("Examples", 1)[1]  # an example of it
    assert "0 " in text.split("Exit status", 1)[1]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "Usage: owlat"),
        (["nope"], "No such command 'nope'"),
        (["run"], "Missing argument 'path'"),
        (["dev", "--port", "http"], "Invalid value for '--port'"),
        (["contacts", "import", "a.csv"], "Missing option '--org'"),
        (
            ["contacts", "import", "a.csv", "--org", "acme", "--on-duplicate", "merge"],
            "Invalid value for '--on-duplicate'",
        ),
        (["admin", "create", "--email", "a@example.com"], "Missing option '--name'"),
    ],
)
def test_bad_usage_exits_with_status_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == ExitCode.USAGE
    captured = capsys.readouterr()
    assert message in captured.out + captured.err


def _owlat(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "owlat.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
        timeout=60,
        cwd=ROOT,
        check=False,
    )


def test_shell_completion() -> None:
    script = _owlat("--show-completion", "bash")
    assert script.returncode == 0, script.stderr
    assert "_OWLAT_COMPLETE=complete_bash" in script.stdout
    completed = _owlat(
        env={
            "_OWLAT_COMPLETE": "complete_bash",
            "COMP_WORDS": "owlat contacts import people.csv --on-duplicate ",
            "COMP_CWORD": "5",
        }
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.split() == ["skip", "update"]
    commands = _owlat(
        env={"_OWLAT_COMPLETE": "complete_bash", "COMP_WORDS": "owlat con", "COMP_CWORD": "1"}
    )
    assert commands.stdout.split() == ["contacts"]
