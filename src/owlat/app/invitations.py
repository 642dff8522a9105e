"""Invitations: invite by email with a role (7-day expiry; resend at most once a minute),
accept, reject, cancel, get, list. The invitation mail is sent by a scheduled action
(`mail_jobs.py`) that runs only if the invitation committed.

An invitation belongs to whoever controls its address, not to whoever signs up with it
first: the recipient may see, accept or reject it, and list their invitations, only once
their email is verified, whatever OWLAT_REQUIRE_EMAIL_VERIFICATION says. The mail's link
carries a token (`mailer.invitation_token`) that proves the mail was read: seeing the
invitation with it needs no verification, and accepting or rejecting with it verifies the
address."""

from __future__ import annotations

from typing import Any

from owlat.app.lib import mailer
from owlat.app.lib.documents import reread
from owlat.app.lib.emails import normalize_email
from owlat.app.lib.errors import AuthFailure, admin_required
from owlat.app.lib.organizations import organization_of
from owlat.app.lib.permissions import is_admin_role
from owlat.app.lib.session_functions import session_mutation, session_query
from owlat.app.lib.session_organization import get_membership, get_session, get_user, now_ms
from owlat.app.lib.tokens import same_secret
from owlat.app.lib.waitlist import require_off_waitlist
from owlat.app.schema import ROLE
from owlat.runtime import MutationCtx, QueryCtx, internal, v

EXPIRY_MS = 7 * 24 * 3600 * 1000
RESEND_INTERVAL_MS = 60 * 1000
MAX_MEMBERS = 50


def invitation_not_found() -> AuthFailure:
    return AuthFailure("INVITATION_NOT_FOUND", "Invitation not found")


def verification_required(responding: bool = False) -> AuthFailure:
    """BetterAuth's refusals of an unverified recipient: to answer, or to see."""
    if responding:
        return AuthFailure(
            "EMAIL_VERIFICATION_REQUIRED_BEFORE_ACCEPTING_OR_REJECTING_INVITATION",
            "Email verification required before accepting or rejecting invitation",
        )
    return AuthFailure(
        "EMAIL_VERIFICATION_REQUIRED_FOR_INVITATION",
        "Email verification required to view invitations",
    )


async def _invitation(ctx: QueryCtx, invitation_id: str) -> dict[str, Any]:
    normalized = ctx.db.normalize_id("invitations", invitation_id)
    invitation = None if normalized is None else await ctx.db.get(normalized)
    if invitation is None:
        raise invitation_not_found()
    return dict(invitation)


