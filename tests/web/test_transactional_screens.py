"""The dashboard's transactional email screens in a real browser against the real server:
one created from the list, edited (a server validation error shown at the field its path
names), previewed with sample values, published, sent through POST /api/v1/transactional
with the page's own curl example and an API key, while its counters and its sends list move
in the open page; a German translation added and previewed; a test send; an editor sees no
publish button; published again with a spammy subject, held by the content scan with its
findings shown, approved by the owner (the editor has no Approve). No console error, no
serious or critical axe-core violation, screenshots in `.artifacts/web/<test>/`."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import httpx
import pytest
from playwright.async_api import expect

from tests.app.test_rest_api import api_key
from tests.web.conftest import DESKTOP, MOBILE, Screens, settle
from tests.web.pages import cell, editor_page, go, owner_page
from tests.web.test_campaigns_screens import caller_of

if TYPE_CHECKING:
    from playwright.async_api import Browser, Locator, Page

    from tests.app.conftest import Site

pytestmark = pytest.mark.timeout(180)

BAD = "<p>Order {{order id}}</p>"
BODY = "<p>Order {{orderId}}: {{total}}</p>"


def counter(page: Page, label: str) -> Locator:
    counters = page.get_by_role("status", name="Send counters")
    return counters.locator(".counter", has=page.get_by_text(label, exact=True)).locator("dd")


async def pick(page: Page, label: str, option: str) -> None:
    """`choose`, with the menu's opening transition ended before the option is clicked (a
    click during it may select nothing)."""
    field = page.locator(".v-field", has=page.get_by_role("combobox", name=label))
    await field.click()
    await settle(page)
    await page.get_by_role("option", name=option, exact=True).click()
    await expect(field).to_contain_text(option)


async def test_transactional_email_editor_publish_send_and_translate(
    browser: Browser, dashboard_site: Site, screens: Screens
) -> None:
    site = dashboard_site
    page = await owner_page(browser, site, screens)
    await go(page, "Transactional emails")
    await page.get_by_text("No transactional emails yet.").wait_for()
    await page.get_by_role("button", name="New transactional email").click()
    dialog = page.get_by_role("dialog")
    await dialog.wait_for()
    await settle(page)
    await dialog.get_by_label("Name", exact=True).fill("Order receipt")
    await expect(dialog.get_by_label("Slug (for the API)")).to_have_value("order-receipt")
    await dialog.get_by_label("Subject").fill("Order {{orderId}}")
    await screens.check(page, "transactional-new")
    await dialog.get_by_role("button", name="Create transactional email").click()
    await page.get_by_role("heading", name="Order receipt", level=1).wait_for()
    assert "/transactional/" in page.url

    # variables, then a text block the server refuses: its error stands under its field
    for index, (name, kind) in enumerate((("orderId", "string"), ("total", "number")), 1):
        await page.get_by_role("button", name="Add variable").click()
        await page.get_by_label(f"Variable {index} name").fill(name)
        if kind != "string":
            await pick(page, f"Variable {index} type", kind)
    await page.get_by_role("button", name="Add block", exact=True).click()
    await settle(page)
    await page.get_by_role("menuitem", name="Text", exact=True).click()
    block = page.get_by_role("group", name="Properties of Text block")
    content = block.get_by_label("HTML")
    await content.fill(BAD)
    await page.get_by_role("button", name="Save", exact=True).click()
    field = block.locator(".v-input", has=page.get_by_label("HTML"))
    await field.get_by_text("html: malformed placeholder").wait_for()
    await content.fill(BODY)
    await page.get_by_role("button", name="Save", exact=True).click()
    preview = page.frame_locator('iframe[title="Email preview"]')
    await preview.get_by_text("Order :").wait_for()  # saved; no values yet
    await field.get_by_text("malformed placeholder").wait_for(state="detached")
    await expect(page.get_by_role("button", name="Save", exact=True)).to_be_disabled()
    await page.get_by_label("Sample orderId (string)").fill("A-17")
    await page.get_by_label("Sample total (number)").fill("42.5")
    await preview.get_by_text("Order A-17: 42.5").wait_for()
    await page.get_by_text("Subject: Order A-17").wait_for()

    # published; the page's curl example, run with a new API key, sends it
    await page.get_by_role("button", name="Publish").click()
    await page.get_by_role("button", name="Unpublish").wait_for()
    curl = await page.get_by_label("curl command", exact=True).text_content() or ""
    assert f"-X POST {site.site_url}/api/v1/transactional" in curl
    body = json.loads(curl.split("-d '", 1)[1].rstrip("'"))
    assert body == {
        "slug": "order-receipt",
        "email": "recipient@example.com",
        "dataVariables": {"orderId": "A-17", "total": 42.5},
    }
    await expect(counter(page, "Sent")).to_have_text("0")
    owner, _ = await caller_of(site, "ada@example.com")
    headers = {"authorization": f"Bearer {await api_key(owner)}"}
    async with httpx.AsyncClient(headers=headers) as http:
        answer = await http.post(f"{site.site_url}/api/v1/transactional", json=body)
    assert answer.status_code == 202, answer.text
    await expect(counter(page, "Requests")).to_have_text("1", timeout=5000)
    await expect(counter(page, "Sent")).to_have_text("1", timeout=5000)
    sends = page.get_by_label("Recent sends", exact=True)
    row = sends.get_by_role("row").filter(has_text="recipient@example.com")
    await row.get_by_text("sent", exact=True).wait_for(timeout=5000)
    (mail,) = [m for m in site.outbox() if m["To"] == "recipient@example.com"]
    assert mail["Subject"] == "Order A-17"

    # a test send: listed as one, not counted
    await page.get_by_role("button", name="Send test").click()
    await page.get_by_text("Test sent to ada@example.com.").wait_for()
    await (
        sends.get_by_role("row")
        .filter(has_text="ada@example.com")
        .get_by_text("test", exact=True)
        .wait_for(timeout=5000)
    )
    await expect(counter(page, "Requests")).to_have_text("1")

    # German: added (from the default text), edited, previewed
    await page.get_by_label("Language code (de, pt-BR)").fill("de")
    await page.get_by_role("button", name="Add language").click()
    await page.get_by_role("button", name="Edit de").click()
    dialog = page.get_by_role("dialog", name="Edit de")
    await dialog.wait_for()
    await settle(page)
    await dialog.get_by_label("Subject (de)").fill("Bestellung {{orderId}}")
    await dialog.get_by_label("Block 1: text (HTML)").fill("<p>Bestellung {{orderId}}</p>")
    await dialog.get_by_role("button", name="Save translation").click()
    await dialog.wait_for(state="detached")
    await preview.get_by_text("Bestellung A-17").wait_for()
    await page.get_by_text("Subject: Bestellung A-17").wait_for()
    await screens.check(page, "transactional-email")
    # on a phone, the mobile preview (photographed alone: a full-page screenshot taken
    # right after the resize may catch the frame before it repainted)
    await page.set_viewport_size(MOBILE)
    await page.get_by_role("button", name="Mobile").click()
    await preview.get_by_text("Bestellung A-17").wait_for()
    frame = page.get_by_title("Email preview")
    await frame.screenshot(path=screens.directory / "transactional-preview-mobile.png")
    await page.set_viewport_size(DESKTOP)

    # an editor opens it: no publish (nor unpublish) button, the fields read-only
    editor = await editor_page(browser, site, screens)
    await go(editor, "Transactional emails")
    await editor.get_by_role("link", name="Order receipt").click()
    await editor.get_by_role("heading", name="Order receipt", level=1).wait_for()
    await editor.get_by_text("Published: an owner or admin changes it").wait_for()
    for name in ("Publish", "Unpublish", "Add language"):
        assert await editor.get_by_role("button", name=name).count() == 0
    await expect(editor.get_by_label("Subject", exact=True)).to_be_disabled()
    await expect(counter(editor, "Sent")).to_have_text("1")
    await screens.check(editor, "transactional-email-editor")

    # published again with a shouting subject: held by the content scan, its findings
    # shown to both; only the owner approves
    await page.get_by_role("button", name="Unpublish").click()
    await page.get_by_role("button", name="Publish", exact=True).wait_for()
    await page.get_by_label("Subject", exact=True).fill("FREE MONEY, ACT NOW!!!")
    await page.get_by_role("button", name="Save", exact=True).click()
    await expect(page.get_by_role("button", name="Save", exact=True)).to_be_disabled()
    await page.get_by_role("button", name="Publish", exact=True).click()
    review = page.get_by_role("region", name="Content scan")
    await review.get_by_text("Held for review: the content scan scored 36 of 100").wait_for()
    await review.get_by_text('Subject has "!!!"').wait_for()
    await expect(page.get_by_label("Status", exact=True)).to_have_text("pending review")
    held = editor.get_by_role("region", name="Content scan")
    await held.get_by_text("An owner or admin approves or rejects it.").wait_for()
    assert await held.get_by_role("button", name="Approve").count() == 0
    await screens.check(page, "transactional-email-held")
    await review.get_by_role("button", name="Approve").click()
    await page.get_by_role("button", name="Unpublish").wait_for()
    assert await review.count() == 0

    # a copy (a draft), deleted again: back to the list, which shows the original only
    await page.get_by_role("button", name="Duplicate", exact=True).click()
    await page.get_by_role("heading", name="Order receipt (Copy)", level=1).wait_for()
    await expect(page.get_by_label("Slug (for the API)")).to_have_value("order-receipt-copy")
    await page.get_by_role("button", name="Delete", exact=True).click()
    await page.get_by_role("dialog").get_by_role("button", name="Delete", exact=True).click()
    await page.get_by_role("heading", name="Transactional emails", level=1).wait_for()
    await cell(page, "order-receipt").wait_for()
    assert await page.get_by_role("cell", name="order-receipt-copy").count() == 0
    await screens.check(page, "transactional-emails")
    assert screens.errors == []
