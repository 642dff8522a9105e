"""invitations:* and members:* — invite, accept/reject/cancel/resend, roles, remove, leave."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest

from owlat.runtime import ConvexError
from owlat.runtime.application import Application
from owlat.runtime.errors import ArgumentValidationError
from owlat.runtime.testing import in_mutation
from tests.app.conftest import Caller, mail_text, outbox, signed_in, with_organization


@pytest.fixture
async def owlat(owlat_on_both_engines: Application) -> Application:
    """These tests run on SQLite and PostgreSQL."""
    return owlat_on_both_engines


async def _team(owlat: Application) -> tuple[Caller, Caller, str]:
    owner = await signed_in(owlat, "owner@example.com")
    organization_id = await with_organization(owner, "acme")
    member = await signed_in(owlat, "member@example.com")
    return owner, member, organization_id


async def _join(owner: Caller, member: Caller, role: str = "editor") -> dict[str, Any]:
    invitation = await owner.mutation("invitations:invite", {"email": member.email, "role": role})
    accepted = await member.mutation("invitations:accept", {"invitationId": invitation["_id"]})
    return dict(accepted["member"])


async def test_invite_sends_a_mail_with_the_link(owlat: Application, tmp_path: Any) -> None:
    owner, member, organization_id = await _team(owlat)
    invitation = await owner.mutation(
        "invitations:invite", {"email": " Member@Example.com ", "role": "admin"}
    )
    assert (invitation["email"], invitation["role"], invitation["status"]) == (
        "member@example.com",
        "admin",
        "pending",
    )
    assert invitation["expiresAt"] - invitation["createdAt"] == 7 * 24 * 3600 * 1000
    for _ in range(100):
        if outbox(tmp_path):
            break
        await asyncio.sleep(0.02)
    (mail,) = outbox(tmp_path)
    assert mail["To"] == "member@example.com"
    assert f"/invite/accept?id={invitation['_id']}" in mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    details = await member.query("invitations:get", {"invitationId": invitation["_id"]})
    assert (details["organizationName"], details["inviterEmail"]) == ("Acme", "owner@example.com")
    accepted = await member.mutation("invitations:accept", {"invitationId": invitation["_id"]})
    assert accepted["member"]["role"] == "admin"
    assert (await member.query("organizations:getActive"))["_id"] == organization_id
    with pytest.raises(ConvexError, match="^Invitation not found$"):
        await member.mutation("invitations:accept", {"invitationId": invitation["_id"]})


async def _mailed_link(data_dir: Any, email: str) -> tuple[str, str]:
    """(invitation id, token) of the link in the invitation mail sent to `email`."""
    for _ in range(200):
        for mail in outbox(data_dir):
            text = mail_text(mail)
            found = re.search(r"/invite/accept\?id=(\w+)&token=([\w-]+)", text)
            if mail["To"] == email and found:
                return found.group(1), found.group(2)
        await asyncio.sleep(0.02)
    raise AssertionError(f"no invitation mail to {email}")


VIEW_REFUSED = "^Email verification required to view invitations$"
RESPONSE_REFUSED = "^Email verification required before accepting or rejecting invitation$"


async def test_an_unverified_account_cannot_take_over_an_invitation(owlat: Application) -> None:
    """The issue's attack with the defaults: an admin invites an address that has no
    account; someone signs up with it (no verification) and tries to list, see and accept
    the invitation. Everything is refused and nothing changes."""
    owner = await signed_in(owlat, "owner@example.com")
    organization_id = await with_organization(owner, "acme")
    invitation = await owner.mutation(
        "invitations:invite", {"email": "newhire@corp.com", "role": "admin"}
    )
    squatter = await signed_in(owlat, "newhire@corp.com", verified=False)
    with pytest.raises(ConvexError, match=VIEW_REFUSED):
        await squatter.query("invitations:listMine")
    with pytest.raises(ConvexError, match=VIEW_REFUSED):
        await squatter.query("invitations:get", {"invitationId": invitation["_id"]})
    for path in ("invitations:accept", "invitations:reject"):
        for token in ({}, {"token": "guessed"}, {"token": "ünïcode"}, {"token": ""}):
            with pytest.raises(ConvexError, match=RESPONSE_REFUSED):
                await squatter.mutation(path, {"invitationId": invitation["_id"], **token})
    (pending,) = await owner.query("invitations:listForOrganization", {})
    assert (pending["_id"], pending["status"]) == (invitation["_id"], "pending")
    members = await owner.query("organizations:listMembers", {"organizationId": organization_id})
    assert [m["userId"] for m in members] == [owner.user_id]
    assert (await squatter.query("auth:getCurrentUser"))["emailVerified"] is False


@pytest.mark.parametrize(("path", "status"), [("accept", "accepted"), ("reject", "rejected")])
async def test_the_invitation_link_verifies_the_address(
    owlat: Application, tmp_path: Any, path: str, status: str
) -> None:
    """Whoever has the mail's link has read the mail: with its token the recipient sees
    the invitation, and answering it verifies their address."""
    owner = await signed_in(owlat, "owner@example.com")
    await with_organization(owner, "acme")
    invitation = await owner.mutation(
        "invitations:invite", {"email": "newhire@corp.com", "role": "editor"}
    )
    newhire = await signed_in(owlat, "newhire@corp.com", verified=False)
    invitation_id, token = await _mailed_link(tmp_path, "newhire@corp.com")
    assert invitation_id == invitation["_id"]
    seen = await newhire.query("invitations:get", {"invitationId": invitation_id, "token": token})
    assert seen["organizationName"] == "Acme"
    assert (await newhire.query("auth:getCurrentUser"))["emailVerified"] is False
    answered = await newhire.mutation(
        f"invitations:{path}", {"invitationId": invitation_id, "token": token}
    )
    assert answered["invitation"]["status"] == status
    assert (await newhire.query("auth:getCurrentUser"))["emailVerified"] is True
    assert await newhire.query("invitations:listMine") == []


async def test_invite_refusals(owlat: Application) -> None:
    owner, member, _ = await _team(owlat)
    admin = await signed_in(owlat, "admin@example.com")
    await _join(owner, admin, "admin")
    with pytest.raises(ConvexError, match="^Invalid email$"):
        await owner.mutation("invitations:invite", {"email": "nope", "role": "editor"})
    with pytest.raises(ConvexError, match="^Only an owner can invite an owner$"):
        await admin.mutation("invitations:invite", {"email": "x@example.com", "role": "owner"})
    with pytest.raises(ConvexError, match="^User is already a member of this organization$"):
        await owner.mutation("invitations:invite", {"email": admin.email, "role": "editor"})
    await owner.mutation("invitations:invite", {"email": member.email, "role": "editor"})
    with pytest.raises(ConvexError, match="^User is already invited to this organization$"):
        await owner.mutation("invitations:invite", {"email": member.email, "role": "editor"})
    with pytest.raises(ConvexError, match="^The invitation email can be resent once per minute$"):
        await owner.mutation(
            "invitations:invite", {"email": member.email, "role": "editor", "resend": True}
        )
    with pytest.raises(ArgumentValidationError, match=r"Path: \.role"):
        await owner.mutation("invitations:invite", {"email": member.email, "role": "god"})


async def test_resend_after_a_minute(owlat: Application) -> None:
    owner, member, _ = await _team(owlat)
    invitation = await owner.mutation(
        "invitations:invite", {"email": member.email, "role": "editor"}
    )

    async def age(ctx: Any) -> None:
        await ctx.db.patch(invitation["_id"], {"lastSentAt": invitation["lastSentAt"] - 61_000})

    await in_mutation(owlat, age)
    resent = await owner.mutation(
        "invitations:invite", {"email": member.email, "role": "admin", "resend": True}
    )
    assert resent["_id"] == invitation["_id"] and resent["role"] == "admin"


async def test_only_the_recipient_accepts_or_rejects(owlat: Application) -> None:
    owner, member, _ = await _team(owlat)
    stranger = await signed_in(owlat, "stranger@example.com")
    invitation = await owner.mutation(
        "invitations:invite", {"email": member.email, "role": "editor"}
    )
    for path in ("invitations:accept", "invitations:reject"):
        with pytest.raises(ConvexError, match="^You are not the recipient of the invitation$"):
            await stranger.mutation(path, {"invitationId": invitation["_id"]})
    rejected = await member.mutation("invitations:reject", {"invitationId": invitation["_id"]})
    assert rejected["invitation"]["status"] == "rejected" and rejected["member"] is None
    with pytest.raises(ConvexError, match="^Invitation not found$"):
        await member.mutation("invitations:accept", {"invitationId": "not-an-id"})


async def test_expired_invitation(owlat: Application) -> None:
    owner, member, _ = await _team(owlat)
    invitation = await owner.mutation(
        "invitations:invite", {"email": member.email, "role": "editor"}
    )

    async def expire(ctx: Any) -> None:
        await ctx.db.patch(invitation["_id"], {"expiresAt": 1.0})

    await in_mutation(owlat, expire)
    with pytest.raises(ConvexError, match="^Invitation not found$"):
        await member.mutation("invitations:accept", {"invitationId": invitation["_id"]})
    assert await member.query("invitations:listMine") == []


async def test_cancel(owlat: Application) -> None:
    owner, member, _ = await _team(owlat)
    editor = await signed_in(owlat, "editor@example.com")
    await _join(owner, editor)
    invitation = await owner.mutation(
        "invitations:invite", {"email": member.email, "role": "editor"}
    )
    with pytest.raises(ConvexError, match="^Admin access required$"):
        await editor.mutation("invitations:cancel", {"invitationId": invitation["_id"]})
    canceled = await owner.mutation("invitations:cancel", {"invitationId": invitation["_id"]})
    assert canceled["status"] == "canceled"
    with pytest.raises(ConvexError, match="^The invitation is already canceled$"):
        await owner.mutation("invitations:cancel", {"invitationId": invitation["_id"]})
    with pytest.raises(ConvexError, match="^Invitation not found$"):
        await member.mutation("invitations:accept", {"invitationId": invitation["_id"]})
    listed = await owner.query("invitations:listForOrganization", {})
    assert [i["status"] for i in listed] == ["accepted", "canceled"]


async def test_roles_and_the_last_owner(owlat: Application) -> None:
    owner, member, organization_id = await _team(owlat)
    admin = await signed_in(owlat, "admin@example.com")
    await _join(owner, admin, "admin")
    joined = await _join(owner, member)
    with pytest.raises(ConvexError, match="^Admin access required$"):
        await member.mutation("members:updateRole", {"memberId": joined["_id"], "role": "admin"})
    with pytest.raises(ConvexError, match="^Only an owner can grant or change the owner role$"):
        await admin.mutation("members:updateRole", {"memberId": joined["_id"], "role": "owner"})
    promoted = await admin.mutation(
        "members:updateRole", {"memberId": joined["_id"], "role": "admin"}
    )
    assert promoted["role"] == "admin"
    me = await owner.query("members:getActiveMember")
    with pytest.raises(ConvexError, match="^The organization must keep at least one owner$"):
        await owner.mutation("members:updateRole", {"memberId": me["_id"], "role": "admin"})
    with pytest.raises(ConvexError, match="^The organization must keep at least one owner$"):
        await owner.mutation("members:leave", {"organizationId": organization_id})
    with pytest.raises(ConvexError, match="^Member not found$"):
        await owner.mutation("members:updateRole", {"memberId": "nobody", "role": "admin"})
    # a second owner: now the first may leave
    await owner.mutation("members:updateRole", {"memberId": joined["_id"], "role": "owner"})
    left = await owner.mutation("members:leave", {"organizationId": organization_id})
    assert left["userId"] == owner.user_id
    with pytest.raises(ConvexError, match="^No active organization$"):
        await owner.query("organizations:getActive")


async def test_remove_member(owlat: Application) -> None:
    owner, member, _ = await _team(owlat)
    admin = await signed_in(owlat, "admin@example.com")
    await _join(owner, admin, "admin")
    joined = await _join(owner, member)
    with pytest.raises(ConvexError, match="^Admin access required$"):
        await member.mutation("members:remove", {"memberIdOrEmail": admin.email})
    with pytest.raises(ConvexError, match="^Only an owner can remove an owner$"):
        await admin.mutation("members:remove", {"memberIdOrEmail": owner.email})
    removed = await admin.mutation("members:remove", {"memberIdOrEmail": joined["_id"]})
    assert removed["member"]["userId"] == member.user_id
    with pytest.raises(ConvexError, match="^No active organization$"):
        await member.query("organizations:getActive")
    owner_member = await owner.query("members:getActiveMember")
    with pytest.raises(ConvexError, match="^The organization must keep at least one owner$"):
        await owner.mutation("members:remove", {"memberIdOrEmail": owner_member["_id"]})


async def test_membership_limit(owlat: Application) -> None:
    owner, member, organization_id = await _team(owlat)

    async def fill(ctx: Any) -> None:
        for n in range(49):
            user_id = await ctx.db.insert(
                "users",
                {
                    "email": f"u{n}@x.io",
                    "name": "U",
                    "emailVerified": True,
                    "createdAt": 1.0,
                    "updatedAt": 1.0,
                },
            )
            await ctx.db.insert(
                "members",
                {
                    "organizationId": organization_id,
                    "userId": user_id,
                    "role": "editor",
                    "createdAt": 1.0,
                },
            )

    await in_mutation(owlat, fill)
    with pytest.raises(
        ConvexError, match=r"^Organization membership limit reached \(50 members\)$"
    ):
        await owner.mutation("invitations:invite", {"email": member.email, "role": "editor"})
