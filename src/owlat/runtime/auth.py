"""Caller identity: `ctx.auth.get_user_identity()`.

An identity is the dict Convex builds from a verified JWT (`tokenIdentifier`, `subject`,
`issuer`, standard OIDC claims in camelCase, custom claims). Transports verify tokens and
hand the identity to the runtime; functions only ever see the result.
"""

from __future__ import annotations

from typing import Any

UserIdentity = dict[str, Any]


class Auth:
    """The `ctx.auth` of a function call."""

    __slots__ = ("_identity",)

    def __init__(self, identity: UserIdentity | None = None) -> None:
        self._identity = identity

    async def get_user_identity(self) -> UserIdentity | None:
        """The caller's identity, or None when the call carries no user token."""
        return None if self._identity is None else dict(self._identity)

    @property
    def identity(self) -> UserIdentity | None:
        return self._identity


ANONYMOUS = Auth(None)
