"""Upload tokens: signed, valid for an hour, reusable until then, carrying the grant of the
function that issued them; the key file."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from pathlib import Path

import pytest

from owlat.runtime.errors import DeveloperError, OperatorError
from owlat.runtime.storage.upload_tokens import (
    KEY_FILE,
    MAX_OWNER_BYTES,
    UploadGrant,
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
    ids=["empty", "none", "not-base64", "short", "another-key"],  # stable for test workers
)
def test_forged_or_malformed_tokens_are_refused(token: str | None) -> None:
    with pytest.raises(UploadTokenError, match="generate"):
        UploadTokens(KEY).check(token)


@pytest.mark.parametrize(
    "grant",
    [
        UploadGrant(),
        UploadGrant(max_bytes=1),
        UploadGrant(max_bytes=300 * 1024 * 1024, owner="jd7abc"),
        UploadGrant(owner="é" * (MAX_OWNER_BYTES // 2)),
    ],
)
def test_a_token_carries_its_grant(grant: UploadGrant) -> None:
    tokens = UploadTokens(KEY)
    assert tokens.check(tokens.issue(grant=grant)) == grant


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"max_bytes": 0}, "max_bytes must be a positive whole number"),
        ({"max_bytes": 1.5}, "max_bytes must be a positive whole number"),
        ({"max_bytes": True}, "max_bytes must be a positive whole number"),
        ({"owner": ""}, "owner must be a non-empty string"),
        ({"owner": "x" * (MAX_OWNER_BYTES + 1)}, "at most 256 UTF-8 bytes"),
        ({"owner": "\ud800"}, "owner must be a non-empty string"),
        ({"owner": 7}, "owner must be a non-empty string"),
    ],
)
def test_bad_grants_are_refused(fields: dict[str, object], message: str) -> None:
    with pytest.raises(DeveloperError, match=message):
        UploadGrant(**fields)  # type: ignore[arg-type]


def test_a_token_without_a_grant_is_refused() -> None:
    """The layout before grants (expiry and nonce only), even correctly signed."""
    signed = int(time.time() + 60).to_bytes(8, "big") + b"n" * 16
    mac = hmac.new(KEY, b"owlat-upload\0" + signed, hashlib.sha256).digest()
    token = base64.urlsafe_b64encode(signed + mac).rstrip(b"=").decode()
    with pytest.raises(UploadTokenError, match="not valid"):
        UploadTokens(KEY).check(token)


def test_a_tampered_token_is_refused() -> None:
    token = UploadTokens(KEY).issue(grant=UploadGrant(max_bytes=1000, owner="a"))
    for at in (5, 40, 43):  # the expiry, the size limit, the owner
        tampered = token[:at] + ("A" if token[at] != "A" else "B") + token[at + 1 :]
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
