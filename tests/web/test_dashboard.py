"""The dashboard in a real browser (Debian's Chromium through Playwright) against the real
server, as a newcomer meets it: sign up → create an organization → add a contact and find it
→ invite an editor, who accepts from the mailed link and finds no contact-management
actions; two browsers see each other's contacts live within a second. On every screen: no
console error, no serious or critical axe-core violation at desktop and mobile widths, and
screenshots in `.artifacts/web/<test>/`."""

from __future__ import annotations

import asyncio
import re
import time
from typing import TYPE_CHECKING

import pytest

from tests.app.conftest import Site, mail_text
from tests.web.conftest import Screens, new_page

if TYPE_CHECKING:
    from playwright.async_api import Browser, Page

pytestmark = pytest.mark.timeout(180)

PASSWORD = "correct-horse-battery"


def cell(page: Page, text: str) -> object:
    return page.get_by_role("cell", name=text, exact=True)


async def sign_up(page: Page, name: str, email: str) -> None:
    await page.get_by_label("Name").fill(name)
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Create account").click()


async def add_contact(page: Page, email: str, first_name: str = "") -> None:
    await page.get_by_role("button", name="New contact").click()
    dialog = page.get_by_role("dialog")
    await dialog.get_by_label("Email").fill(email)
    if first_name:
        await dialog.get_by_label("First name").fill(first_name)
    await dialog.get_by_role("button", name="Add contact").click()


async def invitation_link(site: Site, email: str) -> str:
    """The accept link of the invitation mailed to `email` (sent by a scheduled job)."""
    for _ in range(200):
        for message in site.outbox():
            if message["To"] == email:
                match = re.search(r"https?://\S+/invite/accept\?\S+", mail_text(message))
                assert match, mail_text(message)
                return match.group(0)
        await asyncio.sleep(0.05)
    raise AssertionError(f"no invitation mailed to {email}")


