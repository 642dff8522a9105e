"""Email and password: sign-up, sign-in, sign-out, password change and reset, email
verification (BetterAuth's `emailAndPassword` endpoints).

No enumeration: a wrong password and an unknown email get the same answer after the same
work (a full argon2 verification either way); a reset request is answered the same for
any address. A sign-up with a taken address mails the owner and answers as a new address
would be answered, with a decoy user (a fresh id, the submitted fields, nothing stored):
`token: null` when email verification is required, as for every sign-up then (BetterAuth's
own answer with `requireEmailVerification`); otherwise a token and a session cookie as
usual, but for a session that does not exist. Without required verification a follow-up
call (get-session) can still tell, since a real new account is signed in: only
`OWLAT_REQUIRE_EMAIL_VERIFICATION` closes that. (BetterAuth answers 422
`USER_ALREADY_EXISTS_USE_ANOTHER_EMAIL` there instead.)

Brute force: see `auth.sign_in_gate`; a device that proved the account's password (a sign-in,
a sign-up that signs in, a password reset) gets the known-device cookie.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from owlat.app.auth_routes.wire import (
    BadRequest,
    clear_session_cookie,
    client_ip,
    current_session,
    device_user_id,
    endpoint,
    error,
    field,
    json_body,
    new_session_token,
    ok,
    require_session,
    set_device_cookie,
    set_session_cookie,
    user_json,
)
from owlat.app.lib import mailer
from owlat.app.lib.emails import normalize_email
from owlat.app.lib.errors import AuthFailure
from owlat.app.lib.instance import current
from owlat.app.lib.passwords import check_rules, hash_password, verify_password
from owlat.app.lib.redirects import absolute_url, checked_redirect
from owlat.app.lib.tokens import random_token, token_hash
from owlat.runtime import ActionCtx, internal

INVALID_CREDENTIALS = ("INVALID_EMAIL_OR_PASSWORD", "Invalid email or password", 401)
# Reset, verification and sign-up-attempt mails per address per window (answers stay the
# same beyond it).
MAILS_PER_ADDRESS = 3
MAIL_WINDOW_MS = 15 * 60 * 1000


async def _may_mail(ctx: ActionCtx, purpose: str, email: str) -> bool:
    return bool(
        await ctx.run_mutation(
            internal.auth.allow_mail,
            {"key": f"{purpose}:{email}", "limit": MAILS_PER_ADDRESS, "windowMs": MAIL_WINDOW_MS},
        )
    )


async def _start_session(
    ctx: ActionCtx, request: Request, user_id: str
) -> tuple[str, dict[str, Any]]:
    token, hashed = new_session_token()
    session = await ctx.run_mutation(
        internal.auth.create_session,
        {
            "userId": user_id,
            "tokenHash": hashed,
            "ipAddress": client_ip(request),
            "userAgent": request.headers.get("user-agent", ""),
        },
    )
    return token, session


def _callback_url(body: dict[str, Any]) -> str | None:
    """The body's `callbackURL`, refused (400) unless it is a safe redirect target."""
    return checked_redirect(field(body, "callbackURL", required=False))


def _signed_in(body: dict[str, Any], token: str, user_id: str, remember: bool = True) -> Response:
    """The answer that signs a device in: `body`, the session cookie and the known-device
    cookie."""
    response = ok(body)
    set_session_cookie(response, token, remember=remember)
    set_device_cookie(response, user_id)
    return response


async def send_verification(ctx: ActionCtx, user: dict[str, Any], callback_url: str | None) -> None:
    if not await _may_mail(ctx, "verify-email", user["email"]):
        return
    token = random_token(40)
    await ctx.run_mutation(
        internal.auth.create_verification,
        {"userId": user["_id"], "purpose": "verify-email", "tokenHash": token_hash(token)},
    )
    link = mailer.verify_email_link(token, callback_url)
    await mailer.send(
        ctx,
        user["email"],
        "Verify your email address",
        f"Hello {user['name']},\n\nconfirm your email address for Owlat:\n{link}\n",
    )


