"""Users, credentials, sessions and emailed tokens: the functions behind `/api/auth`.

Everything here is internal except `getCurrentUser`: the HTTP endpoints
(`auth_routes/`) hash and verify passwords in actions (argon2 is slow on purpose) and call
these mutations for the quick, transactional part. Secrets (session, reset and
verification tokens) arrive already hashed.
"""

from __future__ import annotations

from typing import Any

from owlat.app.lib.documents import reread
from owlat.app.lib.emails import normalize_email
from owlat.app.lib.errors import AppError, AuthFailure
from owlat.app.lib.instance import current
from owlat.app.lib.rate_limits import clear, take_token, window_count
from owlat.app.lib.session_organization import get_user, now_ms
from owlat.app.lib.waitlist import is_waitlist_enabled
from owlat.runtime import (
    MutationCtx,
    QueryCtx,
    internal,
    internal_mutation,
    internal_query,
    query,
    v,
)

SESSION_MAX_AGE_MS = 7 * 24 * 3600 * 1000
# A session used a day after its expiry was last set gets a fresh 7 days (BetterAuth's
# `updateAge`).
SESSION_REFRESH_AFTER_MS = 24 * 3600 * 1000
PURGE_BATCH = 500
STALE_RATE_LIMIT_MS = 24 * 3600 * 1000
VERIFICATION_TTL_MS = {"reset-password": 3600 * 1000, "verify-email": 24 * 3600 * 1000}
PURPOSE = v.union(v.literal("reset-password"), v.literal("verify-email"))


async def _user_by_email(ctx: QueryCtx, email: str) -> dict[str, Any] | None:
    user = (
        await ctx.db.query("users").with_index("by_email", lambda q: q.eq("email", email)).unique()
    )
    return None if user is None else dict(user)


async def _account_of(ctx: QueryCtx, user_id: str) -> dict[str, Any] | None:
    account = (
        await ctx.db.query("accounts")
        .with_index("by_user", lambda q: q.eq("userId", user_id))
        .first()
    )
    return None if account is None else dict(account)


async def _user_of(ctx: QueryCtx, email: str) -> dict[str, Any] | None:
    """The user of an email as typed (None when unknown or malformed)."""
    try:
        return await _user_by_email(ctx, normalize_email(email))
    except AppError:
        return None


@query(args={})
async def get_current_user(ctx: QueryCtx, args: dict[str, Any]) -> dict[str, Any]:
    """The signed-in user (any session; no organization needed)."""
    user = await get_user(ctx)
    return {
        "_id": user["_id"],
        "email": user["email"],
        "name": user["name"],
        "emailVerified": user["emailVerified"],
        "isPlatformAdmin": bool(user.get("isPlatformAdmin")),
    }


@internal_query(args={"email": v.string()})
async def find_credential(ctx: QueryCtx, args: dict[str, Any]) -> dict[str, Any] | None:
    """The user of an email and its password hash (None when unknown or malformed)."""
    user = await _user_of(ctx, args["email"])
    if user is None:
        return None
    account = await _account_of(ctx, user["_id"])
    return {"user": user, "passwordHash": None if account is None else account["passwordHash"]}


@internal_mutation(
    args={
        "email": v.string(),
        "name": v.string(),
        "passwordHash": v.string(),
        "image": v.optional(v.string()),
        "emailVerified": v.optional(v.boolean()),
        "isPlatformAdmin": v.optional(v.boolean()),
    }
)
async def create_user(ctx: MutationCtx, args: dict[str, Any]) -> dict[str, Any]:
    """Create a user with a credential: `{created, userId, user}`. When the email is taken,
    `created` is False, `user` is the existing user and `decoy` the user a new account would
    have been (a fresh id, nothing written) for an answer that does not tell."""
    email = normalize_email(args["email"])
    name = args["name"].strip()
    if not name or len(name) > 200:
        raise AuthFailure("INVALID_NAME", "Name must be 1 to 200 characters")
    now = now_ms()
    user = {
        "email": email,
        "name": name,
        "emailVerified": bool(args.get("emailVerified", False)),
        "createdAt": now,
        "updatedAt": now,
    }
    if args.get("image"):
        user["image"] = args["image"]
    existing = await _user_by_email(ctx, email)
    if existing is not None:
        decoy = {"_id": ctx.db.new_id("users"), **user}
        return {"created": False, "userId": existing["_id"], "user": existing, "decoy": decoy}
    if args.get("isPlatformAdmin"):
        user["isPlatformAdmin"] = True
    user_id = await ctx.db.insert("users", user)
    await ctx.db.insert(
        "accounts",
        {
            "userId": user_id,
            "providerId": "credential",
            "passwordHash": args["passwordHash"],
            "createdAt": now,
            "updatedAt": now,
        },
    )
    if not args.get("isPlatformAdmin") and await is_waitlist_enabled(ctx):
        await ctx.db.insert(
            "waitlistEntries",
            {"userId": user_id, "email": email, "status": "waiting", "createdAt": now},
        )
    return {"created": True, "userId": user_id, "user": await ctx.db.get(user_id)}


