"""Which sends are tracked, and where their links point.

Marketing sends (campaigns, automations) are tracked unless the organization turned
`tracking` off; transactional sends only when it turned `trackTransactional` on (receipts
and password resets are not marketing, and upstream never tracks them); test sends never.
Links point at the organization's first verified tracking domain (oldest first), else at
the site (`links.base_url_for`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from owlat.app.lib.audience import organization_rows, organization_settings
from owlat.app.lib.tracking.links import base_url_for
from owlat.runtime import QueryCtx

MARKETING_KINDS = frozenset({"campaign", "automation"})


async def tracking_host(ctx: QueryCtx, organization_id: str) -> str | None:
    """The organization's first verified tracking domain (oldest first), if any."""
    rows = await organization_rows(ctx, "trackingDomains", organization_id)
    verified = sorted((r for r in rows if r["status"] == "verified"), key=lambda r: r["createdAt"])
    return verified[0]["domain"] if verified else None


async def tracking_for(ctx: QueryCtx, send: Mapping[str, Any]) -> dict[str, Any] | None:
    """`{baseUrl}` when `send` is tracked (module docstring), else None."""
    kind = send["kind"]
    if kind not in MARKETING_KINDS and kind != "transactional":
        return None
    settings = await organization_settings(ctx, send["organizationId"]) or {}
    if kind == "transactional" and not settings.get("trackTransactional", False):
        return None
    if kind in MARKETING_KINDS and not settings.get("tracking", True):
        return None
    return {"baseUrl": base_url_for(await tracking_host(ctx, send["organizationId"]))}
