"""A sending domain's lifecycle (§12.1) and the verdict of a verification run, no I/O.

    registering ──▶ pending ──▶ verified
         │             │  ▲         │
         └──▶ failed ◀─┘  └─────────┘ (and every state back to registering)

Legal edges: registering→pending|failed; pending→verified|failed|registering;
verified→registering|failed|pending; failed→registering|verified|pending. `move` refuses
anything else with a sentence naming the edge.

`decide(state, checks, now)` turns one run's results (every DNS record, plus the provider's
identity status) into the next state and the time of the next check:

- every check OK → verified (`verifiedAt` is the first time and is kept, `lastVerifiedAt`
  is now); checked again after a day.
- a check that could not be answered (SERVFAIL, timeout, provider still checking) and no
  definite failure → the status stays as it is, checked again after a back-off.
- a definite failure (record missing or different, provider refused):
  pending stays pending while DNS may still be propagating (`PENDING_GRACE_MS` after the
  records were issued), with back-off, then fails; a verified domain fails at once, as its
  mail would no longer authenticate (sending from it stops until it verifies again); a failed
  domain stays failed. Failed domains are still re-checked, so fixing DNS verifies them.

The back-off for unverified domains is `BACKOFF_MS[n]` after the n-th consecutive unverified
check (5 min, 15 min, 1 h, 6 h, then daily).
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping, Sequence
from typing import Any

from owlat.app.lib.domains.verification import CheckResult, CheckStatus
from owlat.app.lib.errors import conflict

MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS
BACKOFF_MS = (5 * MINUTE_MS, 15 * MINUTE_MS, HOUR_MS, 6 * HOUR_MS, DAY_MS)
PENDING_GRACE_MS = 72 * HOUR_MS  # DNS changes and TTLs settle well within three days
VERIFIED_RECHECK_MS = DAY_MS


class DomainStatus(enum.StrEnum):
    REGISTERING = "registering"  # row created, the provider is registering the identity
    PENDING = "pending"  # records issued, not (yet) found in DNS
    VERIFIED = "verified"  # every record found; sending from the domain is allowed
    FAILED = "failed"  # registration failed, or records missing past the grace period


EDGES: dict[DomainStatus, frozenset[DomainStatus]] = {
    DomainStatus.REGISTERING: frozenset({DomainStatus.PENDING, DomainStatus.FAILED}),
    DomainStatus.PENDING: frozenset(
        {DomainStatus.VERIFIED, DomainStatus.FAILED, DomainStatus.REGISTERING}
    ),
    DomainStatus.VERIFIED: frozenset(
        {DomainStatus.REGISTERING, DomainStatus.FAILED, DomainStatus.PENDING}
    ),
    DomainStatus.FAILED: frozenset(
        {DomainStatus.REGISTERING, DomainStatus.VERIFIED, DomainStatus.PENDING}
    ),
}


@dataclasses.dataclass(frozen=True)
class DomainState:
    """The lifecycle fields of a `domains` row (epoch ms)."""

    status: DomainStatus
    pending_since: int | None = None  # when the current records were issued
    verified_at: int | None = None  # first successful verification, kept
    last_verified_at: int | None = None  # latest successful verification
    unverified_checks: int = 0  # consecutive checks that did not verify (back-off step)
    next_check_at: int | None = None

    def to_fields(self) -> dict[str, Any]:
        """The row's fields (wire names; None means unset)."""
        return {
            "status": str(self.status),
            "pendingSince": self.pending_since,
            "verifiedAt": self.verified_at,
            "lastVerifiedAt": self.last_verified_at,
            "unverifiedChecks": self.unverified_checks,
            "nextCheckAt": self.next_check_at,
        }

    @classmethod
    def from_fields(cls, row: Mapping[str, Any]) -> DomainState:
        """The state of a row (stored numbers may come back as floats)."""
        return cls(
            status=DomainStatus(row["status"]),
            pending_since=_ms(row.get("pendingSince")),
            verified_at=_ms(row.get("verifiedAt")),
            last_verified_at=_ms(row.get("lastVerifiedAt")),
            unverified_checks=int(row.get("unverifiedChecks") or 0),
            next_check_at=_ms(row.get("nextCheckAt")),
        )


STALE_AFTER_MS = DAY_MS


def is_stale(row: Mapping[str, Any], now: float) -> bool:
    """A verified domain whose latest successful check is over `STALE_AFTER_MS` (24 h) old
    (§12.1): a warning only. Sending from it goes on; the re-check cron refreshes it."""
    last = row.get("lastVerifiedAt")
    return row["status"] == DomainStatus.VERIFIED and (last is None or now - last > STALE_AFTER_MS)


def _ms(value: float | None) -> int | None:
    return None if value is None else int(value)


@dataclasses.dataclass(frozen=True)
class Verdict:
    state: DomainState
    summary: str  # one sentence for the dashboard


def move(state: DomainState, status: DomainStatus, now: int) -> DomainState:
    """`state` moved to `status` along a legal edge (entering pending starts the grace
    period and schedules the first check), or a `DOMAIN_STATE` error."""
    if status is state.status:
        return state
    if status not in EDGES[state.status]:
        raise conflict("DOMAIN_STATE", f"A {state.status} domain cannot become {status}")
    if status is DomainStatus.PENDING:
        return dataclasses.replace(
            state, status=status, pending_since=now, unverified_checks=0,
            next_check_at=now + BACKOFF_MS[0],
        )  # fmt: skip
    if status is DomainStatus.REGISTERING:
        return dataclasses.replace(state, status=status, next_check_at=None)
    return dataclasses.replace(state, status=status)


def decide(state: DomainState, checks: Sequence[CheckResult], now: int) -> Verdict:
    """The state after one verification run (see the module docstring)."""
    if state.status is DomainStatus.REGISTERING:
        raise conflict(
            "DOMAIN_REGISTERING",
            "The domain is still being registered with the provider; verify it once its "
            "DNS records are shown",
        )
    failures = [check for check in checks if check.status.is_failure]
    unknown = [check for check in checks if check.status is CheckStatus.RETRY]
    if not failures and not unknown:
        verified = dataclasses.replace(
            move(state, DomainStatus.VERIFIED, now),
            verified_at=state.verified_at or now,
            last_verified_at=now,
            unverified_checks=0,
            next_check_at=now + VERIFIED_RECHECK_MS,
        )
        return Verdict(verified, "All DNS records are published and verified")
    status = state.status
    grace_over = now - (state.pending_since or now) >= PENDING_GRACE_MS
    if failures and (status is DomainStatus.VERIFIED or grace_over):
        status = DomainStatus.FAILED
    step = state.unverified_checks
    after = move(state, status, now)
    after = dataclasses.replace(
        after,
        unverified_checks=step + 1,
        next_check_at=now + BACKOFF_MS[min(step, len(BACKOFF_MS) - 1)],
    )
    summary = "; ".join(check.reason for check in failures or unknown)
    return Verdict(after, summary)
