"""Upload tokens: signed, valid for an hour, reusable until then; the key file."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from owlat.runtime.errors import OperatorError
from owlat.runtime.storage.upload_tokens import (
    KEY_FILE,
    UploadTokenError,
    UploadTokens,
    load_or_create_signing_key,
)

KEY = b"k" * 32


def test_a_token_is_valid_for_an_hour_and_reusable() -> None:
    tokens = UploadTokens(KEY)
    now = time.time()
    token = tokens.issue(now)
    tokens.check(token, now)
    tokens.check(token, now + 3599)  # several uses within the hour
    with pytest.raises(UploadTokenError, match=r"expired at .* valid for 60 minutes"):
        tokens.check(token, now + 3601)
    assert tokens.issue(now) != token  # each URL is different


@pytest.mark.parametrize(
    "token",
    [
        "",
        None,
        "not base64!",
        "AAAA",
        UploadTokens(b"another key, 16+ bytes").issue(),
    ],
)
def test_forged_or_malformed_tokens_are_refused(token: str | None) -> None:
    with pytest.raises(UploadTokenError, match="generate"):
        UploadTokens(KEY).check(token)


def test_a_tampered_token_is_refused() -> None:
    token = UploadTokens(KEY).issue()
    tampered = token[:5] + ("A" if token[5] != "A" else "B") + token[6:]
    with pytest.raises(UploadTokenError, match="not valid"):
        UploadTokens(KEY).check(tampered)


def test_the_key_file_is_created_once_owner_only(tmp_path: Path) -> None:
    key = load_or_create_signing_key(tmp_path)
    assert load_or_create_signing_key(tmp_path) == key and len(key) == 64
    assert (tmp_path / KEY_FILE).stat().st_mode & 0o777 == 0o600
    (tmp_path / KEY_FILE).write_text("")
    with pytest.raises(OperatorError, match="is empty"):
        load_or_create_signing_key(tmp_path)
    with pytest.raises(OperatorError, match="at least 16 bytes"):
        UploadTokens(b"short")
