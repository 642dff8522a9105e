"""/api/auth/organization/* — BetterAuth's organization endpoints over the Convex functions."""

from __future__ import annotations

import asyncio
import re

import httpx
import pytest

from tests.app.conftest import Site, mail_text


@pytest.fixture
async def site(site_on_both_engines: Site) -> Site:
    """These tests run on SQLite and PostgreSQL."""
    return site_on_both_engines


PASSWORD = "team-password-1"


async def _sign_up(browser: httpx.AsyncClient, email: str) -> str:
    response = await browser.post(
        "/sign-up/email", json={"email": email, "password": PASSWORD, "name": email.split("@")[0]}
    )
    assert response.status_code == 200, response.text
    return str(response.json()["user"]["id"])


async def _invitation_link(site: Site, email: str) -> tuple[str, str]:
    """(invitation id, token) of the link in the invitation mail sent to `email`."""
    for _ in range(200):
        for mail in site.outbox():
            match = re.search(r"/invite/accept\?id=(\w+)&token=([\w-]+)", mail_text(mail))
            if mail["To"] == email and match:
                return match.group(1), match.group(2)
        await asyncio.sleep(0.01)
    raise AssertionError(f"no invitation mail to {email}")


async def test_team_management_endpoints(site: Site) -> None:
    async with site.browser() as owner, site.browser() as member:
        await _sign_up(owner, "owner@example.com")
        member_user = await _sign_up(member, "member@example.com")
        organization = (
            await owner.post("/organization/create", json={"name": "Acme", "slug": "acme"})
        ).json()
        assert (await owner.get("/get-session")).json()["session"]["activeOrganizationId"] == (
            organization["id"]
        )
        updated = await owner.post("/organization/update", json={"data": {"name": "Acme Inc"}})
        assert updated.json()["name"] == "Acme Inc"

        invited = await owner.post(
            "/organization/invite-member", json={"email": "member@example.com", "role": "admin"}
        )
        assert invited.json()["status"] == "pending"
        link, token = await _invitation_link(site, "member@example.com")
        assert link == invited.json()["id"]
        listed = (await owner.get("/organization/list-invitations")).json()
        assert [i["email"] for i in listed] == ["member@example.com"]
        # the member's email is not verified: the link's token stands for it
        unverified = await member.get("/organization/list-user-invitations")
        assert (unverified.status_code, unverified.json()) == (
            403,
            {
                "code": "EMAIL_VERIFICATION_REQUIRED_FOR_INVITATION",
                "message": "Email verification required to view invitations",
            },
        )
        refused = await member.post("/organization/accept-invitation", json={"invitationId": link})
        assert (refused.status_code, refused.json()["code"]) == (
            403,
            "EMAIL_VERIFICATION_REQUIRED_BEFORE_ACCEPTING_OR_REJECTING_INVITATION",
        )
        seen = await member.get("/organization/get-invitation", params={"id": link, "token": token})
        assert seen.json()["organizationName"] == "Acme Inc"
        accepted = await member.post(
            "/organization/accept-invitation", json={"invitationId": link, "token": token}
        )
        assert accepted.json()["member"]["role"] == "admin"
        assert "set-cookie" in accepted.headers
        assert (await member.get("/get-session")).json()["user"]["emailVerified"] is True
        assert (await member.get("/organization/list-user-invitations")).json() == []
        active = (await member.get("/organization/get-active-member")).json()
        assert (active["userId"], active["role"]) == (member_user, "admin")

        members = (await owner.get("/organization/list-members")).json()
        assert members["total"] == 2
        changed = await owner.post(
            "/organization/update-member-role", json={"memberId": active["id"], "role": "editor"}
        )
        assert changed.json()["role"] == "editor"
        refused = await member.post("/organization/update", json={"data": {"name": "Mine"}})
        assert (refused.status_code, refused.json()) == (
            403,
            {"code": "ADMIN_ACCESS_REQUIRED", "message": "Admin access required"},
        )
        last_owner = await owner.post(
            "/organization/leave", json={"organizationId": organization["id"]}
        )
        assert last_owner.json()["code"] == "YOU_CANNOT_LEAVE_THE_ORGANIZATION_AS_THE_ONLY_OWNER"
        removed = await owner.post(
            "/organization/remove-member", json={"memberIdOrEmail": "member@example.com"}
        )
        assert removed.json()["member"]["userId"] == member_user
        assert (await member.get("/organization/list")).json() == []

        second = await owner.post(
            "/organization/invite-member", json={"email": "member@example.com", "role": "editor"}
        )
        canceled = await owner.post(
            "/organization/cancel-invitation", json={"invitationId": second.json()["id"]}
        )
        assert canceled.json()["status"] == "canceled"
        gone = await member.get("/organization/get-invitation", params={"id": second.json()["id"]})
        assert (gone.status_code, gone.json()["code"]) == (400, "INVITATION_NOT_FOUND")
        third = await owner.post(
            "/organization/invite-member", json={"email": "member@example.com", "role": "editor"}
        )
        rejected = await member.post(
            "/organization/reject-invitation", json={"invitationId": third.json()["id"]}
        )
        assert rejected.json()["invitation"]["status"] == "rejected"
        assert rejected.json()["member"] is None

        cleared = await owner.post("/organization/set-active", json={"organizationId": None})
        assert cleared.text == "null"
        full = await owner.get("/organization/get-full-organization")
        assert full.json()["code"] == "NO_ACTIVE_ORGANIZATION"
        by_slug = await owner.get(
            "/organization/get-full-organization", params={"organizationSlug": "acme"}
        )
        assert by_slug.json()["id"] == organization["id"]
        assert len(by_slug.json()["invitations"]) == 3
        deleted = await owner.post(
            "/organization/delete", json={"organizationId": organization["id"]}
        )
        assert deleted.json() == {"id": organization["id"]}
        assert (await owner.get("/organization/list")).json() == []


async def test_endpoints_need_a_session_and_valid_input(site: Site) -> None:
    async with site.browser() as anonymous:
        response = await anonymous.get("/organization/list")
        assert (response.status_code, response.json()) == (
            401,
            {"code": "UNAUTHORIZED", "message": "Unauthorized"},
        )
    async with site.browser() as browser:
        await _sign_up(browser, "a@example.com")
        missing = await browser.post("/organization/create", json={"name": "No slug"})
        assert missing.status_code == 400 and missing.json()["code"] == "BAD_REQUEST"
        bad_role = await browser.post(
            "/organization/invite-member", json={"email": "x@example.com", "role": "god"}
        )
        assert bad_role.status_code == 400
        not_found = await browser.post(
            "/organization/set-active", json={"organizationSlug": "none"}
        )
        assert not_found.json() == {
            "code": "ORGANIZATION_NOT_FOUND",
            "message": "Organization not found",
        }


async def test_reset_mails_are_throttled_per_address(site: Site) -> None:
    async with site.browser() as browser:
        await _sign_up(browser, "a@example.com")
        for _ in range(5):
            response = await browser.post(
                "/request-password-reset", json={"email": "a@example.com"}
            )
            assert response.json()["status"] is True
    assert len(site.outbox()) == 3
