"""AppError: the sentence is what Convex clients see; the kind sets the HTTP status that
/api/auth answers (AuthFailure: BetterAuth's status of its code)."""

from __future__ import annotations

import pytest

from owlat.app.lib.errors import (
    AppError,
    AppErrorKind,
    AuthFailure,
    admin_required,
    conflict,
    forbidden,
    invalid,
    no_active_organization,
    not_a_member,
    not_authenticated,
    not_found,
)
from owlat.runtime import ConvexError


@pytest.mark.parametrize(
    ("error", "code", "message", "status"),
    [
        (invalid("INVALID_NAME", "Name is too long"), "INVALID_NAME", "Name is too long", 400),
        (not_found("Contact"), "NOT_FOUND", "Contact not found", 404),
        (forbidden("FORBIDDEN", "Permission denied: x"), "FORBIDDEN", "Permission denied: x", 403),
        (conflict("ALREADY_REVOKED", "Revoked"), "ALREADY_REVOKED", "Revoked", 409),
        (not_authenticated(), "UNAUTHENTICATED", "Not authenticated", 401),
        (no_active_organization(), "NO_ACTIVE_ORGANIZATION", "No active organization", 400),
        (not_a_member(), "NOT_A_MEMBER", "Not a member of this organization", 403),
        (admin_required(), "ADMIN_ACCESS_REQUIRED", "Admin access required", 403),
    ],
)
def test_app_errors_carry_a_sentence_a_code_and_a_status(
    error: AppError, code: str, message: str, status: int
) -> None:
    assert isinstance(error, ConvexError)
    assert (error.error_code, error.message, error.data, error.status) == (
        code,
        message,
        message,
        status,
    )
    assert error.kind is AppErrorKind(status)


def test_auth_failures_answer_betterauths_status_for_their_code() -> None:
    assert AuthFailure("UNAUTHORIZED", "Unauthorized").status == 401
    assert AuthFailure("OWNER_ACCESS_REQUIRED", "Only an owner can").status == 403
    assert AuthFailure("TOO_MANY_REQUESTS", "Once per minute").kind is AppErrorKind.RATE_LIMITED
    # BetterAuth answers its not-found and already-taken codes with 400
    refused = AuthFailure("MEMBER_NOT_FOUND", "Member not found")
    assert (refused.status, refused.kind, refused.data) == (
        400,
        AppErrorKind.VALIDATION,
        "Member not found",
    )
    assert isinstance(refused, AppError)
