"""The dashboard's custom properties and mailing lists screens in a real browser against the
real server: properties (key from label, rename, duplicates refused, delete); lists (double
opt-in, live member counts in another tab, the list's members, the contacts screen narrowed
to a list); what an editor may do there. No console error, axe-core passes (screenshots in
`.artifacts/web/<test>/`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.app.conftest import Site
from tests.web.conftest import Screens, settle
from tests.web.pages import add_contact, add_property, cell, choose, editor_page, go, owner_page

if TYPE_CHECKING:
    from playwright.async_api import Browser

pytestmark = pytest.mark.timeout(180)


async def test_custom_properties_and_mailing_lists(
    browser: Browser, dashboard_site: Site, screens: Screens
) -> None:
    site = dashboard_site
    page = await owner_page(browser, site, screens)
    await add_contact(page, "grace@example.com", "Grace")
    await cell(page, "grace@example.com").wait_for()  # its dialog closed
    await add_contact(page, "linus@example.com", "Linus")
    await cell(page, "linus@example.com").wait_for()

    # custom properties: the key follows the label; rename; delete
    await go(page, "Custom properties")
    await page.get_by_text("No custom properties yet.").wait_for()
    await page.get_by_role("button", name="New property").click()
    await page.get_by_role("dialog").wait_for()
    await settle(page)
    dialog = page.get_by_role("dialog")
    await dialog.get_by_label("Label").fill("Company size")
    assert await dialog.get_by_label("Key").input_value() == "company_size"
    await choose(page, dialog, "Type", "Number")
    await screens.check(page, "property-dialog")
    await dialog.get_by_role("button", name="Add property").click()
    await cell(page, "company_size").wait_for()
    await cell(page, "Number").wait_for()
    await add_property(page, "Plan")
    await cell(page, "plan").wait_for()
    await page.get_by_role("button", name="Rename Plan").click()
    await page.get_by_role("dialog").wait_for()
    await settle(page)
    await dialog.get_by_label("Label").fill("Pricing plan")
    await dialog.get_by_role("button", name="Save").click()
    await cell(page, "Pricing plan").wait_for()
    await page.get_by_role("button", name="New property").click()  # a duplicate key
    await dialog.get_by_label("Label").fill("Plan")
    await dialog.get_by_role("button", name="Add property").click()
    await dialog.get_by_text('A property with key "plan"').wait_for()
    await dialog.get_by_role("button", name="Cancel").click()
    await screens.check(page, "properties")
    await page.get_by_role("button", name="Delete Company size").click()
    await page.get_by_role("dialog").get_by_role("button", name="Delete").click()
    await cell(page, "company_size").wait_for(state="detached")

    # mailing lists: create with double opt-in; counts live in another tab
    await go(page, "Mailing lists")
    await page.get_by_text("No mailing lists yet.").wait_for()
    await page.get_by_role("button", name="New list").click()
    await page.get_by_role("dialog").wait_for()
    await settle(page)
    await dialog.get_by_label("List name").fill("Weekly digest")
    await dialog.get_by_label("Description").fill("Our best links, every Monday")
    assert await dialog.get_by_label("Double opt-in").is_checked()
    await screens.check(page, "list-dialog")
    await dialog.get_by_role("button", name="Create list").click()
    await page.get_by_role("link", name="Weekly digest").wait_for()
    lists = screens.watch(await page.context.new_page())
    await lists.goto(site.site_url + "/lists")
    digest = lists.get_by_role("row").filter(has_text="Weekly digest")
    await digest.get_by_role("cell", name="Yes").wait_for()

    await page.get_by_role("link", name="Weekly digest").click()
    await page.get_by_role("heading", name="Weekly digest").wait_for()
    await page.get_by_text("No members.").wait_for()
    # Grace without confirmation, Linus with: one member, one awaiting
    for email, skip in (("grace@example.com", True), ("linus@example.com", False)):
        await page.get_by_role("button", name="Add contact").click()
        await page.get_by_role("dialog").wait_for()
        await settle(page)
        await dialog.get_by_role("combobox", name="Contact").fill(email[:4])
        await page.get_by_role("option", name=email).click()
        if skip:
            await dialog.get_by_label("Subscribe without asking for confirmation").check()
        await dialog.get_by_role("button", name="Add to list").click()
        await cell(page, email).wait_for()
    await page.get_by_text("1 members, 1 awaiting confirmation").wait_for()
    await digest.get_by_role("cell", name="1").first.wait_for(timeout=1000)
    assert (await digest.get_by_role("cell").all_inner_texts())[1:4] == ["1", "1", "Yes"]
    await page.get_by_role("button", name="Awaiting confirmation", exact=True).click()
    await cell(page, "grace@example.com").wait_for(state="detached")
    await screens.check(page, "list-detail")
    await page.get_by_role("button", name="All", exact=True).click()
    await page.get_by_role("button", name="Remove grace@example.com from the list").click()
    await cell(page, "grace@example.com").wait_for(state="detached")
    await digest.get_by_role("cell").nth(1).filter(has_text="0").wait_for(timeout=1000)
    list_url = page.url

    # the contacts screen shows the list's members only, each linked to its contact
    await go(page, "Contacts")
    await cell(page, "grace@example.com").wait_for()
    await choose(page, page, "Show", "List: Weekly digest")
    await cell(page, "grace@example.com").wait_for(state="detached")
    assert await page.get_by_label("Search by email or name").is_disabled()
    await page.get_by_role("link", name="linus@example.com").click()
    await page.get_by_role("heading", name="linus@example.com").wait_for()
    await page.goto(list_url)
    await page.get_by_role("heading", name="Weekly digest").wait_for()

    # edit: double opt-in off, seen in the other tab
    await page.get_by_role("button", name="Edit list").click()
    await page.get_by_role("dialog").wait_for()
    await settle(page)
    await dialog.get_by_label("Double opt-in").uncheck()
    await dialog.get_by_role("button", name="Save").click()
    await page.get_by_text("double opt-in off").wait_for()
    await digest.get_by_role("cell", name="No").wait_for(timeout=1000)
    await screens.check(lists, "lists")

    # an editor curates lists but does not define properties
    editor = await editor_page(browser, site, screens)
    await go(editor, "Custom properties")
    await cell(editor, "Pricing plan").wait_for()
    assert await editor.get_by_role("button", name="New property").count() == 0
    assert await editor.get_by_role("button", name="Delete Pricing plan").count() == 0
    await go(editor, "Mailing lists")
    await editor.get_by_role("link", name="Weekly digest").wait_for()
    assert await editor.get_by_role("button", name="New list").count() == 1
    await screens.check(editor, "lists-editor")
    assert screens.errors == []
