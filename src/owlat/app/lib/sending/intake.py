"""Who may send at all, before any per-message check (reference §3.9 rows 1-2, campaign
preflight §9): an organization whose abuse status is `suspended` or `banned` sends nothing,
and a message type whose route names no enabled provider has nowhere to send to.

The abuse status (`clean`, `warned`, `suspended`, `banned`) is upstream's instance setting,
kept per organization in `organizationSettings` (`abuseStatus`, `abuseStatusReason`,
`abuseStatusChangedAt`, `abuseStatusChangedBy`); only the deployment's admin sets it
(`adminTools:setAbuseStatus`, `owlat admin abuse set`). The outbox counts as a provider: an
organization that configured nothing sends to the local outbox (`routes.default_route`).
"""

from __future__ import annotations

from owlat.app.lib.audience import organization_settings
from owlat.app.lib.email_providers.routing import MessageType
from owlat.app.lib.sending.routes import enabled_providers, route_for
from owlat.runtime import QueryCtx

BLOCKING_STATUSES = frozenset({"suspended", "banned"})


async def abuse_block(ctx: QueryCtx, organization_id: str) -> str | None:
    """Why the organization may not send (its account is suspended or banned), or None."""
    settings = await organization_settings(ctx, organization_id) or {}
    status = settings.get("abuseStatus")
    if status not in BLOCKING_STATUSES:
        return None
    reason = settings.get("abuseStatusReason")
    return f"Account {status}: sending is not allowed" + (f" ({reason})" if reason else "")


async def no_provider(ctx: QueryCtx, organization_id: str, message_type: MessageType) -> str | None:
    """Why `message_type` cannot be delivered (its route has no enabled provider), or None."""
    if enabled_providers(await route_for(ctx, organization_id, message_type)):
        return None
    return (
        f"No delivery provider configured: every provider of the {message_type} route is disabled"
    )