@internal_mutation(
    args={
        "userId": v.id("users"),
        "tokenHash": v.string(),
        "ipAddress": v.optional(v.string()),
        "userAgent": v.optional(v.string()),
    }
)
async def create_session(ctx: MutationCtx, args: dict[str, Any]) -> dict[str, Any]:
    now = now_ms()
    session = {
        "userId": args["userId"],
        "tokenHash": args["tokenHash"],
        "expiresAt": now + SESSION_MAX_AGE_MS,
        "createdAt": now,
        "updatedAt": now,
    }
    for field in ("ipAddress", "userAgent"):
        if args.get(field):
            session[field] = args[field][:500]
    session_id = await ctx.db.insert("sessions", session)
    return await reread(ctx, session_id)


@internal_query(args={"tokenHash": v.string()})
async def session_by_token(ctx: QueryCtx, args: dict[str, Any]) -> dict[str, Any] | None:
    """The live session of a cookie token (hashed) and its user, or None."""
    session = await (
        ctx.db.query("sessions")
        .with_index("by_token_hash", lambda q: q.eq("tokenHash", args["tokenHash"]))
        .unique()
    )
    if session is None or session["expiresAt"] <= now_ms():
        return None
    user = await ctx.db.get(session["userId"])
    return None if user is None else {"session": session, "user": user}


@internal_mutation(args={"sessionId": v.id("sessions")})
async def refresh_session(ctx: MutationCtx, args: dict[str, Any]) -> bool:
    """Extend a session's expiry when it was set over a day ago; whether it was."""
    session = await ctx.db.get(args["sessionId"])
    now = now_ms()
    if (
        session is None
        or session["expiresAt"] - now > SESSION_MAX_AGE_MS - SESSION_REFRESH_AFTER_MS
    ):
        return False
    await ctx.db.patch(session["_id"], {"expiresAt": now + SESSION_MAX_AGE_MS, "updatedAt": now})
    return True


@internal_mutation(args={})
async def purge_expired(ctx: MutationCtx, args: dict[str, Any]) -> float:
    """Delete expired sessions and tokens and stale rate-limit rows (hourly, in batches of
    PURGE_BATCH per table, the next batch scheduled at once while one was full); how many
    were deleted."""
    now = now_ms()
    removed = [
        await _delete_before(ctx, "sessions", "by_expires", "expiresAt", now),
        await _delete_before(ctx, "verifications", "by_expires", "expiresAt", now),
        await _delete_before(ctx, "rateLimits", "by_since", "since", now - STALE_RATE_LIMIT_MS),
    ]
    if PURGE_BATCH in removed:
        await ctx.scheduler.run_after(0, internal.auth.purge_expired, {})
    return float(sum(removed))


async def _delete_before(
    ctx: MutationCtx, table: str, index: str, field: str, before: float
) -> int:
    """Delete up to PURGE_BATCH documents of `table` whose `field` (`index`'s first) is
    before `before`; how many."""
    rows = (
        await ctx.db.query(table).with_index(index, lambda q: q.lt(field, before)).take(PURGE_BATCH)
    )
    for row in rows:
        await ctx.db.delete(row["_id"])
    return len(rows)


@internal_query(args={"userId": v.id("users")})
async def list_sessions(ctx: QueryCtx, args: dict[str, Any]) -> list[dict[str, Any]]:
    now = now_ms()
    sessions = await (
        ctx.db.query("sessions")
        .with_index("by_user", lambda q: q.eq("userId", args["userId"]))
        .collect()
    )
    return [s for s in sessions if s["expiresAt"] > now]


