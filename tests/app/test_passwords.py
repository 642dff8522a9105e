"""The password rules (NIST SP 800-63B): length, no control characters, not a common
password or a short repeated pattern, not like the account's email; hashing at RFC 9106's
low-memory cost unless the instance says otherwise."""

from __future__ import annotations

from pathlib import Path

import pytest
from argon2 import extract_parameters
from argon2.profiles import RFC_9106_LOW_MEMORY

from owlat.app.lib import instance
from owlat.app.lib.errors import AuthFailure
from owlat.app.lib.passwords import check_rules, common_passwords, hash_password, verify_password
from tests.app.conftest import BASE_URL, CHEAP_HASHING

EMAIL = "margaret.hamilton@example.com"


@pytest.mark.parametrize(
    ("password", "code"),
    [
        ("x" * 9, "PASSWORD_TOO_SHORT"),
        ("x" * 129, "PASSWORD_TOO_LONG"),
        ("\0" * 10, "PASSWORD_INVALID_CHARACTERS"),
        ("good-password\n", "PASSWORD_INVALID_CHARACTERS"),
        ("good\x7fpassword", "PASSWORD_INVALID_CHARACTERS"),
        ("good\x85password", "PASSWORD_INVALID_CHARACTERS"),  # C1 (NEL)
        ("good\ud800password", "PASSWORD_INVALID_CHARACTERS"),  # a lone surrogate
        ("aaaaaaaaaa", "PASSWORD_TOO_COMMON"),
        ("QWERTYUIOP", "PASSWORD_TOO_COMMON"),  # case does not matter
        ("1q2w3e4r5t", "PASSWORD_TOO_COMMON"),
        ("password123", "PASSWORD_TOO_COMMON"),
        ("zzzzzzzzzzzzzzzzzzzz", "PASSWORD_TOO_COMMON"),  # one character repeated
        ("xyzxyzxyzxyzx", "PASSWORD_TOO_COMMON"),  # a short pattern repeated
        ("margaret.hamilton", "PASSWORD_TOO_SIMILAR_TO_EMAIL"),
        ("Hamilton.Margaret1", "PASSWORD_TOO_SIMILAR_TO_EMAIL"),
        (EMAIL, "PASSWORD_TOO_SIMILAR_TO_EMAIL"),
    ],
)
def test_refused(password: str, code: str) -> None:
    with pytest.raises(AuthFailure) as refused:
        check_rules(password, EMAIL)
    assert refused.value.error_code == code


@pytest.mark.parametrize(
    "password",
    [
        "correct horse battery staple",  # spaces are fine
        "grüße-aus-köln",  # so is any printable Unicode
        "margaret-likes-long-walks",  # the local part's first name is not the local part
        "abcdeabcdeabcde",  # a unit of five repeated is left to the list
        "x" * 5 + "y" * 5 + "z" * 5,
    ],
)
def test_accepted(password: str) -> None:
    check_rules(password, EMAIL)


def test_the_bundled_list_holds_the_10000_most_common_passwords() -> None:
    passwords = common_passwords()
    assert len(passwords) == 9913  # 10,000 lines; lower-cased, 87 coincide (`Password`)
    assert {"123456", "password", "qwerty", "iloveyou"} <= passwords
    assert common_passwords() is passwords  # read once


async def test_hashes_cost_rfc_9106_low_memory_by_default(tmp_path: Path) -> None:
    """Production's cost (the other tests configure a cheap one, tests/app/conftest.py)."""
    instance.configure(tmp_path, BASE_URL)
    stored = await hash_password("correct-horse-1", EMAIL)
    assert extract_parameters(stored) == RFC_9106_LOW_MEMORY
    assert await verify_password(stored, "correct-horse-1")
    assert not await verify_password(stored, "correct-horse-2")
    assert not await verify_password(None, "correct-horse-1")  # no account: still verified

    # a configured cost holds for new hashes; hashes made at another cost still verify
    instance.configure(tmp_path, BASE_URL, password_hashing=CHEAP_HASHING)
    cheap = await hash_password("correct-horse-1", EMAIL)
    assert extract_parameters(cheap).time_cost == CHEAP_HASHING.time_cost
    assert extract_parameters(cheap).memory_cost == CHEAP_HASHING.memory_cost
    assert await verify_password(cheap, "correct-horse-1")
    assert await verify_password(stored, "correct-horse-1")
