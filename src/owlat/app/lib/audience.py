"""Audience helpers shared by contacts, contact properties, settings and suppression:
custom property value checks, the suppression check and the postal-address gate.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Sequence
from typing import Any
from zoneinfo import available_timezones

from owlat.app.lib.emails import normalize_email
from owlat.app.lib.errors import AppError, invalid
from owlat.runtime import QueryCtx, v

PROPERTY_KEY = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
MAX_LABEL = 200
MAX_STRING_VALUE = 10_000
RESERVED_KEYS = frozenset(
    {"email", "firstname", "lastname", "first_name", "last_name", "source", "language"}
    | {"timezone", "createdat", "updatedat", "unsubscribedat", "id", "_id"}
)


def clean_email(email: str) -> str:
    """Normalized address (trim, lower case), or "Invalid email address: <input>"."""
    try:
        return normalize_email(email)
    except AppError:
        shown = email.strip()[:80]
        raise invalid("INVALID_EMAIL", f"Invalid email address: {shown!r}") from None


def clean_timezone(value: str) -> str | None:
    value = value.strip()
    if value and value not in _timezones():
        raise invalid(
            "INVALID_TIMEZONE",
            f"Unknown timezone {value!r}: use an IANA name such as Europe/Berlin or UTC",
        )
    return value or None


_ZONES: set[str] = set()


def _timezones() -> set[str]:
    if not _ZONES:
        _ZONES.update(available_timezones())
        _ZONES.add("UTC")
    return _ZONES


def clean_property_value(definition: dict[str, Any], value: Any) -> Any:
    """`value` checked against the property's type (dates become epoch milliseconds)."""
    key, kind = definition["key"], definition["type"]
    if kind == "string":
        if not isinstance(value, str):
            raise invalid("INVALID_PROPERTY_VALUE", f'Property "{key}" must be a string')
        if len(value) > MAX_STRING_VALUE:
            raise invalid(
                "INVALID_PROPERTY_VALUE",
                f'Property "{key}" must be at most {MAX_STRING_VALUE} characters',
            )
        return value
    if kind == "number":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise invalid("INVALID_PROPERTY_VALUE", f'Property "{key}" must be a number')
        if not math.isfinite(value):
            raise invalid("INVALID_PROPERTY_VALUE", f'Property "{key}" must be a finite number')
        return float(value)
    if kind == "boolean":
        if not isinstance(value, bool):
            raise invalid("INVALID_PROPERTY_VALUE", f'Property "{key}" must be true or false')
        return value
    return _date_ms(key, value)


def _date_ms(key: str, value: Any) -> float:
    message = f'Property "{key}" must be a date (ISO 8601, e.g. 2024-05-31, or epoch milliseconds)'
    if isinstance(value, bool):
        raise invalid("INVALID_PROPERTY_VALUE", message)
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise invalid("INVALID_PROPERTY_VALUE", message)
        return float(value)
    if not isinstance(value, str):
        raise invalid("INVALID_PROPERTY_VALUE", message)
    text = value.strip()
    try:
        if len(text) == 10:
            day = dt.date.fromisoformat(text)
            parsed = dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)
        else:
            parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=dt.UTC)
    except ValueError:
        raise invalid("INVALID_PROPERTY_VALUE", message) from None
    return float(int(parsed.timestamp() * 1000))


async def organization_rows(
    ctx: QueryCtx, table: str, organization_id: str
) -> list[dict[str, Any]]:
    """Every document of `table` that belongs to the organization (its `by_org` index)."""
    rows = (
        await ctx.db.query(table)
        .with_index("by_org", lambda q: q.eq("organizationId", organization_id))
        .collect()
    )
    return [dict(row) for row in rows]


async def live_lists(ctx: QueryCtx, organization_id: str) -> list[dict[str, Any]]:
    """The organization's mailing lists that are not deleted."""
    rows = await organization_rows(ctx, "mailingLists", organization_id)
    return [row for row in rows if row.get("deletedAt") is None]


