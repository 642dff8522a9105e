"""Who calls: identities from JWTs and admin keys.

identity.py  `ctx.auth`, callers, trusted issuers and the authenticator that verifies tokens
jwks.py      an issuer's signing keys (JWKS), fetched and cached
claims.py    a verified token's claims as a Convex `UserIdentity`
"""

from __future__ import annotations

from owlat.runtime.auth.identity import (
    ANONYMOUS,
    ANONYMOUS_CALLER,
    Auth,
    Authenticator,
    Caller,
    TrustedIssuer,
    UserIdentity,
    generate_admin_key,
    load_or_create_admin_key,
    read_admin_key,
)

__all__ = [
    "ANONYMOUS",
    "ANONYMOUS_CALLER",
    "Auth",
    "Authenticator",
    "Caller",
    "TrustedIssuer",
    "UserIdentity",
    "generate_admin_key",
    "load_or_create_admin_key",
    "read_admin_key",
]
