"""Scheduled actions that send the mails of committed changes (invitations, waitlist
approvals). Each mail carries an idempotency key: a retried job does not send twice."""

from __future__ import annotations

from typing import Any

from owlat.app.lib import mailer
from owlat.runtime import ActionCtx, QueryCtx, internal, internal_action, internal_query, v


@internal_query(args={"invitationId": v.id("invitations")})
async def invitation_details(ctx: QueryCtx, args: dict[str, Any]) -> dict[str, Any] | None:
    invitation = await ctx.db.get(args["invitationId"])
    if invitation is None or invitation["status"] != "pending":
        return None
    organization = await ctx.db.get(invitation["organizationId"])
    inviter = await ctx.db.get(invitation["inviterId"])
    return {
        "email": invitation["email"],
        "role": invitation["role"],
        "organizationName": organization["name"] if organization else "an organization",
        "inviterName": inviter["name"] if inviter else "Someone",
    }


@internal_action(args={"invitationId": v.id("invitations"), "sentAt": v.number()})
async def send_invitation(ctx: ActionCtx, args: dict[str, Any]) -> None:
    details = await ctx.run_query(
        internal.mail_jobs.invitation_details, {"invitationId": args["invitationId"]}
    )
    if details is None:
        return
    link = mailer.invitation_link(args["invitationId"], details["email"])
    await mailer.send(
        ctx,
        details["email"],
        f"You are invited to join {details['organizationName']} on Owlat",
        f"{details['inviterName']} invited you to join {details['organizationName']} as "
        f"{details['role']}.\n\nAccept the invitation (valid for 7 days):\n{link}\n",
        key=f"invitation-{args['invitationId']}-{int(args['sentAt'])}",
    )


@internal_action(args={"email": v.string(), "entryId": v.id("waitlistEntries")})
async def send_waitlist_approval(ctx: ActionCtx, args: dict[str, Any]) -> None:
    await mailer.send(
        ctx,
        args["email"],
        "Your Owlat account is approved",
        "Good news: a platform admin approved your account. You can now create or join "
        f"organizations:\n{mailer.app_link('/')}\n",
        key=f"waitlist-approved-{args['entryId']}",
    )
