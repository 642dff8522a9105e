"""The curated campaign From list (`campaignSenders`, reference §2.2, §7.5) and its gate.

A sender is an address (lower case) on a verified sending domain of the organization,
with an optional display name, enabled or not; at most one is the default (the first one
added becomes it). The gate (`refusal`): once an organization has curated senders, a
campaign may only send From an enabled one, whoever drafts it; checked when a draft's
`fromEmail` is set (403 SENDER_NOT_ALLOWED) and again at preflight (the address may have
been disabled or removed since, and a campaign without `fromEmail` uses the
organization's default From). An organization without curated senders is not gated
(every address on a verified domain, as before the list existed) — upstream seeds the
default From address into an empty list instead, which comes to the same.
"""

from __future__ import annotations

from typing import Any

from owlat.app.lib.audience import organization_rows
from owlat.runtime import QueryCtx


async def senders_of(ctx: QueryCtx, organization_id: str) -> list[dict[str, Any]]:
    """The organization's senders, the default first, then by address."""
    rows = await organization_rows(ctx, "campaignSenders", organization_id)
    return sorted(rows, key=lambda row: (not row["isDefault"], row["email"]))


async def refusal(ctx: QueryCtx, organization_id: str, address: str) -> str | None:
    """Why the organization's campaigns may not send From `address`, or None."""
    rows = await senders_of(ctx, organization_id)
    if not rows:
        return None
    email = address.strip().lower()
    if any(row["email"] == email and row["isEnabled"] for row in rows):
        return None
    return (
        f"{email} is not one of the organization's campaign senders: "
        "choose an enabled sender, or ask an admin to add it"
    )
