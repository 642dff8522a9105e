"""Organization settings: default sender (from name/email, reply-to), the postal address
of marketing footers (required before any marketing send: `lib/audience.py`'s
`require_postal_address`), timezone (IANA) and brand theme (colors `#rrggbb`, logo URL).

Tracking (lib/tracking): `tracking` (default true) tracks opens and clicks of marketing
sends, `trackTransactional` (default false) of transactional sends too.

`get` (any member) answers the stored values, absent ones null; `update` (`settings:manage`)
changes the fields passed (null or "" clears one) after checking all of them.
`abuseStatus` (`clean` unless set) and its reason are read-only here: only the deployment's
admin sets them (`adminTools:setAbuseStatus`; suspended or banned, the organization sends
nothing: `lib/sending/intake.py`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from owlat.app.lib.audience import clean_email, clean_timezone, organization_settings
from owlat.app.lib.errors import invalid
from owlat.app.lib.session_organization import (
    get_mutation_context,
    get_team_id_from_session,
    now_ms,
)
from owlat.runtime import UNDEFINED, MutationCtx, QueryCtx, mutation, query, v

MAX_FROM_NAME = 200
MAX_POSTAL_ADDRESS = 1000
MAX_URL = 2000
COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")
FIELDS = ("defaultFromName", "defaultFromEmail", "replyToEmail", "postalAddress", "timezone")
COLORS = ("primaryColor", "backgroundColor", "textColor")
TRACKING_DEFAULTS = {"tracking": True, "trackTransactional": False}
_FROM_NAME_FORBIDDEN = re.compile(r"[\r\n<>\"]")
NULLABLE = v.optional(v.union(v.string(), v.null()))


def _view(organization_id: str, settings: dict[str, Any] | None) -> dict[str, Any]:
    stored = settings or {}
    theme = stored.get("brandTheme") or {}
    return {
        "organizationId": organization_id,
        **{field: stored.get(field) for field in FIELDS},
        **{field: stored.get(field, default) for field, default in TRACKING_DEFAULTS.items()},
        "brandTheme": {key: theme.get(key) for key in (*COLORS, "logoUrl")},
        "abuseStatus": stored.get("abuseStatus", "clean"),
        "abuseStatusReason": stored.get("abuseStatusReason"),
        "updatedAt": stored.get("updatedAt"),
    }


@query(args={})
async def get(ctx: QueryCtx, args: dict[str, Any]) -> dict[str, Any]:
    organization_id = await get_team_id_from_session(ctx)
    return _view(organization_id, await organization_settings(ctx, organization_id))


def _from_name(value: str) -> str | None:
    value = value.strip()
    if len(value) > MAX_FROM_NAME:
        raise invalid(
            "INVALID_FROM_NAME", f"Default from name must be at most {MAX_FROM_NAME} characters"
        )
    if _FROM_NAME_FORBIDDEN.search(value):
        raise invalid(
            "INVALID_FROM_NAME", 'Default from name must not contain line breaks, <, > or "'
        )
    return value or None


def _address(value: str) -> str | None:
    value = value.strip()
    if len(value) > MAX_POSTAL_ADDRESS:
        raise invalid(
            "INVALID_POSTAL_ADDRESS",
            f"Postal address must be at most {MAX_POSTAL_ADDRESS} characters",
        )
    return value or None


def _email(value: str) -> str | None:
    return clean_email(value) if value.strip() else None


def _logo_url(value: str) -> str | None:
    value = value.strip()
    if not value:
        return None
    parts = urlsplit(value)
    if len(value) > MAX_URL or parts.scheme not in ("https", "http") or not parts.netloc:
        raise invalid(
            "INVALID_LOGO_URL",
            f"Logo URL must be an http(s) URL of at most {MAX_URL} characters",
        )
    return value


def _color(key: str, value: str) -> str | None:
    value = value.strip()
    if value and not COLOR.match(value):
        raise invalid("INVALID_COLOR", f"{key} must be a color like #1a2b3c, got {value!r}")
    return value.lower() or None


CLEANERS = {
    "defaultFromName": _from_name,
    "defaultFromEmail": _email,
    "replyToEmail": _email,
    "postalAddress": _address,
    "timezone": clean_timezone,
}


@mutation(
    args={
        **{field: NULLABLE for field in FIELDS},
        "brandTheme": v.optional(v.object({key: NULLABLE for key in (*COLORS, "logoUrl")})),
        **{field: v.optional(v.boolean()) for field in TRACKING_DEFAULTS},
    }
)
async def update(ctx: MutationCtx, args: dict[str, Any]) -> dict[str, Any]:
    context = await get_mutation_context(ctx, require="settings:manage")
    stored = await organization_settings(ctx, context.team_id)
    changes: dict[str, Any] = {}
    for field, clean in CLEANERS.items():
        if field in args:
            value = None if args[field] is None else clean(args[field])
            changes[field] = UNDEFINED if value is None else value
    changes.update({field: args[field] for field in TRACKING_DEFAULTS if field in args})
    if "brandTheme" in args:
        theme = dict((stored or {}).get("brandTheme") or {})
        for key, value in args["brandTheme"].items():
            if key == "logoUrl":
                cleaned = None if value is None else _logo_url(value)
            else:
                cleaned = None if value is None else _color(key, value)
            if cleaned is None:
                theme.pop(key, None)
            else:
                theme[key] = cleaned
        changes["brandTheme"] = theme or UNDEFINED
    now = now_ms()
    changes.update({"updatedAt": now, "updatedBy": context.user_id})
    await store(ctx, context.team_id, stored, changes)
    return _view(context.team_id, await organization_settings(ctx, context.team_id))


async def store(
    ctx: MutationCtx,
    organization_id: str,
    stored: Mapping[str, Any] | None,
    changes: dict[str, Any],
) -> None:
    """Write `changes` (`UNDEFINED` clears a field) to the organization's settings row
    `stored`, inserting the row when there is none yet."""
    if stored is None:
        record = {k: val for k, val in changes.items() if val is not UNDEFINED}
        await ctx.db.insert("organizationSettings", {"organizationId": organization_id, **record})
    else:
        await ctx.db.patch(stored["_id"], changes)
