"""Organization API keys for the REST API: create (admins; shown once), list (masked),
rename, revoke; `authenticate` is what `lib/api_key_auth.py` calls for each request.

A key is `lm_live_` + 32 alphanumerics; only its SHA-256 is stored, with its first 16
characters for display. Scopes are a non-empty subset of `SCOPES`.
"""

from __future__ import annotations

from typing import Any

from owlat.app.lib.documents import reread
from owlat.app.lib.errors import conflict, invalid, not_found
from owlat.app.lib.rate_limits import take_token
from owlat.app.lib.session_functions import session_mutation, session_query
from owlat.app.lib.session_organization import get_mutation_context, now_ms
from owlat.app.lib.tokens import random_token, token_hash
from owlat.runtime import MutationCtx, QueryCtx, internal_mutation, v

PREFIX = "lm_live_"
SCOPES = ("contacts:read", "contacts:write", "events:write", "transactional:send", "topics:write")
RATE_PER_SECOND = 10.0
BUCKET_CAPACITY = 15.0
LAST_USED_PRECISION_MS = 60_000


def _clean_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > 200:
        raise invalid("INVALID_NAME", "Name must be 1 to 200 characters")
    return name


def masked(key: dict[str, Any]) -> dict[str, Any]:
    """What listing shows of a key: never its hash."""
    return {
        "_id": key["_id"],
        "name": key["name"],
        "keyPrefix": key["keyPrefix"],
        "maskedKey": key["keyPrefix"] + "•" * 24,
        "scopes": key["scopes"],
        "isActive": key["isActive"],
        "lastUsedAt": key.get("lastUsedAt"),
        "revokedAt": key.get("revokedAt"),
        "expiresAt": key.get("expiresAt"),
        "createdAt": key["createdAt"],
    }


async def _admin_key(ctx: QueryCtx, key_id: str) -> tuple[Any, dict[str, Any]]:
    context = await get_mutation_context(ctx, require="organization:manage")
    normalized = ctx.db.normalize_id("apiKeys", key_id)
    key = None if normalized is None else await ctx.db.get(normalized)
    if key is None or key["organizationId"] != context.team_id:
        raise not_found("API key")
    return context, dict(key)


async def _create(ctx: MutationCtx, args: dict[str, Any]) -> dict[str, Any]:
    context = await get_mutation_context(ctx, require="organization:manage")
    return await insert_key(
        ctx, context.team_id, context.user_id, args["name"], args["scopes"], args.get("expiresAt")
    )


async def insert_key(
    ctx: MutationCtx,
    organization_id: str,
    user_id: str,
    name: str,
    scopes: list[str],
    expires_at: float | None = None,
) -> dict[str, Any]:
    """A new key of the organization, made by `user_id`, checked as `create` checks it:
    `{keyId, apiKey, keyPrefix, name}` (the only time the key is shown)."""
    name = _clean_name(name)
    scopes = list(dict.fromkeys(scopes))
    if not scopes:
        raise invalid("INVALID_SCOPES", "An API key needs at least one scope")
    unknown = [s for s in scopes if s not in SCOPES]
    if unknown:
        raise invalid(
            "INVALID_SCOPES", f"Unknown scopes: {', '.join(unknown)} (known: {', '.join(SCOPES)})"
        )
    now = now_ms()
    if expires_at is not None and expires_at <= now:
        raise invalid("INVALID_EXPIRY", "expiresAt must be in the future")
    api_key = PREFIX + random_token(32)
    record = {
        "organizationId": organization_id,
        "name": name,
        "keyHash": token_hash(api_key),
        "keyPrefix": api_key[:16],
        "scopes": scopes,
        "createdBy": user_id,
        "isActive": True,
        "createdAt": now,
        "updatedAt": now,
    }
    if expires_at is not None:
        record["expiresAt"] = expires_at
    key_id = await ctx.db.insert("apiKeys", record)
    return {"keyId": key_id, "apiKey": api_key, "keyPrefix": api_key[:16], "name": name}


create, create_via_session = session_mutation(
    args={"name": v.string(), "scopes": v.array(v.string()), "expiresAt": v.optional(v.number())}
)(_create)


async def _list(ctx: QueryCtx, args: dict[str, Any]) -> list[dict[str, Any]]:
    context = await get_mutation_context(ctx, require="organization:manage")
    keys = (
        await ctx.db.query("apiKeys")
        .with_index("by_org", lambda q: q.eq("organizationId", context.team_id))
        .collect()
    )
    return [masked(key) for key in keys]


list_by_team, list_by_team_via_session = session_query(args={})(_list)


async def _update_name(ctx: MutationCtx, args: dict[str, Any]) -> dict[str, Any]:
    _, key = await _admin_key(ctx, args["keyId"])
    await ctx.db.patch(key["_id"], {"name": _clean_name(args["name"]), "updatedAt": now_ms()})
    return masked(await reread(ctx, key["_id"]))


update_name, update_name_via_session = session_mutation(
    args={"keyId": v.string(), "name": v.string()}
)(_update_name)


async def _revoke(ctx: MutationCtx, args: dict[str, Any]) -> dict[str, Any]:
    _, key = await _admin_key(ctx, args["keyId"])
    if not key["isActive"]:
        raise conflict("ALREADY_REVOKED", "API key is already revoked")
    now = now_ms()
    await ctx.db.patch(key["_id"], {"isActive": False, "revokedAt": now, "updatedAt": now})
    return masked(await reread(ctx, key["_id"]))


revoke, revoke_via_session = session_mutation(args={"keyId": v.string()})(_revoke)


@internal_mutation(args={"keyHash": v.string()})
async def authenticate(ctx: MutationCtx, args: dict[str, Any]) -> dict[str, Any]:
    """Validate a key (by hash) and take a token from its bucket, in one step."""
    return await check_key(ctx, args["keyHash"])


async def check_key(ctx: MutationCtx, key_hash: str) -> dict[str, Any]:
    """`authenticate` inside the caller's mutation (an endpoint checking its key in the
    transaction of its work, rest_api/wire.py `keyed_endpoint`): `{status: "invalid"}`,
    `{status: "rate_limited", retryAfter}` or `{status: "ok", organizationId, keyId,
    scopes}`; a token is taken from the key's bucket unless invalid."""
    key = (
        await ctx.db.query("apiKeys")
        .with_index("by_key_hash", lambda q: q.eq("keyHash", key_hash))
        .unique()
    )
    now = now_ms()
    if (
        key is None
        or not key["isActive"]
        or (key.get("expiresAt") is not None and key["expiresAt"] <= now)
    ):
        return {"status": "invalid"}
    wait = await take_token(ctx, f"api-key:{key['_id']}", RATE_PER_SECOND, BUCKET_CAPACITY)
    if wait is not None:
        return {"status": "rate_limited", "retryAfter": wait}
    if now - (key.get("lastUsedAt") or 0) >= LAST_USED_PRECISION_MS:
        await ctx.db.patch(key["_id"], {"lastUsedAt": now})
    return {
        "status": "ok",
        "organizationId": key["organizationId"],
        "keyId": key["_id"],
        "scopes": key["scopes"],
    }
