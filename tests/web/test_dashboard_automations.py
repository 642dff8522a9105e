"""The dashboard's automation, webhook and form screens in a real browser against the real
server: the step builder (trigger and parameter; steps added, reordered, deleted; saved,
activated, paused; runs and per-step counts live), webhook endpoints (the `whsec_` secret
shown once, on/off, the delivery log with its retries) and sign-up forms (settings,
fields, the embed snippet copied, submissions live). Each list shows what another member,
in another browser, adds within a second; an editor's view lacks what the role may not
do; no console error; axe-core passes (screenshots in `.artifacts/web/<test>/`)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from playwright.async_api import expect

from owlat.runtime.testing import in_mutation, in_query
from tests.web.conftest import Screens, settle
from tests.web.pages import add_contact, cell, choose, editor_page, go, member_page, owner_page

if TYPE_CHECKING:
    from playwright.async_api import Browser, Page

    from tests.app.conftest import Site

pytestmark = pytest.mark.timeout(180)


async def only_admins(editor: Page, site: Site, section: str, path: str) -> None:
    """An editor has no `section` in the navigation, and its page says why."""
    sections = editor.get_by_role("navigation", name="Sections")
    await sections.get_by_role("link", name="Contacts").wait_for()
    assert await sections.get_by_role("link", name=section).count() == 0
    await editor.goto(site.site_url + path)
    await editor.get_by_text("Only owners and admins manage the organization's").wait_for()
    assert await editor.get_by_role("button", name=f"New {section[:-1].lower()}").count() == 0


async def add_step(page: Page, kind: str) -> None:
    await choose(page, page, "Step type", kind)
    await page.get_by_role("button", name="Add step").click()


async def test_automation_builder(browser: Browser, dashboard_site: Site, screens: Screens) -> None:
    site = dashboard_site
    page = await owner_page(browser, site, screens)
    dialog = page.get_by_role("dialog")
    await go(page, "Templates")  # for the email step
    await page.get_by_role("button", name="New template").click()
    await dialog.wait_for()
    await settle(page)
    await dialog.get_by_label("Template name").fill("Welcome")
    await dialog.get_by_role("button", name="Create template").click()
    await page.get_by_role("heading", name="Welcome").wait_for()

    # another browser (an editor's) watches the list
    editor = await editor_page(browser, site, screens)
    await go(editor, "Automations")
    await editor.get_by_text("No automations yet.").wait_for()

    await go(page, "Automations")
    await page.get_by_role("link", name="New automation").click()
    await page.get_by_role("heading", name="New automation").wait_for()
    await page.get_by_label("Automation name").fill("Onboarding")
    await choose(page, page, "Starts when", "An event is received")
    await page.get_by_label("Event name").fill("signed_up")
    await choose(page, page, "Starts when", "A contact is created")
    assert await page.get_by_label("Event name").count() == 0

    await add_step(page, "Send email")
    await choose(page, page.get_by_role("group", name="Step 1: Send email"), "Template", "Welcome")
    await add_step(page, "Wait")
    await page.get_by_role("group", name="Step 2: Wait").get_by_label("Wait for").fill("2")
    await add_step(page, "Condition")
    condition = page.get_by_role("group", name="Step 3: Condition")
    await condition.locator(".condition").get_by_label("Value").fill("example")
    await choose(page, condition, "If yes, go to", "End the run")
    await add_step(page, "Send webhook")
    await add_step(page, "Update contact")
    await (
        page.get_by_role("group", name="Step 5: Update contact")
        .get_by_label("Set language")
        .fill("en")
    )
    await page.get_by_role("button", name="Delete step 4").click()  # the webhook step
    for index in (4, 3, 2, 3):  # the update first, then the wait before the email
        await page.get_by_role("button", name=f"Move step {index} up").click()
    await page.get_by_role("group", name="Step 1: Update contact").wait_for()
    await page.get_by_role("group", name="Step 2: Wait").wait_for()
    await screens.check(page, "automation-builder")
    await page.get_by_role("button", name="Save automation").click()
    await page.wait_for_url(lambda url: "/automations/" in url and not url.endswith("/new"))
    await page.get_by_role("heading", name="Onboarding").wait_for()

    async def stored(ctx: Any) -> dict[str, Any]:
        (row,) = await ctx.db.query("automations").collect()
        return dict(row)

    row = await in_query(site.application, stored)
    assert row["triggerType"] == "contact_created" and row["status"] == "draft"
    assert [step["type"] for step in row["steps"]] == [
        "updateContact",
        "delay",
        "email",
        "condition",
    ]
    assert row["steps"][0]["config"] == {"language": "en"}
    assert row["steps"][1]["config"] == {"duration": 2.0, "unit": "days"}
    assert row["steps"][3]["config"]["yesBranchStepIndex"] == 4  # the end, after reordering
    await cell(editor, "Onboarding").wait_for(timeout=1000)

    # activated: the editor's list shows it live; a new contact starts a run, counted live
    await page.get_by_role("button", name="Activate").click()
    await page.get_by_text("Pause the automation to change").wait_for()
    status = (
        editor.get_by_role("row").filter(has_text="Onboarding").get_by_text("active", exact=True)
    )
    await status.wait_for(timeout=1000)
    other = screens.watch(await page.context.new_page())
    await other.goto(site.site_url + "/contacts")
    await add_contact(other, "grace@example.com", "Grace")
    runs = page.get_by_role("status", name="Runs")
    await runs.filter(has_text="1 entered · 1 active").wait_for(timeout=5000)
    first = page.get_by_role("group", name="Step 1: Update contact")
    await first.get_by_text("1 completed").wait_for(timeout=5000)
    await screens.check(page, "automation-active")

    # paused; an editor may edit and pause, not activate (it sends)
    await page.get_by_role("button", name="Pause").click()
    await page.get_by_role("button", name="Activate").wait_for()
    await editor.get_by_role("link", name="Onboarding").click()
    await editor.get_by_role("heading", name="Onboarding").wait_for()
    await editor.get_by_role("button", name="Save automation").wait_for()
    assert await editor.get_by_role("button", name="Activate").count() == 0
    await screens.check(editor, "automation-editor")
    await go(page, "Automations")
    await cell(page, "Onboarding").wait_for()
    await screens.check(page, "automations")
    assert screens.errors == []


async def test_webhooks(browser: Browser, dashboard_site: Site, screens: Screens) -> None:
    site = dashboard_site
    page = await owner_page(browser, site, screens)
    await page.context.grant_permissions(
        ["clipboard-read", "clipboard-write"], origin=site.site_url
    )
    await go(page, "Webhooks")
    await page.get_by_text("No webhooks yet.").wait_for()
    other = await member_page(browser, site, screens, "Ada's admin", "admin")  # another browser
    await go(other, "Webhooks")
    await other.get_by_text("No webhooks yet.").wait_for()

    await page.get_by_role("button", name="New webhook").click()
    dialog = page.get_by_role("dialog")
    await dialog.wait_for()
    await settle(page)
    await dialog.get_by_label("Webhook name").fill("CRM sync")
    await dialog.get_by_label("Endpoint URL").fill("https://hooks.example.com/owlat")
    await dialog.get_by_label("contact.created").check()
    await screens.check(page, "webhook-dialog")
    await dialog.get_by_role("button", name="Create webhook").click()
    shown = dialog.get_by_label("The signing secret", exact=True)
    await shown.wait_for()
    secret = (await shown.text_content() or "").strip()
    assert secret.startswith("whsec_") and len(secret) == 38
    await dialog.get_by_role("button", name="Copy the signing secret").click()
    await dialog.get_by_text("Copied").wait_for()
    assert await page.evaluate("navigator.clipboard.readText()") == secret
    await screens.check(page, "webhook-created")
    await dialog.get_by_role("button", name="Done").click()
    await cell(other, "CRM sync").wait_for(timeout=1000)
    await page.get_by_text(secret).wait_for(state="detached")
    await cell(page, "contact.created").wait_for()

    # off and on again, seen in the other tab
    await page.get_by_label("Enabled: CRM sync").uncheck()
    await expect(other.get_by_label("Enabled: CRM sync")).not_to_be_checked(timeout=1000)
    await other.get_by_label("Enabled: CRM sync").check()
    await expect(page.get_by_label("Enabled: CRM sync")).to_be_checked(timeout=1000)
    await screens.check(page, "webhooks")

    # the delivery log: a test delivery, and a retrying one shown with its retry live
    await page.get_by_role("link", name="CRM sync").click()
    await page.get_by_role("heading", name="CRM sync").wait_for()
    await page.get_by_role("button", name="Send test").click()
    log = page.get_by_label("Delivery log", exact=True)
    await log.get_by_role("cell", name="test", exact=True).wait_for(timeout=2000)

    async def retrying(ctx: Any) -> None:
        (webhook,) = await ctx.db.query("webhooks").collect()
        now = time.time() * 1000
        await ctx.db.insert(
            "webhookDeliveryLogs",
            {
                "organizationId": webhook["organizationId"],
                "webhookId": webhook["_id"],
                "event": "contact.created",
                "payload": "{}",
                "payloadVersion": 1,
                "attemptNumber": 2,
                "maxAttempts": 3,
                "status": "retrying",
                "httpStatusCode": 503,
                "errorMessage": "HTTP 503",
                "scheduledAt": now,
                "dueAt": 4.1e12,
                "attemptedAt": now,
                "nextRetryAt": 4.1e12,
            },
        )

    await in_mutation(site.application, retrying)
    row = log.get_by_role("row").filter(has_text="contact.created")
    await row.get_by_role("cell", name="2 of 3").wait_for(timeout=1000)
    await row.get_by_role("cell", name="503", exact=True).wait_for()
    await row.get_by_text("retrying").wait_for()
    assert "2099" in (await row.text_content() or "")  # the next retry's date
    await screens.check(page, "webhook-log")

    editor = await editor_page(browser, site, screens)
    await only_admins(editor, site, "Webhooks", "/webhooks")
    await screens.check(editor, "webhooks-editor")
    assert screens.errors == []


async def test_forms(browser: Browser, dashboard_site: Site, screens: Screens) -> None:
    site = dashboard_site
    page = await owner_page(browser, site, screens)
    await page.context.grant_permissions(
        ["clipboard-read", "clipboard-write"], origin=site.site_url
    )
    dialog = page.get_by_role("dialog")
    await go(page, "Mailing lists")
    await page.get_by_role("button", name="New list").click()
    await dialog.wait_for()
    await settle(page)
    await dialog.get_by_label("List name").fill("Weekly")
    await dialog.get_by_role("button", name="Create list").click()
    await cell(page, "Weekly").wait_for()

    await go(page, "Forms")
    await page.get_by_text("No forms yet.").wait_for()
    other = await member_page(browser, site, screens, "Ada's admin", "admin")  # another browser
    await go(other, "Forms")
    await other.get_by_text("No forms yet.").wait_for()
    await page.get_by_role("button", name="New form").click()
    await dialog.wait_for()
    await settle(page)
    await dialog.get_by_label("Form name").fill("Newsletter")
    await dialog.get_by_role("button", name="Create form").click()
    await page.get_by_role("heading", name="Newsletter").wait_for()
    await other.get_by_role("link", name="Newsletter").wait_for(timeout=1000)

    # its list, double opt-in, redirect and a second field
    await choose(page, page, "Subscribe to list", "Weekly")
    await page.get_by_label("Double opt-in: subscribers confirm by email").check()
    await page.get_by_label("Redirect URL after submitting (optional)").fill(
        "https://acme.example/thanks"
    )
    await page.get_by_role("button", name="Add field").click()
    await page.get_by_label("Field 2 key").fill("firstName")
    await page.get_by_label("Field 2 label").fill("First name")
    await page.get_by_role("button", name="Save form").click()
    await expect(page.get_by_role("button", name="Save form")).to_be_disabled()

    async def stored(ctx: Any) -> dict[str, Any]:
        (form,) = await ctx.db.query("formEndpoints").collect()
        return dict(form)

    form = await in_query(site.application, stored)
    assert form["doubleOptIn"] is True and form["redirectUrl"] == "https://acme.example/thanks"
    assert [field["key"] for field in form["fields"]] == ["email", "firstName"]
    assert form["listId"] is not None

    # the embed snippet posts to the public endpoint with the form's fields and honeypot
    await page.get_by_role("button", name="Copy the embed code").click()
    snippet = await page.evaluate("navigator.clipboard.readText()")
    assert f'action="{site.site_url}/forms/{form["_id"]}"' in snippet
    assert 'name="firstName"' in snippet and 'name="_hp_field"' in snippet

    # a submission shows at once, here and in the list's counts
    async with httpx.AsyncClient() as client:
        answer = await client.post(
            f"{site.site_url}/forms/{form['_id']}",
            data={"email": "reader@example.com", "firstName": "Rea"},
        )
    assert answer.status_code == 302
    submissions = page.get_by_label("Recent submissions", exact=True)
    row = submissions.get_by_role("row").filter(has_text="reader@example.com")
    await row.get_by_text("Awaiting confirmation").wait_for(timeout=1000)
    await (
        other.get_by_role("row")
        .filter(has_text="Newsletter")
        .get_by_text("1 (0 subscribed)")
        .wait_for(timeout=1000)
    )
    await screens.check(page, "form")
    await screens.check(other, "forms")

    editor = await editor_page(browser, site, screens)
    await only_admins(editor, site, "Forms", "/forms")
    await screens.check(editor, "forms-editor")
    assert screens.errors == []
