"""Which providers send an organization's messages: its routes (`providerRoutes` rows) and
its providers' health (`providerHealth` rows), as stored (reference §8.4).

A route per message type (campaign, transactional, automation, test) names a strategy
(`single`, `priority_failover`, `workload_split`: `email_providers.routing`) and its
providers `[{provider, weight, enabled}]`. A type without a row takes the default route:
`single` through the first provider the organization configured, or the local outbox when
it configured none, so a new instance delivers to its data folder until someone sets up a
real provider.

Health is the routing module's rule (`Health`: success-rate bands over a window of recent
calls, and a streak of faults, put a provider down for a cool-down) kept in the database,
so every server node and every send sees it: a delivery records each attempt (`Attempt`),
and `record_attempts` replays them on the stored state in the recording mutation's
transaction.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from owlat.app.lib.audience import organization_rows
from owlat.app.lib.email_providers.configured import IDEMPOTENT, KINDS, TAKES_FIELDS
from owlat.app.lib.email_providers.routing import Health, MessageType, Route, RouteTarget, Strategy
from owlat.app.lib.email_providers.types import ErrorKind
from owlat.app.lib.errors import invalid
from owlat.runtime import UNDEFINED, MutationCtx, QueryCtx

MAX_TARGETS = len(KINDS)
MAX_WEIGHT = 1000


@dataclasses.dataclass(frozen=True)
class Attempt:
    """One provider call of a delivery: its provider, and the error kind when it failed."""

    provider: str
    error: ErrorKind | None = None
    message: str = ""

    def to_json(self) -> dict[str, Any]:
        document: dict[str, Any] = {"provider": self.provider}
        if self.error is not None:
            document.update({"error": self.error.name, "message": self.message[:500]})
        return document

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> Attempt:
        error = document.get("error")
        return cls(
            document["provider"],
            None if error is None else ErrorKind[error],
            document.get("message", ""),
        )


# -- routes ----------------------------------------------------------------------------------


def route_document(route: Route) -> dict[str, Any]:
    """A route as stored and passed between functions."""
    return {
        "strategy": str(route.strategy),
        "providers": [
            {"provider": t.provider, "weight": t.weight, "enabled": t.enabled}
            for t in route.targets
        ],
    }


def route_from_document(document: Mapping[str, Any]) -> Route:
    targets = tuple(
        RouteTarget(t["provider"], int(t["weight"]), bool(t["enabled"]))
        for t in document["providers"]
    )
    return Route(Strategy(document["strategy"]), targets)


def default_route(configured: Sequence[str]) -> Route:
    """`single` through the first configured provider, else the outbox."""
    return Route(Strategy.SINGLE, (RouteTarget(configured[0] if configured else "outbox"),))


def check_route(document: Mapping[str, Any], configured: Iterable[str]) -> Route:
    """A route the dashboard submitted, checked against the configured providers."""
    available = {"outbox", *configured}
    targets = document["providers"]
    if not 1 <= len(targets) <= MAX_TARGETS:
        raise invalid("INVALID_ROUTE", f"A route names 1 to {MAX_TARGETS} providers")
    seen = set()
    for target in targets:
        provider = target["provider"]
        if provider not in KINDS:
            raise invalid("INVALID_ROUTE", f"Unknown provider {provider!r}")
        if provider not in available:
            raise invalid("INVALID_ROUTE", f"{provider} is not configured; configure it first")
        if provider in seen:
            raise invalid("INVALID_ROUTE", f"{provider} is named twice")
        seen.add(provider)
        weight = target.get("weight", 1)
        if weight != int(weight) or not 0 <= weight <= MAX_WEIGHT:
            raise invalid("INVALID_ROUTE", f"Weights are whole numbers from 0 to {MAX_WEIGHT}")
    if not any(target.get("enabled", True) for target in targets):
        raise invalid("INVALID_ROUTE", "A route needs at least one enabled provider")
    return route_from_document(
        {
            "strategy": document["strategy"],
            "providers": [
                {**t, "weight": t.get("weight", 1), "enabled": t.get("enabled", True)}
                for t in targets
            ],
        }
    )


def enabled_providers(route: Route) -> list[str]:
    return [target.provider for target in route.targets if target.enabled]


def is_idempotent(providers: Iterable[str]) -> bool:
    """Whether every provider dedupes a repeated idempotency key."""
    return all(provider in IDEMPOTENT for provider in providers)


def takes_fields(providers: Iterable[str]) -> bool:
    """Whether a provider is sent the bodies as fields, not only the MIME bytes
    (`configured.TAKES_FIELDS`; `pooled_composition`'s `fields`)."""
    return not TAKES_FIELDS.isdisjoint(providers)


async def configured_kinds(ctx: QueryCtx, organization_id: str) -> list[str]:
    """The organization's configured provider kinds, oldest first."""
    rows = await organization_rows(ctx, "emailProviders", organization_id)
    return [row["kind"] for row in sorted(rows, key=lambda row: row["createdAt"])]


async def route_row(
    ctx: QueryCtx, organization_id: str, message_type: str
) -> dict[str, Any] | None:
    found = (
        await ctx.db.query("providerRoutes")
        .with_index(
            "by_org_type",
            lambda q: q.eq("organizationId", organization_id).eq("messageType", message_type),
        )
        .unique()
    )
    return None if found is None else dict(found)


async def provider_row(ctx: QueryCtx, organization_id: str, kind: str) -> dict[str, Any] | None:
    """The organization's `emailProviders` row of `kind` (its sealed settings), or None."""
    found = await (
        ctx.db.query("emailProviders")
        .with_index(
            "by_org_kind", lambda q: q.eq("organizationId", organization_id).eq("kind", kind)
        )
        .unique()
    )
    return None if found is None else dict(found)


async def route_for(ctx: QueryCtx, organization_id: str, message_type: MessageType) -> Route:
    """The route of `message_type`: its row, else the default route."""
    row = await route_row(ctx, organization_id, str(message_type))
    if row is not None:
        return route_from_document(row)
    return default_route(await configured_kinds(ctx, organization_id))


# -- health ----------------------------------------------------------------------------------


async def health_rows(ctx: QueryCtx, organization_id: str) -> dict[str, dict[str, Any]]:
    rows = await organization_rows(ctx, "providerHealth", organization_id)
    return {row["provider"]: row for row in rows}


def restored_health(rows: Iterable[Mapping[str, Any]]) -> Health:
    """A `Health` holding the stored state (down-until in epoch seconds)."""
    health = Health()
    for row in rows:
        down_until = row.get("downUntil")
        health.restore(
            row["provider"],
            int(row["consecutiveFaults"]),
            None if down_until is None else down_until / 1000,
            row.get("recent", ""),
        )
    return health


def health_status(row: Mapping[str, Any], now_ms: float) -> str:
    """healthy | degraded | down, as `routing.Health.status` judges the stored state."""
    return str(restored_health([row]).status(row["provider"], now_ms / 1000))


def health_summary(row: Mapping[str, Any], now_ms: float) -> dict[str, Any]:
    """What the providers screen shows of a provider's health: its status, the success
    rate over the window of recent calls (None before any), totals and the last error."""
    provider, health = row["provider"], restored_health([row])
    return {
        "status": str(health.status(provider, now_ms / 1000)),
        "successRate": health.success_rate(provider),
        "windowCalls": len(health.recent(provider)),
        **{
            key: row.get(key)
            for key in (
                "consecutiveFaults",
                "sent",
                "failed",
                "lastSuccessAt",
                "lastFailureAt",
                "lastErrorKind",
                "lastError",
            )
        },
    }


async def record_attempts(
    ctx: MutationCtx, organization_id: str, attempts: Sequence[Attempt], now_ms: float
) -> None:
    """Replay a delivery's attempts on the stored health of its providers."""
    stored = await health_rows(ctx, organization_id)
    for provider in dict.fromkeys(attempt.provider for attempt in attempts):
        row = stored.get(provider)
        health = restored_health([row] if row is not None else [])
        counts = {"sent": 0, "failed": 0}
        last_error: Attempt | None = None
        for attempt in (a for a in attempts if a.provider == provider):
            if attempt.error is None:
                health.record_success(provider)
                counts["sent"] += 1
            else:
                health.record_failure(provider, attempt.error, now_ms / 1000)
                counts["failed"] += 1
                last_error = attempt
        down_until = health.down_until(provider)
        fields: dict[str, Any] = {
            "consecutiveFaults": health.faults(provider),
            "recent": health.recent(provider),
            "downUntil": UNDEFINED if down_until is None else down_until * 1000,
            "sent": (row["sent"] if row else 0) + counts["sent"],
            "failed": (row["failed"] if row else 0) + counts["failed"],
            "updatedAt": now_ms,
        }
        if counts["sent"]:
            fields["lastSuccessAt"] = now_ms
        if last_error is not None:
            fields.update(
                lastFailureAt=now_ms,
                lastErrorKind=last_error.error.name if last_error.error else UNDEFINED,
                lastError=last_error.message[:500],
            )
        if row is None:
            document = {k: value for k, value in fields.items() if value is not UNDEFINED}
            await ctx.db.insert(
                "providerHealth",
                {"organizationId": organization_id, "provider": provider, **document},
            )
        else:
            await ctx.db.patch(row["_id"], fields)