async def property_definitions(
    ctx: QueryCtx, organization_id: str, *, purging: bool = False
) -> dict[str, dict[str, Any]]:
    """The organization's property definitions by key (with those being removed if
    `purging`)."""
    rows = await organization_rows(ctx, "contactProperties", organization_id)
    return {row["key"]: row for row in rows if purging or not row.get("purging")}


async def blocked_entry(ctx: QueryCtx, organization_id: str, email: str) -> dict[str, Any] | None:
    found = (
        await ctx.db.query("blockedEmails")
        .with_index(
            "by_org_email", lambda q: q.eq("organizationId", organization_id).eq("email", email)
        )
        .first()
    )
    return None if found is None else dict(found)


async def blocked_entries(
    ctx: QueryCtx, keys: Sequence[tuple[str, str]]
) -> list[dict[str, Any] | None]:
    """`blocked_entry` of each (organization id, email) of `keys`, in order, read in one
    step (`db.lookup`: one engine call for a batch of sends)."""
    found = await ctx.db.lookup("blockedEmails", "by_org_email", keys)
    return [dict(rows[0]) if rows else None for rows in found]


async def is_suppressed(
    ctx: QueryCtx, organization_id: str, email: str, *, transactional: bool = False
) -> bool:
    """Whether mail to `email` must not be sent: any suppression row blocks marketing mail;
    transactional mail ignores `unengaged` rows (reference §10.2). An address that is not
    valid counts as suppressed."""
    try:
        normalized = normalize_email(email)
    except AppError:
        return True
    entry = await blocked_entry(ctx, organization_id, normalized)
    if entry is None:
        return False
    return not (transactional and entry["reason"] == "unengaged")


async def organization_settings(ctx: QueryCtx, organization_id: str) -> dict[str, Any] | None:
    found = (
        await ctx.db.query("organizationSettings")
        .with_index("by_org", lambda q: q.eq("organizationId", organization_id))
        .unique()
    )
    return None if found is None else dict(found)


async def require_postal_address(ctx: QueryCtx, organization_id: str) -> str:
    """The organization's postal address for marketing footers (CAN-SPAM), or an error
    naming the setting to fill in: every marketing send path calls this first."""
    settings = await organization_settings(ctx, organization_id)
    address = None if settings is None else settings.get("postalAddress")
    if not address:
        raise invalid(
            "POSTAL_ADDRESS_REQUIRED",
            "A postal address is required before sending marketing email: "
            "set it in organization settings",
        )
    return str(address)


# Convex's `paginationOptsValidator`.
PAGINATION_OPTS = v.object(
    {
        "numItems": v.number(),
        "cursor": v.union(v.string(), v.null()),
        "endCursor": v.optional(v.union(v.string(), v.null())),
        "id": v.optional(v.number()),
        "maximumRowsRead": v.optional(v.number()),
        "maximumBytesRead": v.optional(v.number()),
    }
)
MAX_PAGE = 500


def page_options(options: dict[str, Any]) -> dict[str, Any]:
    """The runtime's paginate() options, with the page size bounded."""
    num_items = options["numItems"]
    if options.get("endCursor") is None and not 1 <= num_items <= MAX_PAGE:
        raise invalid("INVALID_PAGE_SIZE", f"numItems must be 1 to {MAX_PAGE}")
    cleaned = {"numItems": num_items, "cursor": options["cursor"]}
    if options.get("endCursor") is not None:
        cleaned["endCursor"] = options["endCursor"]
    return cleaned


async def live_document(
    ctx: QueryCtx, table: str, organization_id: str, document_id: str
) -> dict[str, Any] | None:
    """The organization's live (not deleted) document of `table` by id, or None (also for
    a malformed id, another organization's document, or one of none: a system mail)."""
    normalized = ctx.db.normalize_id(table, document_id)
    found = None if normalized is None else await ctx.db.get(normalized)
    if found is None or found.get("organizationId") != organization_id or found.get("deletedAt"):
        return None
    return dict(found)
