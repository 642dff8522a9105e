"""The domain lifecycle (§12.1) and the verdict of a verification run, rule by rule."""

from __future__ import annotations

import pytest

from owlat.app.lib.domains.states import (
    BACKOFF_MS,
    DAY_MS,
    HOUR_MS,
    PENDING_GRACE_MS,
    DomainState,
    DomainStatus,
    decide,
    move,
)
from owlat.app.lib.domains.verification import CheckResult, CheckStatus
from owlat.app.lib.errors import AppError

NOW = 1_800_000_000_000
OK = CheckResult("dkim", "s._domainkey.example.com", CheckStatus.OK, "fine")
MISSING = CheckResult("dmarc", "_dmarc.example.com", CheckStatus.MISSING, "No DMARC record")
RETRY = CheckResult("spf", "example.com", CheckStatus.RETRY, "SERVFAIL; checked again")
PROVIDER_FAILED = CheckResult("provider", "SES", CheckStatus.FAILED, "SES could not verify")

R, P, V, F = (
    DomainStatus.REGISTERING,
    DomainStatus.PENDING,
    DomainStatus.VERIFIED,
    DomainStatus.FAILED,
)
LEGAL = {(R, P), (R, F), (P, V), (P, F), (P, R), (V, R), (V, F), (V, P), (F, R), (F, V), (F, P)}


@pytest.mark.parametrize("old", list(DomainStatus))
@pytest.mark.parametrize("new", list(DomainStatus))
def test_only_the_legal_edges_are_allowed(old: DomainStatus, new: DomainStatus) -> None:
    state = DomainState(old)
    if old is new or (old, new) in LEGAL:
        assert move(state, new, NOW).status is new
    else:
        with pytest.raises(AppError, match=f"A {old} domain cannot become {new}") as error:
            move(state, new, NOW)
        assert error.value.error_code == "DOMAIN_STATE"


def test_issuing_records_starts_the_grace_period_and_schedules_a_check() -> None:
    pending = move(DomainState(R), P, NOW)
    assert pending == DomainState(P, pending_since=NOW, next_check_at=NOW + BACKOFF_MS[0])


def test_a_registering_domain_cannot_be_verified() -> None:
    with pytest.raises(AppError, match="still being registered") as error:
        decide(DomainState(R), [OK], NOW)
    assert error.value.error_code == "DOMAIN_REGISTERING"


def test_all_checks_ok_verifies_and_keeps_the_first_verified_at() -> None:
    first = decide(DomainState(P, pending_since=NOW), [OK], NOW + HOUR_MS)
    assert first.state == DomainState(
        V,
        pending_since=NOW,
        verified_at=NOW + HOUR_MS,
        last_verified_at=NOW + HOUR_MS,
        next_check_at=NOW + HOUR_MS + DAY_MS,
    )
    again = decide(first.state, [OK], NOW + 2 * DAY_MS)
    assert again.state.verified_at == NOW + HOUR_MS
    assert again.state.last_verified_at == NOW + 2 * DAY_MS
    assert again.summary == "All DNS records are published and verified"


def test_a_failed_domain_whose_records_appear_is_verified() -> None:
    assert decide(DomainState(F, unverified_checks=9), [OK], NOW).state.status is V


@pytest.mark.parametrize("status", [P, V, F])
def test_servfail_or_timeout_changes_nothing_but_backs_off(status: DomainStatus) -> None:
    state = DomainState(status, pending_since=NOW - PENDING_GRACE_MS - 1, verified_at=NOW - 1)
    verdict = decide(state, [OK, RETRY], NOW)
    assert verdict.state.status is status
    assert verdict.state.verified_at == state.verified_at
    assert verdict.state.unverified_checks == 1
    assert verdict.state.next_check_at == NOW + BACKOFF_MS[0]
    assert verdict.summary == RETRY.reason


def test_missing_records_keep_a_new_domain_pending_with_growing_back_off() -> None:
    state = move(DomainState(R), P, NOW)
    delays = []
    now = NOW
    for _ in range(6):
        verdict = decide(state, [OK, MISSING], now)
        assert verdict.state.status is P
        assert verdict.summary == MISSING.reason
        assert verdict.state.next_check_at is not None
        delays.append(verdict.state.next_check_at - now)
        state, now = verdict.state, verdict.state.next_check_at
    assert delays == [*BACKOFF_MS, BACKOFF_MS[-1]]


def test_a_pending_domain_fails_once_the_grace_period_is_over() -> None:
    state = DomainState(P, pending_since=NOW, unverified_checks=7)
    assert decide(state, [MISSING], NOW + PENDING_GRACE_MS - 1).state.status is P
    failed = decide(state, [MISSING], NOW + PENDING_GRACE_MS).state
    assert failed.status is F
    assert failed.next_check_at == NOW + PENDING_GRACE_MS + DAY_MS  # still re-checked daily


def test_a_verified_domain_whose_record_disappears_fails_at_once() -> None:
    state = DomainState(V, verified_at=NOW - DAY_MS, last_verified_at=NOW - DAY_MS)
    verdict = decide(state, [OK, MISSING, RETRY], NOW)
    assert verdict.state.status is F
    assert verdict.state.verified_at == NOW - DAY_MS
    assert verdict.state.next_check_at == NOW + BACKOFF_MS[0]
    assert verdict.summary == MISSING.reason  # the failure, not the unanswered lookup


def test_the_provider_refusing_counts_as_a_failure() -> None:
    state = DomainState(V, verified_at=NOW - DAY_MS)
    assert decide(state, [OK, PROVIDER_FAILED], NOW).state.status is F


def test_the_state_round_trips_through_the_row_fields() -> None:
    state = DomainState(V, NOW, NOW + 1, NOW + 2, 3, NOW + 4)
    fields = state.to_fields()
    assert fields == {
        "status": "verified",
        "pendingSince": NOW,
        "verifiedAt": NOW + 1,
        "lastVerifiedAt": NOW + 2,
        "unverifiedChecks": 3,
        "nextCheckAt": NOW + 4,
    }
    assert DomainState.from_fields(fields) == state
    assert DomainState.from_fields({"status": "pending"}) == DomainState(P)


def test_a_row_read_back_with_float_numbers_gives_whole_milliseconds() -> None:
    """A database returns stored numbers as floats; the back-off step indexes a tuple."""
    row = {"status": "pending", "pendingSince": float(NOW), "unverifiedChecks": 2.0}
    state = DomainState.from_fields(row)
    assert (state.pending_since, state.unverified_checks) == (NOW, 2)
    assert decide(state, [MISSING], NOW).state.next_check_at == NOW + BACKOFF_MS[2]
