"""Password hashing (argon2id) and the password rules.

The rules follow NIST SP 800-63B (5.1.1.2, memorized secrets): length counts, composition
rules do not, and a password that attackers try first is refused. A new password must

1. be 10 to 128 characters long;
2. have no control characters (Unicode category Cc: NUL, tab, newline, DEL, the C1 range)
   and no lone surrogates (which have no UTF-8 encoding);
3. not be one of the 10,000 most common passwords, compared case-insensitively
   (`common_passwords.txt` beside this module, read once on first use; its source and
   licence are in `common_passwords.LICENSE`), nor a short pattern of up to four characters
   repeated (`aaaaaaaaaa`, `abababababab`);
4. not be the account's email or too like its local part: `difflib`'s quick ratio of the
   two (case-folded) reaching 0.7, the threshold of Django's `UserAttributeSimilarity`
   validator (`jsmith2024!` for jsmith@…, not `john-likes-long-walks` for john@…).

Hashing is slow on purpose (tens of milliseconds), so it runs in actions, never inside a
mutation's transaction. Its cost is the instance's `password_hashing` (RFC 9106's
low-memory profile; tests that are not about hashing choose a cheap one). Verifying against
a dummy hash of that cost when the account does not exist keeps the time of a failed
sign-in independent of whether the email is known.
"""

from __future__ import annotations

import asyncio
import functools
import unicodedata
from difflib import SequenceMatcher
from importlib.resources import files

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from owlat.app.lib import instance
from owlat.app.lib.errors import AuthFailure

MIN_LENGTH = 10
MAX_LENGTH = 128
MAX_EMAIL_SIMILARITY = 0.7
# `abcd` repeated is refused, a longer unit is left to the list and to length.
MAX_REPEATED_UNIT = 4


@functools.cache
def _hasher(cost: instance.PasswordCost) -> PasswordHasher:
    return PasswordHasher(
        time_cost=cost.time_cost, memory_cost=cost.memory_cost, parallelism=cost.parallelism
    )


@functools.cache
def _dummy_hash(cost: instance.PasswordCost) -> str:
    """What a sign-in for an unknown account verifies against: as costly as a real hash."""
    return _hasher(cost).hash("owlat-dummy-password")


@functools.cache
def common_passwords() -> frozenset[str]:
    """The bundled list of the 10,000 most common passwords, lower-cased."""
    text = files("owlat.app.lib").joinpath("common_passwords.txt").read_text(encoding="utf-8")
    return frozenset(line.lower() for line in text.splitlines() if line)


def _is_repetition(password: str) -> bool:
    size = len(password)
    return any(
        password == (password[:unit] * (size // unit + 1))[:size]
        for unit in range(1, MAX_REPEATED_UNIT + 1)
    )


def _like_email(folded: str, email: str) -> bool:
    address = email.casefold()
    return any(
        SequenceMatcher(a=folded, b=part).quick_ratio() >= MAX_EMAIL_SIMILARITY
        for part in (address.partition("@")[0], address)
    )


def check_rules(password: str, email: str) -> None:
    """Refuse a new `password` for the account of `email` that breaks a rule (see above)."""
    if len(password) < MIN_LENGTH:
        raise AuthFailure("PASSWORD_TOO_SHORT", "Password too short")
    if len(password) > MAX_LENGTH:
        raise AuthFailure("PASSWORD_TOO_LONG", "Password too long")
    if any(unicodedata.category(char) in ("Cc", "Cs") for char in password):
        raise AuthFailure(
            "PASSWORD_INVALID_CHARACTERS", "Password must not contain control characters"
        )
    folded = password.casefold()
    if folded in common_passwords() or _is_repetition(folded):
        raise AuthFailure(
            "PASSWORD_TOO_COMMON", "Password is too common: choose one that is harder to guess"
        )
    if _like_email(folded, email):
        raise AuthFailure(
            "PASSWORD_TOO_SIMILAR_TO_EMAIL", "Password is too similar to the email address"
        )


async def hash_password(password: str, email: str) -> str:
    """The argon2id hash of a new `password` for the account of `email`, which must pass
    `check_rules`."""
    check_rules(password, email)
    hasher = _hasher(instance.current().password_hashing)
    return await asyncio.to_thread(hasher.hash, password)


async def verify_password(stored_hash: str | None, password: str) -> bool:
    """Whether `password` matches; runs a full verification even without a stored hash."""
    cost = instance.current().password_hashing

    def check() -> bool:
        against = stored_hash or _dummy_hash(cost)
        try:
            return _hasher(cost).verify(against, password) and stored_hash is not None
        except (VerificationError, InvalidHashError, UnicodeEncodeError):
            return False  # UnicodeEncodeError: a lone surrogate, which no password has

    return await asyncio.to_thread(check)
