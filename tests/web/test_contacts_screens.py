"""The dashboard's contact screens in a real browser against the real server: a CSV import
(columns guessed, a list, a live progress bar), a contact's details, lists and timeline
edited and seen live in another tab, the export of every live contact; what an editor
sees. No console error, axe-core passes (screenshots in `.artifacts/web/<test>/`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.app.conftest import Site
from tests.web.conftest import Screens, settle
from tests.web.pages import add_contact, add_property, cell, choose, editor_page, go, owner_page

if TYPE_CHECKING:
    from playwright.async_api import Browser

pytestmark = pytest.mark.timeout(180)


IMPORTED = 4000


async def test_contact_detail_import_and_export(
    browser: Browser, dashboard_site: Site, screens: Screens
) -> None:
    site = dashboard_site
    page = await owner_page(browser, site, screens)
    dialog = page.get_by_role("dialog")
    await go(page, "Custom properties")
    await add_property(page, "Plan")
    await cell(page, "plan").wait_for()
    await go(page, "Mailing lists")
    await page.get_by_role("button", name="New list").click()
    await page.get_by_role("dialog").wait_for()
    await settle(page)
    await dialog.get_by_label("List name").fill("Newsletter")
    await dialog.get_by_label("Double opt-in").uncheck()
    await dialog.get_by_role("button", name="Create list").click()
    await page.get_by_role("link", name="Newsletter").wait_for()

    # import: columns guessed from their names, a list, a live progress bar
    await go(page, "Contacts")
    await page.get_by_role("link", name="Import CSV").click()
    await page.get_by_role("heading", name="Import contacts").wait_for()
    data = "Email Address,First Name,Plan,Notes\n" + "".join(
        f"user{i}@example.com,User{i},{'pro' if i % 2 else 'free'},n{i}\n" for i in range(IMPORTED)
    )
    await page.get_by_label("CSV file", exact=True).set_input_files(
        {"name": "people.csv", "mimeType": "text/csv", "buffer": data.encode()}
    )
    targets = {
        "Email Address": "Email",
        "First Name": "First name",
        "Plan": "Property: Plan",
        "Notes": "Skip",
    }
    for column, target in targets.items():
        field = page.get_by_role("combobox", name=f"Column {column} goes to")
        shown = await page.locator(".v-field", has=field).inner_text()
        assert shown.startswith(f"{target}\n"), (column, shown)
    await choose(page, page, "Add them to a list (optional)", "Newsletter")
    await screens.check(page, "import-columns")
    # every value the bar shows, as the page changes it
    await page.evaluate(
        """() => {
          window.progress = [];
          new MutationObserver(() => {
            const bar = document.querySelector('[role=progressbar][aria-label="Import progress"]');
            const value = bar?.getAttribute("aria-valuenow");
            if (value && window.progress.at(-1) !== value) window.progress.push(value);
          }).observe(document.body, { subtree: true, attributes: true, childList: true });
        }"""
    )
    await page.get_by_role("button", name="Start import").click()
    status = page.get_by_role("status").filter(has_text="rows")
    await status.filter(
        has_text=f"Done: {IMPORTED} of {IMPORTED} rows · {IMPORTED} imported"
    ).wait_for()
    shown = [float(value) for value in await page.evaluate("window.progress")]
    assert shown[-1] == 100 and any(0 < value < 100 for value in shown), shown  # it moved
    await cell(page, "people.csv").wait_for()
    await screens.check(page, "import-done")

    # detail: properties, lists, timeline; edited, seen live in another tab
    await page.get_by_role("link", name="See the contacts").click()
    await page.get_by_role("link", name=f"user{IMPORTED - 1}@example.com").wait_for()
    await add_contact(page, "grace@example.com", "Grace")
    await page.get_by_role("link", name="grace@example.com").click()
    await page.get_by_role("heading", name="grace@example.com").wait_for()
    await page.get_by_role("listitem").filter(has_text="Added").wait_for()
    other = screens.watch(await page.context.new_page())
    await other.goto(page.url)
    details = other.get_by_role("table", name="Details")
    await details.get_by_role("row", name="Name Grace").wait_for()
    await page.get_by_role("button", name="Edit contact").click()
    await page.get_by_role("dialog").wait_for()
    await settle(page)
    await dialog.get_by_label("Last name").fill("Hopper")
    await dialog.get_by_label("Plan").fill("enterprise")
    await screens.check(page, "contact-edit")
    await dialog.get_by_role("button", name="Save").click()
    await details.get_by_role("row", name="Name Grace Hopper").wait_for(timeout=1000)
    await details.get_by_role("row", name="Plan enterprise").wait_for(timeout=1000)
    await other.get_by_role("listitem").filter(has_text="Details changed").wait_for(timeout=1000)
    await screens.check(other, "contact")

    imported = f"user{IMPORTED - 1}@example.com"
    await page.goto(site.site_url + "/contacts")
    await page.get_by_role("link", name=imported).click()
    await page.get_by_role("table", name="Details").get_by_role("row", name="Plan pro").wait_for()
    await page.get_by_role("link", name="Newsletter").wait_for()
    await page.get_by_role("button", name="Delete contact").click()
    await dialog.get_by_role("button", name="Delete").click()
    await page.wait_for_url("**/contacts")
    await other.goto(site.site_url + "/contacts")
    await cell(other, "grace@example.com").wait_for()
    assert await other.get_by_role("link", name=imported).count() == 0

    # export: every live contact, the property a column of its own
    async with page.expect_download() as download:
        await page.get_by_role("button", name="Export CSV").click()
    path = await (await download.value).path()
    lines = path.read_text().splitlines()
    header = lines[0].split(",")
    assert header[0] == "email" and "plan" in header
    assert len(lines) == 1 + IMPORTED  # 4,000 imported, Grace added, one deleted
    grace = next(line.split(",") for line in lines if line.startswith("grace@"))
    assert grace[header.index("plan")] == "enterprise"
    await page.get_by_text(f"Exported {IMPORTED} contacts.").wait_for()

    # an editor reads, and does not see what they cannot do
    editor = await editor_page(browser, site, screens)
    await editor.get_by_role("link", name="grace@example.com").click()
    await editor.get_by_role("heading", name="grace@example.com").wait_for()
    assert await editor.get_by_role("button", name="Edit contact").count() == 0
    assert await editor.get_by_role("button", name="Delete contact").count() == 0
    await screens.check(editor, "contact-editor")
    await go(editor, "Contacts")
    assert await editor.get_by_role("button", name="Export CSV").count() == 0
    assert await editor.get_by_role("link", name="Import CSV").count() == 0
    await editor.goto(site.site_url + "/contacts/import")
    await editor.get_by_text("Only owners and admins import contacts.").wait_for()
    assert screens.errors == []
