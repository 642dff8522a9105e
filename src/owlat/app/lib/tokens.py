"""Random tokens, their stored hashes, and constant-time comparisons.

Secrets handed to users (session tokens, reset and verification tokens, API keys) are
stored only as SHA-256 hex digests: a leaked database does not let anyone sign in; the
token of an invitation link is derived from the instance secret and stored nowhere.
Lookups go by the digest; comparisons of secrets use `hmac.compare_digest`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import string

ALPHANUMERIC = string.ascii_letters + string.digits


def random_token(length: int = 32) -> str:
    """`length` random alphanumerics (≈5.95 bits each)."""
    return "".join(secrets.choice(ALPHANUMERIC) for _ in range(length))


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def derived_token(secret: bytes, purpose: str, *parts: str) -> str:
    """A token for `parts` that only the holder of `secret` can make, kept nowhere: the
    URL-safe base64 HMAC-SHA256 of the purpose and the parts, NUL-separated (a cookie
    signature, made over a random alphanumeric token, can never be one)."""
    message = "\0".join((purpose, *parts)).encode()
    digest = hmac.new(secret, message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def same_secret(given: str, expected: str) -> bool:
    """Constant-time equality of two secrets (any text; `hmac.compare_digest` refuses
    non-ASCII strings)."""
    return hmac.compare_digest(given.encode(), expected.encode())


def sign(value: str, secret: bytes) -> str:
    """`value.<base64 HMAC-SHA256(value)>`, as BetterAuth signs its session cookie."""
    digest = hmac.new(secret, value.encode(), hashlib.sha256).digest()
    return f"{value}.{base64.b64encode(digest).decode()}"


def unsign(signed: str, secret: bytes) -> str | None:
    """The value of a `sign`ed string, or None when the signature does not match."""
    value, dot, _ = signed.rpartition(".")
    if not dot or not value:
        return None
    return value if hmac.compare_digest(sign(value, secret), signed) else None
