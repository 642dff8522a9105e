"""Errors of Owlat's functions: a stable UPPER_SNAKE code and a sentence.

`AuthFailure(code, message)` is a `ConvexError` whose data is the sentence, as the seed's
`throw new Error('Not authenticated')`: Convex clients get exactly that text as the
error's message and data. The code stays on the server: the `/api/auth` endpoints answer
BetterAuth's `{code, message}` body with the status `STATUS[code]`.
"""

from __future__ import annotations

from owlat.runtime import ConvexError

STATUS: dict[str, int] = {
    "UNAUTHORIZED": 401,
    "UNAUTHENTICATED": 401,
    "INVALID_EMAIL_OR_PASSWORD": 401,
    "FORBIDDEN": 403,
    "EMAIL_NOT_VERIFIED": 403,
    "EMAIL_VERIFICATION_REQUIRED_FOR_INVITATION": 403,
    "EMAIL_VERIFICATION_REQUIRED_BEFORE_ACCEPTING_OR_REJECTING_INVITATION": 403,
    "NOT_A_MEMBER": 403,
    "ADMIN_ACCESS_REQUIRED": 403,
    "OWNER_ACCESS_REQUIRED": 403,
    "ON_WAITLIST": 403,
    "PLATFORM_ADMIN_REQUIRED": 403,
    "NOT_FOUND": 404,
    "TOO_MANY_REQUESTS": 429,
}


class AuthFailure(ConvexError):
    """A refusal with a code (see the module docstring)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.error_code = code

    @property
    def status(self) -> int:
        return STATUS.get(self.error_code, 400)


def not_authenticated() -> AuthFailure:
    return AuthFailure("UNAUTHENTICATED", "Not authenticated")


def no_active_organization() -> AuthFailure:
    return AuthFailure("NO_ACTIVE_ORGANIZATION", "No active organization")


def not_a_member() -> AuthFailure:
    return AuthFailure("NOT_A_MEMBER", "Not a member of this organization")


def admin_required() -> AuthFailure:
    return AuthFailure("ADMIN_ACCESS_REQUIRED", "Admin access required")


def not_found(what: str) -> AuthFailure:
    return AuthFailure("NOT_FOUND", f"{what} not found")
