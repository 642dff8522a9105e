"""The dashboard's suppression list and organization settings in a real browser against the
real server (changes seen live in another tab, a bad color refused, an editor changes
neither), and the development outbox linked under `owlat dev` only. No console error,
axe-core passes (screenshots in `.artifacts/web/<test>/`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.app.conftest import Site
from tests.web.conftest import Screens, settle, start_dashboard_site
from tests.web.pages import cell, choose, editor_page, go, owner_page

if TYPE_CHECKING:
    from playwright.async_api import Browser

pytestmark = pytest.mark.timeout(180)


async def test_suppression_list_and_settings(
    browser: Browser, dashboard_site: Site, screens: Screens
) -> None:
    site = dashboard_site
    page = await owner_page(browser, site, screens)
    other = screens.watch(await page.context.new_page())

    await go(page, "Suppression list")
    await page.get_by_text("No blocked addresses.").wait_for()
    await other.goto(site.site_url + "/suppression")
    await other.get_by_text("No blocked addresses.").wait_for()
    await page.get_by_role("button", name="Block an address").click()
    await page.get_by_role("dialog").wait_for()
    await settle(page)
    dialog = page.get_by_role("dialog")
    await dialog.get_by_label("Email").fill("Spam.Trap@Example.com")
    await dialog.get_by_label("Notes").fill("a known spam trap")
    await dialog.get_by_role("button", name="Block").click()
    await cell(page, "spam.trap@example.com").wait_for()
    await cell(other, "spam.trap@example.com").wait_for(timeout=1000)
    manual = other.locator(".v-card").filter(has_text="Blocked by hand")
    await manual.get_by_text("1", exact=True).wait_for(timeout=1000)
    await page.get_by_role("button", name="Block an address").click()  # twice: refused
    await dialog.get_by_label("Email").fill("spam.trap@example.com")
    await dialog.get_by_role("button", name="Block").click()
    await dialog.get_by_text("spam.trap@example.com is already blocked").wait_for()
    await dialog.get_by_role("button", name="Cancel").click()
    await screens.check(page, "suppression")
    await choose(page, page, "Reason", "Bounced")
    await page.get_by_text("No blocked addresses.").wait_for()
    await choose(page, page, "Reason", "All reasons")
    await other.get_by_role("button", name="Unblock spam.trap@example.com").click()
    await cell(page, "spam.trap@example.com").wait_for(state="detached", timeout=1000)

    # settings: saved here, seen live in the other tab; a bad color is refused
    await go(page, "Settings")
    sections = page.get_by_role("navigation", name="Sections")  # owlat serve: no outbox
    assert await sections.get_by_role("link", name="Outbox (development)").count() == 0
    await other.goto(site.site_url + "/settings")
    await other.get_by_label("Default from name").wait_for()
    await page.get_by_label("Default from name").fill("Acme Newsletter")
    await page.get_by_label("Default from address").fill("news@acme.example")
    await page.get_by_label("Postal address").fill("1 Main Street, Springfield")
    await page.get_by_label("Primary color").fill("#123abc")
    await page.get_by_role("button", name="Save settings").click()
    await page.get_by_text("Settings saved.").wait_for()
    other_name = other.get_by_label("Default from name")
    for _ in range(20):
        if await other_name.input_value() == "Acme Newsletter":
            break
        await other.wait_for_timeout(50)
    assert await other_name.input_value() == "Acme Newsletter"
    assert await other.get_by_label("Primary color").input_value() == "#123abc"
    await page.get_by_label("Text color").fill("blue")
    await page.get_by_role("button", name="Save settings").click()
    await page.get_by_text("textColor must be a color like #1a2b3c").wait_for()
    await page.get_by_role("button", name="Discard changes").click()
    assert await page.get_by_label("Text color").input_value() == ""
    await screens.check(page, "settings")

    # an editor sees both, changes neither
    editor = await editor_page(browser, site, screens)
    await go(editor, "Suppression list")
    await editor.get_by_text("No blocked addresses.").wait_for()
    assert await editor.get_by_role("button", name="Block an address").count() == 0
    await go(editor, "Settings")
    await editor.get_by_text("Only owners and admins change").wait_for()
    assert await editor.get_by_label("Default from name").input_value() == "Acme Newsletter"
    assert await editor.get_by_label("Default from name").is_disabled()
    assert await editor.get_by_role("button", name="Save settings").count() == 0
    await screens.check(editor, "settings-editor")
    assert screens.errors == []


@pytest.fixture
async def development_site(tmp_path: Path, built_web: Path) -> AsyncIterator[Site]:
    """`dashboard_site` as `owlat dev` runs it (the local outbox served)."""
    async with start_dashboard_site(tmp_path, development=True) as site:
        yield site


async def test_the_outbox_is_linked_in_development(
    browser: Browser, development_site: Site, screens: Screens
) -> None:
    page = await owner_page(browser, development_site, screens)
    await go(page, "Members")
    await page.get_by_label("Email address").fill("editor@example.com")
    await page.get_by_role("button", name="Invite").click()
    link = page.get_by_role("navigation", name="Sections").get_by_role(
        "link", name="Outbox (development)"
    )
    async with page.context.expect_page() as opened:
        await link.click()
    outbox = await opened.value
    await outbox.get_by_text("editor@example.com").first.wait_for()
    assert outbox.url == development_site.site_url + "/dev/outbox"
    assert screens.errors == []