@endpoint
async def sign_up(ctx: ActionCtx, request: Request) -> Response:
    body = await json_body(request)
    email, password, name = field(body, "email"), field(body, "password"), field(body, "name")
    image = field(body, "image", required=False)
    callback_url = _callback_url(body)
    password_hash = await hash_password(password, normalize_email(email))
    result = await ctx.run_mutation(
        internal.auth.create_user,
        {"email": email, "name": name, "passwordHash": password_hash}
        | ({"image": image} if image else {}),
    )
    if result["created"]:
        user = result["user"]
    else:
        await _tell_owner_of_sign_up(ctx, result["user"])
        user = result["decoy"]
    if current().require_email_verification:
        if result["created"]:
            await send_verification(ctx, user, callback_url)
        return ok({"token": None, "user": user_json(user)})
    if result["created"]:
        token, _ = await _start_session(ctx, request, user["_id"])
    else:
        token, _ = new_session_token()  # stored nowhere: it signs nobody in
    return _signed_in({"token": token, "user": user_json(user)}, token, user["_id"])


async def _tell_owner_of_sign_up(ctx: ActionCtx, owner: dict[str, Any]) -> None:
    if await _may_mail(ctx, "sign-up-attempt", owner["email"]):
        await mailer.send(
            ctx,
            owner["email"],
            "Someone tried to sign up with your address",
            f"Hello {owner['name']},\n\nsomeone tried to create an Owlat account with this "
            "address, which already has one. If this was you, sign in or reset your "
            "password; otherwise you can ignore this email.\n",
        )


@endpoint
async def sign_in(ctx: ActionCtx, request: Request) -> Response:
    body = await json_body(request)
    email, password = field(body, "email"), field(body, "password")
    callback_url = _callback_url(body)
    remember = body.get("rememberMe") is not False
    ip, device = client_ip(request), device_user_id(request)
    wait = await ctx.run_mutation(
        internal.auth.sign_in_gate,
        {"ip": ip, "email": email} | ({"deviceUserId": device} if device else {}),
    )
    if wait is not None:
        refusal = error("TOO_MANY_REQUESTS", "Too many requests. Please try again later.", 429)
        refusal.headers["x-retry-after"] = str(int(wait))
        return refusal
    credential = await ctx.run_query(internal.auth.find_credential, {"email": email})
    stored = None if credential is None else credential["passwordHash"]
    valid = await verify_password(stored, password)
    await ctx.run_mutation(
        internal.auth.sign_in_result, {"ip": ip, "email": email, "succeeded": valid}
    )
    if not valid or credential is None:
        return error(*INVALID_CREDENTIALS)
    user = credential["user"]
    if current().require_email_verification and not user["emailVerified"]:
        await send_verification(ctx, user, callback_url)
        return error("EMAIL_NOT_VERIFIED", "Email not verified", 403)
    token, _ = await _start_session(ctx, request, user["_id"])
    return _signed_in(
        {"redirect": False, "token": token, "user": user_json(user)}, token, user["_id"], remember
    )


@endpoint
async def sign_out(ctx: ActionCtx, request: Request) -> Response:
    found = await current_session(ctx, request)
    if found is not None:
        await ctx.run_mutation(
            internal.auth.delete_session, {"userId": found[1]["_id"], "sessionId": found[0]["_id"]}
        )
    response = ok({"success": True})
    clear_session_cookie(response)
    return response


