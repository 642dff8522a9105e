"""Password hashing (argon2id) and the password rules (10–128 characters).

Hashing is slow on purpose (tens of milliseconds), so it runs in actions, never inside a
mutation's transaction. `verify` against `DUMMY_HASH` when the account does not exist
keeps the time of a failed sign-in independent of whether the email is known.
"""

from __future__ import annotations

import asyncio

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from owlat.app.lib.errors import AuthFailure

MIN_LENGTH = 10
MAX_LENGTH = 128

_hasher = PasswordHasher()  # argon2id, RFC 9106 low-memory profile
DUMMY_HASH = _hasher.hash("owlat-dummy-password")


def check_rules(password: str) -> None:
    if len(password) < MIN_LENGTH:
        raise AuthFailure("PASSWORD_TOO_SHORT", "Password too short")
    if len(password) > MAX_LENGTH:
        raise AuthFailure("PASSWORD_TOO_LONG", "Password too long")


async def hash_password(password: str) -> str:
    check_rules(password)
    return await asyncio.to_thread(_hasher.hash, password)


async def verify_password(stored_hash: str | None, password: str) -> bool:
    """Whether `password` matches; runs a full verification even without a stored hash."""

    def check() -> bool:
        try:
            return _hasher.verify(stored_hash or DUMMY_HASH, password) and stored_hash is not None
        except (VerificationError, InvalidHashError):
            return False

    return await asyncio.to_thread(check)
