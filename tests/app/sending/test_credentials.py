"""Provider credentials sealed at rest: they open only with the same key and context."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from owlat.app.lib.email_providers.credentials import (
    ENV_KEY,
    KEY_FILE,
    CredentialsError,
    load_key,
    open_sealed,
    seal,
)

SECRETS = {"username": "mailer", "password": "p@ss w0rd"}


def test_sealed_credentials_open_with_the_same_key_and_context(tmp_path: Path) -> None:
    key = load_key(tmp_path, "")
    sealed = seal(key, SECRETS, "org_1/smtp")
    assert sealed.startswith("v1.")
    assert "mailer" not in sealed and "w0rd" not in sealed
    assert open_sealed(key, sealed, "org_1/smtp") == SECRETS
    assert seal(key, SECRETS, "org_1/smtp") != sealed  # a fresh nonce each time


@pytest.mark.parametrize("change", ["key", "context", "bytes", "format"])
def test_anything_else_does_not_open(tmp_path: Path, change: str) -> None:
    key = load_key(tmp_path, "")
    sealed = seal(key, SECRETS, "org_1/smtp")
    other_key = load_key(tmp_path, "x" * 32)
    altered = sealed[:-3] + ("AAA" if sealed[-3:] != "AAA" else "BBB")
    arguments = {
        "key": (other_key, sealed, "org_1/smtp"),
        "context": (key, sealed, "org_2/smtp"),
        "bytes": (key, altered, "org_1/smtp"),
        "format": (key, "plain text", "org_1/smtp"),
    }[change]
    with pytest.raises(CredentialsError):
        open_sealed(*arguments)


def test_the_key_file_is_created_once_and_owner_only(tmp_path: Path) -> None:
    first = load_key(tmp_path, "")
    assert load_key(tmp_path, "") == first
    mode = stat.S_IMODE(os.stat(tmp_path / KEY_FILE).st_mode)
    assert mode == 0o600


def test_the_environment_key_wins_and_must_be_long(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_KEY, "k" * 40)
    assert load_key(tmp_path) == load_key(tmp_path / "elsewhere")
    assert not (tmp_path / KEY_FILE).exists()
    monkeypatch.setenv(ENV_KEY, "short")
    with pytest.raises(CredentialsError, match="at least 32 characters"):
        load_key(tmp_path)


def test_an_empty_key_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / KEY_FILE).write_text("\n")
    with pytest.raises(CredentialsError, match="no usable key"):
        load_key(tmp_path, "")