async def _as_recipient(
    ctx: QueryCtx, args: dict[str, Any], *, responding: bool = False
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(session, user, invitation) when the caller is the recipient of a pending one with
    a verified email, or presents the token of its link (refusals differ when
    `responding`: to accept or reject)."""
    session = await get_session(ctx)
    invitation = await _invitation(ctx, args["invitationId"])
    user = await ctx.db.get(session["userId"])
    if user is None or user["email"] != invitation["email"]:
        raise AuthFailure(
            "YOU_ARE_NOT_THE_RECIPIENT_OF_THE_INVITATION",
            "You are not the recipient of the invitation",
        )
    if invitation["status"] != "pending" or invitation["expiresAt"] <= now_ms():
        raise invitation_not_found()
    if not user["emailVerified"]:
        link_token = mailer.invitation_token(invitation["_id"], invitation["email"])
        if not same_secret(args.get("token") or "", link_token):
            raise verification_required(responding)
    return session, dict(user), invitation


async def _as_responding_recipient(
    ctx: MutationCtx, args: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """`_as_recipient` to accept or reject: the token of the link, which stands for a
    verified email, marks the email verified."""
    session, user, invitation = await _as_recipient(ctx, args, responding=True)
    if not user["emailVerified"]:
        await ctx.db.patch(user["_id"], {"emailVerified": True, "updatedAt": now_ms()})
        user = await reread(ctx, user["_id"])
    return session, user, invitation


async def _as_admin_of(
    ctx: QueryCtx, organization_id: str | None
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    session = await get_session(ctx)
    organization, member = await organization_of(ctx, session, organization_id)
    if not is_admin_role(member["role"]):
        raise admin_required()
    return session, organization, member


async def _invite(ctx: MutationCtx, args: dict[str, Any]) -> dict[str, Any]:
    session, organization, member = await _as_admin_of(ctx, args.get("organizationId"))
    if args["role"] == "owner" and member["role"] != "owner":
        raise AuthFailure("OWNER_ACCESS_REQUIRED", "Only an owner can invite an owner")
    email = normalize_email(args["email"])
    organization_id = organization["_id"]
    existing_user = (
        await ctx.db.query("users").with_index("by_email", lambda q: q.eq("email", email)).unique()
    )
    if existing_user is not None and await get_membership(
        ctx, organization_id, existing_user["_id"]
    ):
        raise AuthFailure(
            "USER_IS_ALREADY_A_MEMBER_OF_THIS_ORGANIZATION",
            "User is already a member of this organization",
        )
    members = (
        await ctx.db.query("members")
        .with_index("by_org", lambda q: q.eq("organizationId", organization_id))
        .collect()
    )
    if len(members) >= MAX_MEMBERS:
        raise AuthFailure(
            "ORGANIZATION_MEMBERSHIP_LIMIT_REACHED",
            f"Organization membership limit reached ({MAX_MEMBERS} members)",
        )
    now = now_ms()
    pending = [
        i
        for i in await ctx.db.query("invitations")
        .with_index(
            "by_org_and_email", lambda q: q.eq("organizationId", organization_id).eq("email", email)
        )
        .collect()
        if i["status"] == "pending" and i["expiresAt"] > now
    ]
    if pending:
        invitation = pending[0]
        if not args.get("resend"):
            raise AuthFailure(
                "USER_IS_ALREADY_INVITED_TO_THIS_ORGANIZATION",
                "User is already invited to this organization",
            )
        if now - invitation["lastSentAt"] < RESEND_INTERVAL_MS:
            raise AuthFailure(
                "TOO_MANY_REQUESTS", "The invitation email can be resent once per minute"
            )
        await ctx.db.patch(
            invitation["_id"],
            {"role": args["role"], "expiresAt": now + EXPIRY_MS, "lastSentAt": now},
        )
        invitation_id = invitation["_id"]
    else:
        invitation_id = await ctx.db.insert(
            "invitations",
            {
                "organizationId": organization_id,
                "email": email,
                "role": args["role"],
                "status": "pending",
                "inviterId": session["userId"],
                "expiresAt": now + EXPIRY_MS,
                "lastSentAt": now,
                "createdAt": now,
            },
        )
    await ctx.scheduler.run_after(
        0, internal.mail_jobs.send_invitation, {"invitationId": invitation_id, "sentAt": now}
    )
    return await reread(ctx, invitation_id)


invite, invite_via_session = session_mutation(
    args={
        "email": v.string(),
        "role": ROLE,
        "organizationId": v.optional(v.string()),
        "resend": v.optional(v.boolean()),
    }
)(_invite)


async def _accept(ctx: MutationCtx, args: dict[str, Any]) -> dict[str, Any]:
    session, user, invitation = await _as_responding_recipient(ctx, args)
    await require_off_waitlist(ctx, user["_id"])
    organization_id = invitation["organizationId"]
    member = await get_membership(ctx, organization_id, user["_id"])
    if member is None:
        member_id = await ctx.db.insert(
            "members",
            {
                "organizationId": organization_id,
                "userId": user["_id"],
                "role": invitation["role"],
                "createdAt": now_ms(),
            },
        )
        member = await reread(ctx, member_id)
    await ctx.db.patch(invitation["_id"], {"status": "accepted"})
    await ctx.db.patch(
        session["_id"], {"activeOrganizationId": organization_id, "updatedAt": now_ms()}
    )
    return {"invitation": await reread(ctx, invitation["_id"]), "member": member}


# `token`: the one of the invitation mail's link (see the module docstring).
RECIPIENT_ARGS = {"invitationId": v.string(), "token": v.optional(v.string())}

accept, accept_via_session = session_mutation(args=RECIPIENT_ARGS)(_accept)


async def _reject(ctx: MutationCtx, args: dict[str, Any]) -> dict[str, Any]:
    _, _, invitation = await _as_responding_recipient(ctx, args)
    await ctx.db.patch(invitation["_id"], {"status": "rejected"})
    return {"invitation": await reread(ctx, invitation["_id"]), "member": None}


reject, reject_via_session = session_mutation(args=RECIPIENT_ARGS)(_reject)


async def _cancel(ctx: MutationCtx, args: dict[str, Any]) -> dict[str, Any]:
    session = await get_session(ctx)
    invitation = await _invitation(ctx, args["invitationId"])
    member = await get_membership(ctx, invitation["organizationId"], session["userId"])
    if member is None:
        raise invitation_not_found()
    if not is_admin_role(member["role"]):
        raise admin_required()
    if invitation["status"] != "pending":
        raise AuthFailure(
            "INVITATION_NOT_PENDING", f"The invitation is already {invitation['status']}"
        )
    await ctx.db.patch(invitation["_id"], {"status": "canceled"})
    return await reread(ctx, invitation["_id"])


cancel, cancel_via_session = session_mutation(args={"invitationId": v.string()})(_cancel)


async def _get(ctx: QueryCtx, args: dict[str, Any]) -> dict[str, Any]:
    """A pending invitation addressed to the caller, with its organization's name."""
    _, _, invitation = await _as_recipient(ctx, args)
    organization = await ctx.db.get(invitation["organizationId"])
    inviter = await ctx.db.get(invitation["inviterId"])
    return {
        **invitation,
        "organizationName": organization["name"] if organization else None,
        "organizationSlug": organization["slug"] if organization else None,
        "inviterEmail": inviter["email"] if inviter else None,
    }


get, get_via_session = session_query(args=RECIPIENT_ARGS)(_get)


async def _list(ctx: QueryCtx, args: dict[str, Any]) -> list[dict[str, Any]]:
    session = await get_session(ctx)
    organization, _ = await organization_of(ctx, session, args.get("organizationId"))
    rows = (
        await ctx.db.query("invitations")
        .with_index("by_org", lambda q: q.eq("organizationId", organization["_id"]))
        .collect()
    )
    return [dict(row) for row in rows]


list_for_organization, list_for_organization_via_session = session_query(
    args={"organizationId": v.optional(v.string())}
)(_list)


async def _list_mine(ctx: QueryCtx, args: dict[str, Any]) -> list[dict[str, Any]]:
    user = await get_user(ctx)
    if not user["emailVerified"]:
        raise verification_required()
    rows = (
        await ctx.db.query("invitations")
        .with_index("by_email", lambda q: q.eq("email", user["email"]))
        .collect()
    )
    now = now_ms()
    return [dict(r) for r in rows if r["status"] == "pending" and r["expiresAt"] > now]


list_mine, list_mine_via_session = session_query(args={})(_list_mine)