@internal_mutation(args={"userId": v.id("users"), "sessionId": v.string()})
async def delete_session(ctx: MutationCtx, args: dict[str, Any]) -> bool:
    """Revoke one of the user's sessions (False when it is not theirs or gone)."""
    session_id = ctx.db.normalize_id("sessions", args["sessionId"])
    session = None if session_id is None else await ctx.db.get(session_id)
    if session is None or session["userId"] != args["userId"]:
        return False
    await ctx.db.delete(session_id)
    return True


async def _revoke_sessions(ctx: MutationCtx, user_id: str, keep: str | None) -> None:
    sessions = (
        await ctx.db.query("sessions")
        .with_index("by_user", lambda q: q.eq("userId", user_id))
        .collect()
    )
    for session in sessions:
        if session["_id"] != keep:
            await ctx.db.delete(session["_id"])


@internal_mutation(args={"userId": v.id("users"), "keepSessionId": v.optional(v.string())})
async def revoke_sessions(ctx: MutationCtx, args: dict[str, Any]) -> None:
    await _revoke_sessions(ctx, args["userId"], args.get("keepSessionId"))


@internal_mutation(
    args={
        "userId": v.id("users"),
        "passwordHash": v.string(),
        "revokeSessions": v.boolean(),
        "keepSessionId": v.optional(v.string()),
    }
)
async def set_password(ctx: MutationCtx, args: dict[str, Any]) -> None:
    account = await _account_of(ctx, args["userId"])
    now = now_ms()
    if account is None:
        await ctx.db.insert(
            "accounts",
            {
                "userId": args["userId"],
                "providerId": "credential",
                "passwordHash": args["passwordHash"],
                "createdAt": now,
                "updatedAt": now,
            },
        )
    else:
        await ctx.db.patch(account["_id"], {"passwordHash": args["passwordHash"], "updatedAt": now})
    if args["revokeSessions"]:
        await _revoke_sessions(ctx, args["userId"], args.get("keepSessionId"))


@internal_mutation(args={"userId": v.id("users"), "purpose": PURPOSE, "tokenHash": v.string()})
async def create_verification(ctx: MutationCtx, args: dict[str, Any]) -> None:
    """Store an emailed token (an earlier one of the same purpose stops working)."""
    earlier = (
        await ctx.db.query("verifications")
        .with_index("by_user", lambda q: q.eq("userId", args["userId"]))
        .collect()
    )
    for row in earlier:
        if row["purpose"] == args["purpose"]:
            await ctx.db.delete(row["_id"])
    now = now_ms()
    await ctx.db.insert(
        "verifications",
        {
            "purpose": args["purpose"],
            "tokenHash": args["tokenHash"],
            "userId": args["userId"],
            "expiresAt": now + VERIFICATION_TTL_MS[args["purpose"]],
            "createdAt": now,
        },
    )


async def _verification(ctx: QueryCtx, purpose: str, hashed: str) -> dict[str, Any] | None:
    """The stored token of `purpose` with this hash (expired or not), or None."""
    row = await (
        ctx.db.query("verifications")
        .with_index("by_token_hash", lambda q: q.eq("tokenHash", hashed))
        .unique()
    )
    return None if row is None or row["purpose"] != purpose else dict(row)


@internal_query(args={"purpose": PURPOSE, "tokenHash": v.string()})
async def verification_email(ctx: QueryCtx, args: dict[str, Any]) -> str | None:
    """The email of the user of a valid token, which stays unused; None when invalid or
    expired (a new password is checked against the email before the token is spent)."""
    row = await _verification(ctx, args["purpose"], args["tokenHash"])
    if row is None or row["expiresAt"] <= now_ms():
        return None
    user = await ctx.db.get(row["userId"])
    return None if user is None else str(user["email"])


@internal_mutation(args={"purpose": PURPOSE, "tokenHash": v.string()})
async def consume_verification(ctx: MutationCtx, args: dict[str, Any]) -> str | None:
    """The user id of a valid token, which is used up; None when invalid or expired."""
    row = await _verification(ctx, args["purpose"], args["tokenHash"])
    if row is None:
        return None
    await ctx.db.delete(row["_id"])
    if row["expiresAt"] <= now_ms():
        return None
    user_id: str = row["userId"]
    if args["purpose"] == "verify-email":
        await ctx.db.patch(user_id, {"emailVerified": True, "updatedAt": now_ms()})
    return user_id


