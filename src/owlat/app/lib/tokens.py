"""Random tokens, their stored hashes, and constant-time comparisons.

Secrets handed to users (session tokens, reset and verification tokens, invitation
links, API keys) are stored only as SHA-256 hex digests: a leaked database does not
let anyone sign in. Lookups go by the digest; comparisons of secrets use
`hmac.compare_digest`.
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
