"""The dashboard's segment builder in a real browser against the real server: nested
conditions counted live (a contact added elsewhere counted at once), the layout on a phone,
a bad condition explained, the contacts screen narrowed to the segment; an editor reads it
and cannot change it. No console error, axe-core passes (screenshots in
`.artifacts/web/<test>/`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.app.conftest import Site
from tests.web.conftest import DESKTOP, MOBILE, Screens, settle
from tests.web.pages import add_contact, cell, choose, editor_page, go, owner_page

if TYPE_CHECKING:
    from playwright.async_api import Browser

pytestmark = pytest.mark.timeout(180)


async def test_segment_builder_counts_live(
    browser: Browser, dashboard_site: Site, screens: Screens
) -> None:
    site = dashboard_site
    page = await owner_page(browser, site, screens)
    for email, first in (
        ("grace@example.com", "Grace"),
        ("linus@example.com", "Linus"),
        ("alan@other.example", "Alan"),
    ):
        await add_contact(page, email, first)
        await cell(page, email).wait_for()

    await go(page, "Segments")
    await page.get_by_text("No segments yet.").wait_for()
    await page.get_by_role("link", name="New segment").click()
    await page.get_by_role("heading", name="New segment").wait_for()
    await page.get_by_label("Segment name").fill("Friends of the lab")
    count = page.get_by_role("status", name="Matching contacts")
    rows = page.locator(".condition")
    await rows.nth(0).get_by_label("Value").fill("example")
    await count.filter(has_text="3 contacts match").wait_for()

    # a nested group: Grace or Alan
    await page.get_by_role("button", name="Add group").click()
    group = page.get_by_role("group", name="Group at level 2")
    await group.get_by_role("button", name="any").click()
    await choose(page, rows.nth(1), "Field", "First name")
    await choose(page, rows.nth(1), "Operator", "is")
    await rows.nth(1).get_by_label("Value").fill("Grace")
    await count.filter(has_text="1 contact matches").wait_for()
    await group.get_by_role("button", name="Add condition").click()
    await choose(page, rows.nth(2), "Field", "First name")
    await choose(page, rows.nth(2), "Operator", "is")
    await rows.nth(2).get_by_label("Value").fill("Alan")
    await count.filter(has_text="2 contacts match").wait_for()
    await screens.check(page, "segment-builder")
    # on a phone the nested group's all/any toggle keeps its width (it shrank: "any" was
    # cut off) and its remove button keeps clear of it
    await page.set_viewport_size(MOBILE)
    await settle(page)
    toggle = group.get_by_label("Match at level 2")
    clipped = await toggle.evaluate("element => element.scrollWidth > element.clientWidth")
    boxes = [
        await control.bounding_box()
        for control in (
            toggle,
            toggle.get_by_role("button", name="any"),
            group.get_by_role("button", name="Remove this group"),
        )
    ]
    await page.set_viewport_size(DESKTOP)
    assert not clipped
    area, any_, remove = boxes
    assert area and any_ and remove, boxes
    assert any_["x"] + any_["width"] <= area["x"] + area["width"] + 0.5, boxes
    for first in (area, any_):
        apart = (
            remove["x"] >= first["x"] + first["width"]
            or remove["y"] >= first["y"] + first["height"]
        )
        assert apart, boxes

    # a bad condition says why instead of a count
    await rows.nth(0).get_by_label("Value").fill("")
    await count.filter(has_text="needs a non-empty text value").wait_for()
    await rows.nth(0).get_by_label("Value").fill("example")
    await count.filter(has_text="2 contacts match").wait_for()

    # a contact added elsewhere is counted live
    other = screens.watch(await page.context.new_page())
    await other.goto(site.site_url + "/contacts")
    await add_contact(other, "grace.h@example.com", "Grace")
    await count.filter(has_text="3 contacts match").wait_for(timeout=1000)

    await page.get_by_role("button", name="Save segment").click()
    await page.wait_for_url("**/segments")
    saved = page.get_by_role("row").filter(has_text="Friends of the lab")
    await saved.get_by_role("cell", name="3").wait_for()
    await other.get_by_role("button", name="Delete alan@other.example").click()
    await other.get_by_role("dialog").get_by_role("button", name="Delete").click()
    await saved.get_by_role("cell", name="2").wait_for(timeout=1000)
    await screens.check(page, "segments")

    # the contacts screen narrowed to the segment, then all contacts again
    await go(page, "Contacts")
    await choose(page, page, "Show", "Segment: Friends of the lab")
    await cell(page, "linus@example.com").wait_for(state="detached")
    await cell(page, "grace.h@example.com").wait_for()
    assert await page.get_by_role("row").count() == 1 + 2
    await screens.check(page, "contacts-in-segment")
    await choose(page, page, "Show", "All contacts")
    await cell(page, "linus@example.com").wait_for()
    await go(page, "Segments")

    # reopened: the tree as saved; an editor reads it and cannot change it
    await page.get_by_role("link", name="Friends of the lab").click()
    await count.filter(has_text="2 contacts match").wait_for()
    assert await page.locator(".condition").count() == 3
    editor = await editor_page(browser, site, screens)
    await go(editor, "Segments")
    await editor.get_by_role("link", name="Friends of the lab").click()
    matching = editor.get_by_role("status", name="Matching contacts")
    await matching.filter(has_text="2 contacts match").wait_for()
    assert await editor.get_by_role("button", name="Save segment").count() == 0
    assert await editor.get_by_role("button", name="Add condition").count() == 0
    assert await editor.get_by_label("Segment name").is_disabled()
    await screens.check(editor, "segment-editor")
    await go(editor, "Segments")
    assert await editor.get_by_role("link", name="New segment").count() == 0
    assert screens.errors == []