async def test_newcomer_path(browser: Browser, dashboard_site: Site, screens: Screens) -> None:
    site = dashboard_site
    owner = await new_page(browser, screens)
    await owner.goto(site.site_url + "/")
    await owner.wait_for_url("**/auth/sign-in**")
    await owner.get_by_role("heading", name="Sign in").wait_for()
    await screens.check(owner, "sign-in")

    await owner.get_by_role("link", name="Create an account").click()
    await owner.get_by_role("heading", name="Create your account").wait_for()
    await screens.check(owner, "sign-up")
    await sign_up(owner, "Ada Lovelace", "ada@example.com")

    await owner.wait_for_url("**/organizations/new")
    await owner.get_by_label("Organization name").fill("Acme Mail")
    await screens.check(owner, "create-organization")
    await owner.get_by_role("button", name="Create organization").click()

    await owner.wait_for_url("**/contacts")
    await owner.get_by_text("No contacts yet.").wait_for()
    assert await owner.get_by_role("button", name="Acme Mail: switch organization").is_visible()
    await screens.check(owner, "contacts-empty")
    await owner.get_by_role("button", name="New contact").click()
    await owner.get_by_role("dialog").get_by_label("Email").wait_for()
    await screens.check(owner, "contact-dialog")
    await owner.get_by_role("button", name="Cancel").click()
    await add_contact(owner, "grace@example.com", "Grace")
    await add_contact(owner, "linus@example.com")
    await cell(owner, "grace@example.com").wait_for()
    await cell(owner, "linus@example.com").wait_for()
    await screens.check(owner, "contacts")

    search = owner.get_by_role("searchbox", name="Search by email or name")
    await search.fill("gra")
    await cell(owner, "linus@example.com").wait_for(state="detached")
    assert await cell(owner, "grace@example.com").is_visible()
    await search.fill("nobody")
    await owner.get_by_text("No contact matches “nobody”.").wait_for()
    await search.fill("")
    await cell(owner, "linus@example.com").wait_for()

    await owner.get_by_role("link", name="Members").click()
    await cell(owner, "ada@example.com").wait_for()
    await owner.get_by_label("Email address").fill("editor@example.com")
    await owner.get_by_role("button", name="Invite").click()
    await cell(owner, "editor@example.com").wait_for()  # pending, pushed live
    await screens.check(owner, "members")

    # the editor follows the mailed link, signs up, accepts
    editor = await new_page(browser, screens)
    await editor.goto(await invitation_link(site, "editor@example.com"))
    await editor.get_by_text("Sign in, or create an account").wait_for()
    await screens.check(editor, "invitation-signed-out")
    await editor.get_by_role("link", name="Create an account").click()
    await sign_up(editor, "Eddie Editor", "editor@example.com")
    await editor.get_by_text("You are invited to join").wait_for()
    await screens.check(editor, "invitation")
    await editor.get_by_role("button", name="Accept").click()

    await editor.wait_for_url("**/contacts")
    await cell(editor, "grace@example.com").wait_for()
    await screens.check(editor, "contacts-editor")
    assert await editor.get_by_role("button", name="New contact").count() == 0
    assert await editor.get_by_role("button", name="Delete grace@example.com").count() == 0
    await editor.get_by_role("link", name="Members").click()
    await cell(editor, "editor@example.com").wait_for()
    assert await editor.get_by_role("button", name="Invite").count() == 0

    # the owner sees the new member without reloading; signs out
    await owner.get_by_role("cell", name="Eddie Editor").wait_for()
    await owner.get_by_role("button", name="Account").click()
    await owner.get_by_role("button", name="Sign out").click()
    await owner.wait_for_url("**/auth/sign-in**")

    # the other signed-out screens
    await owner.get_by_role("link", name="Forgot your password?").click()
    await owner.get_by_role("heading", name="Reset your password").wait_for()
    await screens.check(owner, "forgot-password")
    await owner.get_by_label("Email").fill("ada@example.com")
    await owner.get_by_role("button", name="Send the link").click()
    await owner.get_by_text("a link to choose a new password is on its way").wait_for()
    await owner.goto(site.site_url + "/auth/reset-password?token=not-a-real-token")
    await owner.get_by_label("New password").wait_for()
    await screens.check(owner, "reset-password")
    await owner.goto(site.site_url + "/auth/verify-email?email=ada%40example.com")
    await owner.get_by_text("We sent a link to").wait_for()
    await screens.check(owner, "verify-email")

    assert screens.errors == []


async def test_two_browsers_see_a_new_contact_within_a_second(
    browser: Browser, dashboard_site: Site, screens: Screens
) -> None:
    site = dashboard_site
    first = await new_page(browser, screens)
    await first.goto(site.site_url + "/auth/sign-up")
    await sign_up(first, "Ada Lovelace", "ada@example.com")
    await first.wait_for_url("**/organizations/new")
    await first.get_by_label("Organization name").fill("Acme Mail")
    await first.get_by_role("button", name="Create organization").click()
    await first.get_by_text("No contacts yet.").wait_for()

    # another browser, signed in as the same user: its new session takes her organization
    second = await new_page(browser, screens)
    await second.goto(site.site_url + "/")
    await second.get_by_label("Email").fill("ada@example.com")
    await second.get_by_label("Password").fill(PASSWORD)
    await second.get_by_role("button", name="Sign in").click()
    await second.get_by_text("No contacts yet.").wait_for()

    await add_contact(first, "grace@example.com", "Grace")
    started = time.monotonic()
    await cell(first, "grace@example.com").wait_for()
    await cell(second, "grace@example.com").wait_for(timeout=1000)
    assert time.monotonic() - started < 1.0

    # and back, for a delete
    await second.get_by_role("button", name="Delete grace@example.com").click()
    await second.get_by_role("dialog").get_by_role("button", name="Delete").click()
    await cell(first, "grace@example.com").wait_for(state="detached", timeout=1000)
    await first.get_by_text("No contacts yet.").wait_for(timeout=1000)
    await screens.check(second, "contacts-after-delete")
    assert screens.errors == []
