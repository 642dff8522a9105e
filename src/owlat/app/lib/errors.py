"""Errors a caller of Owlat's functions sees: a kind, a stable UPPER_SNAKE code, a sentence.

    AppError(kind, code, message)      a ConvexError whose data is the sentence
    └── AuthFailure(code, message)     one of BetterAuth's codes, with BetterAuth's status

An `AppError` is `ConvexError(message)`, as the seed's `throw new Error('Not
authenticated')`: Convex clients get exactly that sentence as the error's message and data.
Its kind says who must act and sets `status`:

    validation 400 (`invalid`)          unauthenticated 401 (`not_authenticated`)
    forbidden 403 (`forbidden`)         not found 404 (`not_found`: "<What> not found")
    conflict 409 (`conflict`: the thing's current state refuses the change)
    rate limited 429

The code and kind stay on the server, except where HTTP speaks: the `/api/auth` endpoints
answer BetterAuth's `{code, message}` body with `status`, and REST v1 answers a not-found
error with 404 and any other with 400 (`rest_api/wire.py`).

`AuthFailure` carries the codes of BetterAuth's endpoints (the functions behind
`/api/auth`: users, sessions, passwords, organizations, members, invitations) with the
status BetterAuth gives each (`STATUS`; 400 when unlisted, as BetterAuth answers
`MEMBER_NOT_FOUND` or `ORGANIZATION_SLUG_ALREADY_TAKEN` with 400), whatever their kind
would suggest.
"""

from __future__ import annotations

import enum

from owlat.runtime import ConvexError


class AppErrorKind(enum.Enum):
    """Why a call is refused; the value is the HTTP status it is answered with."""

    VALIDATION = 400
    UNAUTHENTICATED = 401
    FORBIDDEN = 403
    NOT_FOUND = 404
    CONFLICT = 409
    RATE_LIMITED = 429


class AppError(ConvexError):
    """A refusal a caller sees (see the module docstring)."""

    def __init__(self, kind: AppErrorKind, code: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.error_code = code

    @property
    def status(self) -> int:
        return self.kind.value


# BetterAuth's statuses of its codes that are not 400.
STATUS: dict[str, int] = {
    "UNAUTHORIZED": 401,
    "EMAIL_VERIFICATION_REQUIRED_FOR_INVITATION": 403,
    "EMAIL_VERIFICATION_REQUIRED_BEFORE_ACCEPTING_OR_REJECTING_INVITATION": 403,
    "OWNER_ACCESS_REQUIRED": 403,
    "TOO_MANY_REQUESTS": 429,
}


class AuthFailure(AppError):
    """A refusal with one of BetterAuth's codes, and BetterAuth's status for it."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(AppErrorKind(STATUS.get(code, 400)), code, message)


def invalid(code: str, message: str) -> AppError:
    """A refused argument."""
    return AppError(AppErrorKind.VALIDATION, code, message)


def not_found(what: str) -> AppError:
    """The error "<what> not found" (code `NOT_FOUND`)."""
    return AppError(AppErrorKind.NOT_FOUND, "NOT_FOUND", f"{what} not found")


def forbidden(code: str, message: str) -> AppError:
    return AppError(AppErrorKind.FORBIDDEN, code, message)


def conflict(code: str, message: str) -> AppError:
    """The thing's current state refuses the change (it already exists, is already done)."""
    return AppError(AppErrorKind.CONFLICT, code, message)


def not_authenticated() -> AppError:
    return AppError(AppErrorKind.UNAUTHENTICATED, "UNAUTHENTICATED", "Not authenticated")


def no_active_organization() -> AppError:
    return invalid("NO_ACTIVE_ORGANIZATION", "No active organization")


def not_a_member() -> AppError:
    return forbidden("NOT_A_MEMBER", "Not a member of this organization")


def admin_required() -> AppError:
    return forbidden("ADMIN_ACCESS_REQUIRED", "Admin access required")
