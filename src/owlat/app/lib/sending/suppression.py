"""Who must not get a message, by send kind (reference §10.2).

    kind           blocked by a blockedEmails row   blocked by contacts.unsubscribedAt
    campaign       any reason                       yes
    automation     any reason                       yes (marketing mail, as campaigns)
    transactional  any reason except `unengaged`    no (receipts, resets: asked for)
    test           never                            never (and records nothing)

An address that is not valid counts as suppressed. Checked when a send is claimed, right
before the provider call (`sends.py`), so a block added after enqueueing still holds.
"""

from __future__ import annotations

from typing import Any

from owlat.app.lib.audience import blocked_entry
from owlat.app.lib.contacts import live_by_email
from owlat.app.lib.emails import normalize_email
from owlat.app.lib.errors import AppError
from owlat.app.lib.sending.composition import SendKind
from owlat.runtime import QueryCtx

MARKETING = frozenset({SendKind.CAMPAIGN, SendKind.AUTOMATION})


def suppression_reason(
    kind: SendKind, email: str, blocked_reason: str | None, unsubscribed: bool
) -> str | None:
    """Why a `kind` send to `email` must not go out (the table above), or None."""
    if kind is SendKind.TEST:
        return None
    if blocked_reason is not None and not (
        kind is SendKind.TRANSACTIONAL and blocked_reason == "unengaged"
    ):
        return f"{email} is on the suppression list ({blocked_reason})"
    if unsubscribed and kind in MARKETING:
        return f"{email} unsubscribed from all marketing email"
    return None


async def suppressed(
    ctx: QueryCtx, organization_id: str, kind: SendKind, email: str, contact_id: str | None
) -> str | None:
    """`suppression_reason` from the organization's suppression list and the contact (by
    id, else by address)."""
    if kind is SendKind.TEST:
        return None
    try:
        normalized = normalize_email(email)
    except AppError:
        return f"{email!r} is not a valid address"
    entry = await blocked_entry(ctx, organization_id, normalized)
    # only marketing mail asks whether the contact unsubscribed
    contact = (
        await _contact(ctx, organization_id, normalized, contact_id) if kind in MARKETING else None
    )
    unsubscribed = contact is not None and contact.get("unsubscribedAt") is not None
    reason = None if entry is None else entry["reason"]
    return suppression_reason(kind, normalized, reason, unsubscribed)


async def _contact(
    ctx: QueryCtx, organization_id: str, email: str, contact_id: str | None
) -> dict[str, Any] | None:
    if contact_id is None:
        return await live_by_email(ctx, organization_id, email)
    found = await ctx.db.get(contact_id)
    return None if found is None or found["organizationId"] != organization_id else dict(found)