def _account_key(email: str) -> str | None:
    """The rate-limit key of an account's failed sign-ins (None for a malformed email, which
    no account has: a normalized address has no `:`, so keys cannot collide)."""
    try:
        return f"sign-in:account:{normalize_email(email)}"
    except AppError:
        return None


@internal_mutation(
    args={"ip": v.string(), "email": v.string(), "deviceUserId": v.optional(v.string())}
)
async def sign_in_gate(ctx: MutationCtx, args: dict[str, Any]) -> float | None:
    """Count a sign-in attempt; seconds to wait, or None to go ahead.

    Nobody can lock an account's owner out by failing on purpose:
    - an address over `sign_in_attempts_per_ip` attempts (any account) waits;
    - an address with `sign_in_failures_per_address` failures on this account waits, but
      only that address and only for this account;
    - an account with `sign_in_failures_per_account` failures from all addresses together
      is slowed, not locked: one attempt per `sign_in_slow_seconds` from devices that never
      signed in to it, while a device that did (`deviceUserId`, from its signed cookie, is
      this account's user) goes ahead at once.
    """
    instance = current()
    window = instance.sign_in_window_seconds * 1000
    now = now_ms()
    attempts, ip_reset = await window_count(ctx, f"sign-in:ip:{args['ip']}", window)
    if attempts > instance.sign_in_attempts_per_ip:
        return max(1.0, (ip_reset - now) / 1000)
    account = _account_key(args["email"])
    if account is None:
        return None
    failures, pair_reset = await window_count(ctx, f"{account}:ip:{args['ip']}", window, add=0)
    if failures >= instance.sign_in_failures_per_address:
        return max(1.0, (pair_reset - now) / 1000)
    failures, _ = await window_count(ctx, account, window, add=0)
    if failures < instance.sign_in_failures_per_account:
        return None
    if args.get("deviceUserId"):
        user = await _user_of(ctx, args["email"])
        if user is not None and user["_id"] == args["deviceUserId"]:
            return None
    return await take_token(ctx, f"{account}:slow", 1 / instance.sign_in_slow_seconds, 1)


@internal_mutation(args={"ip": v.string(), "email": v.string(), "succeeded": v.boolean()})
async def sign_in_result(ctx: MutationCtx, args: dict[str, Any]) -> None:
    """Count a failure against the (account, address) pair and the account; a success
    clears the pair's (the account's count runs out with its window: a correct password
    from one address says nothing about the others)."""
    account = _account_key(args["email"])
    if account is None:
        return
    if args["succeeded"]:
        await clear(ctx, f"{account}:ip:{args['ip']}")
        return
    window = current().sign_in_window_seconds * 1000
    await window_count(ctx, f"{account}:ip:{args['ip']}", window)
    await window_count(ctx, account, window)


@internal_mutation(args={"key": v.string(), "limit": v.number(), "windowMs": v.number()})
async def allow_mail(ctx: MutationCtx, args: dict[str, Any]) -> bool:
    """Whether one more mail may go to `key` in this window (reset and verification
    mails: a flood of requests must not flood a mailbox)."""
    count, _ = await window_count(ctx, f"mail:{args['key']}", args["windowMs"])
    return bool(count <= args["limit"])


@internal_mutation(args={"email": v.string(), "name": v.string(), "passwordHash": v.string()})
async def create_platform_admin(ctx: MutationCtx, args: dict[str, Any]) -> str:
    """A verified platform admin (`owlat admin create`); an existing user is promoted and
    gets the given password."""
    email = normalize_email(args["email"])
    existing = await _user_by_email(ctx, email)
    if existing is not None:
        await ctx.db.patch(existing["_id"], {"isPlatformAdmin": True, "updatedAt": now_ms()})
        await ctx.run_mutation(
            internal.auth.set_password,
            {
                "userId": existing["_id"],
                "passwordHash": args["passwordHash"],
                "revokeSessions": True,
            },
        )
        return str(existing["_id"])
    result = await ctx.run_mutation(
        internal.auth.create_user,
        {**args, "emailVerified": True, "isPlatformAdmin": True},
    )
    return str(result["userId"])
