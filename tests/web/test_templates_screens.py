"""The dashboard's templates in a real browser against the real server: the server's
rendering previewed in a sandboxed frame (mobile width, light and dark), a change
elsewhere shown at once, the list searched; the transactional emails screen when empty.
No console error, axe-core passes (screenshots in `.artifacts/web/<test>/`)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest
from playwright.async_api import expect

from owlat.app.lib.rendering import render_template, validate_content
from owlat.runtime.testing import in_mutation
from tests.app.conftest import Site
from tests.web.conftest import Screens, settle
from tests.web.pages import go, owner_page

if TYPE_CHECKING:
    from playwright.async_api import Browser

pytestmark = pytest.mark.timeout(180)


_COLOR = "element => getComputedStyle(element).color"
_BACKGROUND = "element => getComputedStyle(element).backgroundColor"


async def test_templates_preview_and_transactional_emails(
    browser: Browser, dashboard_site: Site, screens: Screens
) -> None:
    site = dashboard_site
    page = await owner_page(browser, site, screens)
    dialog = page.get_by_role("dialog")
    await go(page, "Templates")
    await page.get_by_text("No templates yet.").wait_for()
    await page.get_by_role("button", name="New template").click()
    await page.get_by_role("dialog").wait_for()
    await settle(page)
    await dialog.get_by_label("Template name").fill("Welcome")
    await dialog.get_by_label("Subject").fill("Hello {{firstName}}")
    await dialog.get_by_role("button", name="Create template").click()
    await page.get_by_role("heading", name="Welcome").wait_for()

    # the server's rendering, personalized for a sample contact, in a sandboxed frame
    await page.get_by_text("Subject: Hello").wait_for()
    frame = page.get_by_title("Email preview")
    assert await frame.get_attribute("sandbox") == ""
    assert "<html" in (await frame.get_attribute("srcdoc") or "").lower()
    desktop = await frame.bounding_box()
    await page.get_by_role("button", name="Mobile").click()
    mobile = await frame.bounding_box()
    assert desktop is not None
    assert mobile is not None
    assert mobile["width"] < desktop["width"]
    await page.get_by_text("This template has no content yet").wait_for()

    # with a paragraph, on a computer in dark mode: the light preview stays light (the
    # frame follows the system's dark mode), the dark one is dark with light text
    async def write(ctx: Any) -> None:
        (template,) = await ctx.db.query("emailTemplates").collect()
        blocks = [{"id": "t1", "type": "text", "content": {"html": "<p>Welcome aboard</p>"}}]
        rendered = render_template(validate_content(blocks), subject=template["subject"])
        await ctx.db.patch(
            template["_id"], {"content": json.dumps(blocks), "htmlContent": rendered.html}
        )

    await in_mutation(site.application, write)
    await page.emulate_media(color_scheme="dark")
    shown = page.frame_locator('iframe[title="Email preview"]')
    paragraph, body = shown.get_by_text("Welcome aboard"), shown.locator("body")
    await paragraph.wait_for(timeout=1000)
    assert await page.get_by_text("This template has no content yet").count() == 0
    assert await paragraph.evaluate(_COLOR) == "rgb(31, 41, 55)"
    assert await body.evaluate(_BACKGROUND) == "rgb(255, 255, 255)"
    await page.get_by_label("Dark mode").check()
    await expect(body).to_have_css("background-color", "rgb(18, 18, 18)")
    assert await paragraph.evaluate(_COLOR) == "rgb(228, 228, 231)"
    await screens.check(page, "template-preview")
    await page.emulate_media(color_scheme="light")

    # a change elsewhere shows at once
    async def rename(ctx: Any) -> None:
        (template,) = await ctx.db.query("emailTemplates").collect()
        await ctx.db.patch(template["_id"], {"subject": "Welcome aboard"})

    await in_mutation(site.application, rename)
    await page.get_by_text("Subject: Welcome aboard").wait_for(timeout=1000)

    await go(page, "Templates")
    await page.get_by_role("link", name="Welcome").wait_for()
    await page.get_by_role("searchbox", name="Search by name or subject").fill("nothing")
    await page.get_by_text("No template matches “nothing”.").wait_for()
    await page.get_by_role("searchbox", name="Search by name or subject").fill("welc")
    await page.get_by_role("link", name="Welcome").wait_for()
    await screens.check(page, "templates")

    await go(page, "Transactional emails")
    await page.get_by_text("No transactional emails yet.").wait_for()
    await screens.check(page, "transactional-emails")
    assert screens.errors == []