@endpoint
async def change_password(ctx: ActionCtx, request: Request) -> Response:
    session, user, token = require_session(await current_session(ctx, request))
    body = await json_body(request)
    new_password = field(body, "newPassword")
    current_password = field(body, "currentPassword")
    check_rules(new_password, user["email"])
    credential = await ctx.run_query(internal.auth.find_credential, {"email": user["email"]})
    if not await verify_password(credential and credential["passwordHash"], current_password):
        return error("INVALID_PASSWORD", "Invalid password", 400)
    revoke = body.get("revokeOtherSessions") is True
    await ctx.run_mutation(
        internal.auth.set_password,
        {
            "userId": user["_id"],
            "passwordHash": await hash_password(new_password, user["email"]),
            "revokeSessions": revoke,
            "keepSessionId": session["_id"],
        },
    )
    return ok({"token": token if revoke else None, "user": user_json(user)})


@endpoint
async def request_password_reset(ctx: ActionCtx, request: Request) -> Response:
    body = await json_body(request)
    email = field(body, "email")
    normalize_email(email)
    redirect_to = checked_redirect(field(body, "redirectTo", required=False), "redirectTo")
    credential = await ctx.run_query(internal.auth.find_credential, {"email": email})
    if credential is not None and await _may_mail(
        ctx, "reset-password", credential["user"]["email"]
    ):
        token = random_token(40)
        user = credential["user"]
        await ctx.run_mutation(
            internal.auth.create_verification,
            {"userId": user["_id"], "purpose": "reset-password", "tokenHash": token_hash(token)},
        )
        link = mailer.reset_password_link(token, redirect_to)
        await mailer.send(
            ctx,
            user["email"],
            "Reset your password",
            f"Hello {user['name']},\n\nset a new Owlat password (the link works for one "
            f"hour):\n{link}\n\nIf you did not ask for this, ignore this email.\n",
        )
    return ok(
        {
            "status": True,
            "message": "If this email exists in our system, check your email for the reset link",
        }
    )


@endpoint
async def reset_password(ctx: ActionCtx, request: Request) -> Response:
    body = await json_body(request)
    token = field(body, "token", required=False) or request.query_params.get("token")
    new_password = field(body, "newPassword")
    if not token:
        raise BadRequest("token is required")
    reset = {"purpose": "reset-password", "tokenHash": token_hash(token)}
    email = await ctx.run_query(internal.auth.verification_email, reset)
    if email is None:
        return error("INVALID_TOKEN", "Invalid token", 400)
    password_hash = await hash_password(new_password, email)
    user_id = await ctx.run_mutation(internal.auth.consume_verification, reset)
    if user_id is None:
        return error("INVALID_TOKEN", "Invalid token", 400)
    await ctx.run_mutation(
        internal.auth.set_password,
        {"userId": user_id, "passwordHash": password_hash, "revokeSessions": True},
    )
    response = ok({"status": True})
    set_device_cookie(response, user_id)  # the mailbox is proven: this device is known
    return response


@endpoint
async def send_verification_email(ctx: ActionCtx, request: Request) -> Response:
    body = await json_body(request)
    email = field(body, "email")
    normalize_email(email)
    callback_url = _callback_url(body)
    found = await current_session(ctx, request)
    credential = await ctx.run_query(internal.auth.find_credential, {"email": email})
    if found is not None and found[1]["email"] != normalize_email(email):
        raise AuthFailure("EMAIL_MISMATCH", "Email mismatch")
    if credential is not None and not credential["user"]["emailVerified"]:
        await send_verification(ctx, credential["user"], callback_url)
    return ok({"status": True})


@endpoint
async def verify_email(ctx: ActionCtx, request: Request) -> Response:
    token = request.query_params.get("token")
    if not token:
        raise BadRequest("token is required")
    callback_url = checked_redirect(request.query_params.get("callbackURL"))
    user_id = await ctx.run_mutation(
        internal.auth.consume_verification,
        {"purpose": "verify-email", "tokenHash": token_hash(token)},
    )
    if user_id is None:
        return error("INVALID_TOKEN", "Invalid token", 400)
    if callback_url:
        return Response(status_code=302, headers={"location": absolute_url(callback_url)})
    return ok({"status": True, "user": None})
