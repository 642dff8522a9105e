"""The template block editor and the saved-blocks screens in a real browser against the
real server: a template built from nothing (heading, text, button, image, two columns with a
block each, divider), each block in the server-rendered preview; a bad URL in a column
refused with the error at that field; blocks reordered and deleted; published. A saved
block created, inserted into a template (linked by `savedBlockRef`), changed on its screen:
the template's preview follows (the server re-renders linked templates); a block saved as
a saved block. An editor sees no Publish button and a published template read-only; a
change saved in one browser shows in another without reload (or, over unsaved changes, a
warning); a version restored. No
console error, no serious or critical axe-core violation, screenshots in
`.artifacts/web/<test>/`."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import pytest
from playwright.async_api import expect

from tests.app.template_samples import png
from tests.web.conftest import DESKTOP, MOBILE, Screens, settle
from tests.web.pages import editor_page, go, owner_page
from tests.web.test_transactional_screens import pick

if TYPE_CHECKING:
    from playwright.async_api import Browser, FrameLocator, Locator, Page

    from tests.app.conftest import Site

pytestmark = pytest.mark.timeout(120)
DIVIDER = "border-top:1px solid #e5e7eb"  # a divider block, as the server renders it


async def new_template(page: Page, name: str, subject: str = "News") -> None:
    await go(page, "Templates")
    await page.get_by_role("button", name="New template").click()
    dialog = page.get_by_role("dialog")
    await dialog.wait_for()
    await settle(page)
    await dialog.get_by_label("Template name").fill(name)
    await dialog.get_by_label("Subject").fill(subject)
    await dialog.get_by_role("button", name="Create template").click()
    await page.get_by_role("heading", name=name, level=1).wait_for()


async def add_block(page: Page, kind: str, to: str = "Add block") -> None:
    """Add a `kind` block from the menu of the button named `to` (it opens selected)."""
    await page.get_by_role("button", name=to, exact=True).click()
    await settle(page)
    await page.get_by_role("menuitem", name=kind, exact=True).click()
    await page.get_by_role("group", name=f"Properties of {kind} block").wait_for()


def properties(page: Page) -> Locator:
    return page.get_by_role("group", name="Properties of", exact=False)


async def save(page: Page) -> None:
    await page.get_by_role("button", name="Save", exact=True).click()
    await page.get_by_role("status").filter(has_text="All changes saved").wait_for()


def preview(page: Page) -> FrameLocator:
    return page.frame_locator('iframe[title="Email preview"]')


async def test_build_a_template_from_nothing(
    browser: Browser, dashboard_site: Site, screens: Screens
) -> None:
    page = await owner_page(browser, dashboard_site, screens)
    await new_template(page, "Newsletter")
    await page.get_by_text("No blocks yet.").wait_for()

    await add_block(page, "Text")
    await properties(page).get_by_label("HTML").fill("Big news")
    await pick(page, "Block type", "h1")
    await add_block(page, "Text")
    await properties(page).get_by_label("HTML").fill("<p>Welcome to the newsletter</p>")
    await add_block(page, "Button")
    await properties(page).get_by_label("Text", exact=True).fill("Read more")
    await properties(page).get_by_label("URL", exact=True).fill("https://example.com/news")
    await add_block(page, "Image")
    await properties(page).get_by_label("Alt text").fill("Owl logo")
    # its picture uploaded into the media library: the block takes the image's URL
    await (
        properties(page)
        .locator('input[type="file"]')
        .set_input_files(
            files=[{"name": "owl.png", "mimeType": "image/png", "buffer": png(40, 20)}]
        )
    )
    # the first "Image URL": the block's own (its "Dark mode" group has one of its own)
    source = properties(page).get_by_label("Image URL", exact=True).first
    await expect(source).not_to_have_value(re.compile("favicon"))
    uploaded = await source.input_value()
    assert uploaded.startswith("http")
    await add_block(page, "Columns")
    # three columns, then two again (the third one's blocks would move into the second)
    await properties(page).get_by_label("Column count").fill("3")
    await page.get_by_text("Column 3", exact=True).wait_for()
    await properties(page).get_by_label("Column count").fill("2")
    await expect(page.get_by_text("Column 3", exact=True)).to_have_count(0)
    await add_block(page, "Text", to="Add block to Column 1 of Columns")
    await properties(page).get_by_label("HTML").fill("<p>Left side</p>")
    await add_block(page, "Button", to="Add block to Column 2 of Columns")
    await properties(page).get_by_label("Text", exact=True).fill("Right button")
    # a URL the server refuses: its error stands at that field of the block in column 2
    await properties(page).get_by_label("URL", exact=True).fill("javascript:alert(1)")
    await add_block(page, "Divider")
    await add_block(page, "Accordion")
    await page.get_by_role("button", name="Add section").click()
    await properties(page).get_by_label("Section 2 title").fill("FAQ")
    await add_block(page, "Text", to="Add block to FAQ of Accordion")
    await properties(page).get_by_label("HTML").fill("<p>An answer</p>")
    await expect(page.get_by_role("status").filter(has_text="Unsaved changes")).to_be_visible()
    await page.get_by_role("button", name="Save", exact=True).click()
    field = properties(page).locator(".v-input", has=page.get_by_label("URL", exact=True))
    await field.get_by_text("url: must be an http(s), mailto: or tel: URL").wait_for()
    await expect(properties(page).get_by_label("Text", exact=True)).to_have_value("Right button")
    await properties(page).get_by_label("URL", exact=True).fill("https://example.com/right")
    await save(page)

    shown = preview(page)
    for text in ("Big news", "Welcome to the newsletter", "Read more", "Left side"):
        await shown.get_by_text(text).wait_for()
    await shown.get_by_role("link", name="Right button").wait_for()
    image = shown.get_by_alt_text("Owl logo")
    await expect(image).to_have_attribute("src", uploaded)
    assert await image.evaluate("img => img.decode().then(() => img.naturalWidth)") == 40
    await expect(shown.locator("h1")).to_have_text("Big news")
    html = await page.get_by_title("Email preview").get_attribute("srcdoc") or ""
    assert "FAQ" in html
    assert "An answer" in html
    assert DIVIDER in (await page.get_by_title("Email preview").get_attribute("srcdoc") or "")
    await screens.check(page, "template-editor")
    # on a phone, the outline fits the screen (long names are cut short)
    await page.set_viewport_size(MOBILE)
    await settle(page)
    assert await page.evaluate("document.documentElement.scrollWidth") <= MOBILE["width"]
    await page.set_viewport_size(DESKTOP)

    # the image moved to the top, the divider deleted: saved, the preview follows
    await page.get_by_role("button", name="Move Image: Owl logo up").click()
    await page.get_by_role("button", name="Move Image: Owl logo up").click()
    await page.get_by_role("button", name="Move Image: Owl logo up").click()
    await page.get_by_role("button", name="Delete Divider").click()
    outline = page.get_by_role("list", name="Blocks", exact=True)
    rows = outline.locator(":scope > li > .row")
    await expect(rows).to_have_count(6)
    await expect(rows.first).to_contain_text("Image: Owl logo")
    # a new block goes after the selected one
    await page.get_by_role("button", name="Text: Big news", exact=True).click()
    await add_block(page, "Spacer")
    await expect(rows.nth(2)).to_contain_text("Spacer")
    await save(page)
    # in the server's rendering: the image before the heading, no divider (border-top) left
    await page.wait_for_function(
        """() => {
          const html = document.querySelector('iframe[title="Email preview"]').srcdoc;
          const image = html.indexOf('alt="Owl logo"');
          return image >= 0 && image < html.indexOf("Big news") && !html.includes(DIVIDER);
        }""".replace("DIVIDER", repr(DIVIDER))
    )

    # leaving with unsaved changes asks first: stay, then leave
    await page.get_by_label("Preview text").fill("Read this")
    page.once("dialog", lambda dialog: dialog.dismiss())
    await (
        page.get_by_role("navigation", name="Sections").get_by_role("link", name="Contacts").click()
    )
    await expect(page.get_by_label("Preview text")).to_have_value("Read this")
    await page.get_by_role("button", name="Discard changes").click()
    await expect(page.get_by_label("Preview text")).to_have_value("")

    # published: the button turns into Unpublish
    await page.get_by_role("button", name="Publish").click()
    await page.get_by_role("button", name="Unpublish").wait_for()
    await expect(page.locator(".v-chip").filter(has_text="published")).to_be_visible()
    assert screens.errors == []


async def test_saved_blocks_are_inserted_linked_and_carried_into_templates(
    browser: Browser, dashboard_site: Site, screens: Screens
) -> None:
    page = await owner_page(browser, dashboard_site, screens)
    await go(page, "Saved blocks")
    await page.get_by_text("No saved blocks yet.").wait_for()
    await page.get_by_role("button", name="New saved block").click()
    dialog = page.get_by_role("dialog")
    await dialog.wait_for()
    await settle(page)
    await dialog.get_by_label("Saved block name").fill("Footer")
    await dialog.get_by_role("button", name="Create saved block").click()
    await page.get_by_role("heading", name="Footer", level=1).wait_for()
    await page.get_by_role("button", name="Text: New saved block", exact=True).click()
    await properties(page).get_by_label("HTML").fill("<p>Footer v1</p>")
    await save(page)
    await preview(page).get_by_text("Footer v1").wait_for()  # its own preview, as saved
    await screens.check(page, "saved-block")

    # inserted into a template: linked (read-only there), rendered with the block's content
    await new_template(page, "Digest")
    await add_block(page, "Text")
    await properties(page).get_by_label("HTML").fill("<p>Our signature</p>")
    await page.get_by_role("button", name="Insert saved block").click()
    picker = page.get_by_role("dialog", name="Insert a saved block")
    await picker.wait_for()
    await settle(page)
    await picker.get_by_role("listitem").filter(has_text="Footer").click()
    await page.get_by_text("Saved block Footer").wait_for()
    # the text block saved as a saved block of its own: linked in its place
    await page.get_by_role("button", name="Save Text: Our signature as a saved block").click()
    dialog = page.get_by_role("dialog", name="Save as a saved block")
    await dialog.wait_for()
    await settle(page)
    await dialog.get_by_label("Saved block name").fill("Signature")
    await dialog.get_by_role("button", name="Save block").click()
    await page.get_by_text("Saved block Signature").wait_for()
    await save(page)
    shown = preview(page)
    await shown.get_by_text("Footer v1").wait_for()
    await shown.get_by_text("Our signature").wait_for()
    await screens.check(page, "template-with-saved-blocks")

    # changed on its screen (opened from the template): the template's preview follows, in
    # another tab that stays open on it
    template_url = page.url
    other = screens.watch(await page.context.new_page())
    await other.goto(template_url)
    await preview(other).get_by_text("Footer v1").wait_for()
    await page.bring_to_front()  # a background tab's animation frames are throttled
    await page.get_by_role("link", name="Edit saved block Footer").click()
    await page.get_by_role("heading", name="Footer", level=1).wait_for()
    await expect(page.get_by_text("Used in 1 template")).to_be_visible()
    await page.get_by_role("button", name="Text: Footer v1", exact=True).click()
    await properties(page).get_by_label("HTML").fill("<p>Footer v2</p>")
    await save(page)
    await preview(page).get_by_text("Footer v2").wait_for()
    await preview(other).get_by_text("Footer v2").wait_for(timeout=10_000)
    await go(page, "Saved blocks")
    for name in ("Footer", "Signature"):
        await page.get_by_role("link", name=name).wait_for()
    await page.get_by_role("searchbox", name="Search by name or description").fill("sig")
    await expect(page.get_by_role("link", name="Footer")).to_have_count(0)
    await screens.check(page, "saved-blocks")

    # a copy (linked by no template), deleted again
    await page.get_by_role("link", name="Signature").click()
    await page.get_by_role("button", name="Duplicate", exact=True).click()
    await page.get_by_role("heading", name="Signature (Copy)", level=1).wait_for()
    await expect(page.get_by_text("Used in 0 templates")).to_be_visible()
    await page.get_by_role("button", name="Delete", exact=True).click()
    await page.get_by_role("dialog").get_by_role("button", name="Delete", exact=True).click()
    await page.get_by_role("heading", name="Saved blocks", level=1).wait_for()
    await page.get_by_role("link", name="Signature", exact=True).wait_for()
    await expect(page.get_by_role("link", name="Signature (Copy)")).to_have_count(0)
    assert screens.errors == []


async def test_editors_cannot_publish_changes_show_in_another_browser_and_versions_restore(
    browser: Browser, dashboard_site: Site, screens: Screens
) -> None:
    owner = await owner_page(browser, dashboard_site, screens)
    await new_template(owner, "Weekly")
    editor = await editor_page(browser, dashboard_site, screens)
    await go(editor, "Templates")
    await editor.get_by_role("link", name="Weekly").click()
    await editor.get_by_role("heading", name="Weekly", level=1).wait_for()
    await editor.get_by_text("No blocks yet.").wait_for()
    assert await editor.get_by_role("button", name="Publish").count() == 0

    # the owner's saved change shows in the editor's browser, outline and preview, live
    await add_block(owner, "Text")
    await properties(owner).get_by_label("HTML").fill("<p>Live from Ada</p>")
    await save(owner)
    await editor.get_by_role("button", name="Text: Live from Ada", exact=True).wait_for()
    await preview(editor).get_by_text("Live from Ada").wait_for()
    # and the editor's (an editor edits drafts) in the owner's
    await add_block(editor, "Button")
    await properties(editor).get_by_label("Text", exact=True).fill("Eddie's button")
    await save(editor)
    await owner.get_by_role("button", name="Button: Eddie's button", exact=True).wait_for()
    await preview(owner).get_by_role("link", name="Eddie's button").wait_for()
    await screens.check(editor, "template-editor-role")

    # the editor restores the version before their button: gone in both browsers
    await editor.get_by_role("button", name="Version history").click()
    versions = editor.get_by_role("table", name="Versions")
    await expect(versions.get_by_role("row")).to_have_count(4)  # a header, three saves
    await versions.get_by_role("button", name="Restore").nth(1).click()
    confirm = editor.get_by_role("dialog", name="Restore version")
    await confirm.wait_for()
    await settle(editor)
    await confirm.get_by_role("button", name="Restore").click()
    await expect(versions.get_by_role("row")).to_have_count(5)
    for page in (owner, editor):
        await page.get_by_role("button", name="Text: Live from Ada", exact=True).wait_for()
        await expect(page.get_by_role("button", name="Button: Eddie's button")).to_have_count(0)
        await expect(preview(page).get_by_text("Eddie's button")).to_have_count(0)

    # the editor's unsaved change while the owner saves: the editor is told, keeps theirs
    # until they discard it
    await editor.get_by_label("Preview text").fill("Eddie's draft")
    await owner.get_by_label("Preview text").fill("Ada's")
    await save(owner)
    await editor.get_by_text("This template was changed elsewhere").wait_for()
    await expect(editor.get_by_label("Preview text")).to_have_value("Eddie's draft")
    await editor.get_by_role("button", name="Discard changes").click()
    await expect(editor.get_by_label("Preview text")).to_have_value("Ada's")
    await expect(editor.get_by_text("This template was changed elsewhere")).to_have_count(0)

    # published by the owner: read-only for the editor
    await owner.get_by_role("button", name="Publish").click()
    await editor.get_by_text("Published: an owner or admin changes it").wait_for()
    for name in ("Publish", "Unpublish", "Add block", "Save", "Insert saved block"):
        assert await editor.get_by_role("button", name=name, exact=True).count() == 0
    await expect(editor.get_by_label("Subject", exact=True)).to_be_disabled()
    await editor.get_by_role("button", name="Text: Live from Ada", exact=True).click()
    await expect(properties(editor).get_by_label("HTML")).to_have_attribute("readonly", "")
    assert screens.errors == []
