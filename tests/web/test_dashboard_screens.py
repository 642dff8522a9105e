"""The dashboard's audience and organization screens in a real browser against the real
server: API keys (the secret shown once, copied, revoked), custom properties, mailing lists
(live member counts, double opt-in, the list's members), the suppression list and the
organization settings; each updates live, hides what an editor cannot do, logs no console
error and passes axe-core (screenshots in `.artifacts/web/<test>/`)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from playwright.async_api import expect

from owlat.app.lib.rendering import render_template, validate_content
from owlat.app.lib.tokens import token_hash
from owlat.cli._shared import dashboard
from owlat.config import Settings
from owlat.runtime.testing import in_mutation, in_query
from tests.app.conftest import Site, start_site
from tests.app.domains.dns_server import DnsServer
from tests.web.conftest import BUILD, DESKTOP, MOBILE, Screens, new_page, settle
from tests.web.test_dashboard import add_contact, cell, sign_up

if TYPE_CHECKING:
    from playwright.async_api import Browser, Locator, Page

    from owlat.runtime.server import WebApp

pytestmark = pytest.mark.timeout(180)


async def owner_page(browser: Browser, site: Site, screens: Screens) -> Page:
    """Ada, signed up, owner of the new organization Acme Mail (slug acme-mail)."""
    page = await new_page(browser, screens)
    await page.goto(site.site_url + "/auth/sign-up")
    await sign_up(page, "Ada Lovelace", "ada@example.com")
    await page.wait_for_url("**/organizations/new")
    await page.get_by_label("Organization name").fill("Acme Mail")
    await page.get_by_role("button", name="Create organization").click()
    await page.get_by_text("No contacts yet.").wait_for()
    return page


async def editor_page(browser: Browser, site: Site, screens: Screens) -> Page:
    """Eddie, signed up and made an editor of Acme Mail, on the contacts screen."""
    return await member_page(browser, site, screens, "Eddie Editor", "editor")


async def member_page(browser: Browser, site: Site, screens: Screens, name: str, role: str) -> Page:
    """`name` (email `<role>@example.com`), signed up in a browser of their own and made a
    `role` of Acme Mail (a member row written directly: the invitation path has its own
    test), on the contacts screen."""
    email = f"{role}@example.com"
    page = await new_page(browser, screens)
    await page.goto(site.site_url + "/auth/sign-up")
    await sign_up(page, name, email)
    await page.wait_for_url("**/organizations/new")

    async def join(ctx: Any) -> None:
        organization = await (
            ctx.db.query("organizations")
            .with_index("by_slug", lambda q: q.eq("slug", "acme-mail"))
            .unique()
        )
        user = await (
            ctx.db.query("users").with_index("by_email", lambda q: q.eq("email", email)).unique()
        )
        await ctx.db.insert(
            "members",
            {
                "organizationId": organization["_id"],
                "userId": user["_id"],
                "role": role,
                "createdAt": 0.0,
            },
        )

    await in_mutation(site.application, join)
    await page.goto(site.site_url + "/contacts")
    await page.get_by_role("button", name="Acme Mail: switch organization").wait_for()
    return page


async def go(page: Page, section: str) -> None:
    """Open a section from the navigation (no reload)."""
    await page.get_by_role("navigation", name="Sections").get_by_role("link", name=section).click()
    await page.get_by_role("heading", name=section, level=1).wait_for()


async def choose(page: Page, scope: Page | Locator, label: str, option: str) -> None:
    """Pick `option` in the select labelled `label` (a click on its field opens the menu)."""
    combobox = page.get_by_role("combobox", name=label)  # inside the field: relative to it
    await scope.locator(".v-field", has=combobox).click()
    await page.get_by_role("option", name=option, exact=True).click()


async def test_api_keys(browser: Browser, dashboard_site: Site, screens: Screens) -> None:
    site = dashboard_site
    page = await owner_page(browser, site, screens)
    await page.context.grant_permissions(
        ["clipboard-read", "clipboard-write"], origin=site.site_url
    )
    await go(page, "API keys")
    await page.get_by_text("No API keys yet.").wait_for()
    await screens.check(page, "api-keys-empty")

    await page.get_by_role("button", name="New API key").click()
    await page.get_by_role("dialog").wait_for()
    await settle(page)
    dialog = page.get_by_role("dialog")
    await dialog.get_by_label("Key name").fill("Zapier")
    await dialog.get_by_label("events:write").check()
    await screens.check(page, "api-key-dialog")
    await dialog.get_by_role("button", name="Create key").click()
    shown = dialog.get_by_label("The new API key")
    await shown.wait_for()
    secret = (await shown.text_content() or "").strip()
    assert secret.startswith("lm_live_") and len(secret) == 40
    await dialog.get_by_role("button", name="Copy the API key").click()
    await dialog.get_by_text("Copied").wait_for()
    assert await page.evaluate("navigator.clipboard.readText()") == secret
    await screens.check(page, "api-key-created")

    # the key shown is the one stored (by hash), with the scopes chosen
    async def stored(ctx: Any) -> list[dict[str, Any]]:
        return [dict(key) for key in await ctx.db.query("apiKeys").collect()]

    (key,) = await in_query(site.application, stored)
    assert key["keyHash"] == token_hash(secret)
    assert key["scopes"] == ["contacts:read", "contacts:write", "events:write"]

    # once closed, the secret is gone from the page: the list shows it masked
    await dialog.get_by_role("button", name="Done").click()
    await cell(page, "Zapier").wait_for()
    await page.get_by_text(secret).wait_for(state="detached")
    assert await page.get_by_role("cell", name=secret[:16] + "•" * 24).count() == 1

    # a key made elsewhere shows up live; revoking shows at once
    other = screens.watch(await page.context.new_page())
    await other.goto(site.site_url + "/api-keys")
    await cell(other, "Zapier").wait_for()
    await page.get_by_role("button", name="New API key").click()
    await page.get_by_role("dialog").wait_for()
    await settle(page)
    await dialog.get_by_label("Key name").fill("Backups")
    await dialog.get_by_role("button", name="Create key").click()
    await dialog.get_by_label("The new API key").wait_for()
    await dialog.get_by_role("button", name="Done").click()
    await cell(other, "Backups").wait_for(timeout=1000)
    await other.get_by_role("button", name="Revoke Zapier").click()
    await other.get_by_role("dialog").get_by_role("button", name="Revoke").click()
    row = page.get_by_role("row").filter(has_text="Zapier")
    await row.get_by_role("cell", name="Revoked").wait_for(timeout=1000)
    assert await page.get_by_role("button", name="Revoke Zapier").count() == 0
    await screens.check(page, "api-keys")

    # an editor has no API keys section, and the page says why
    editor = await editor_page(browser, site, screens)
    sections = editor.get_by_role("navigation", name="Sections")
    await sections.get_by_role("link", name="Contacts").wait_for()
    assert await sections.get_by_role("link", name="API keys").count() == 0
    await editor.goto(site.site_url + "/api-keys")
    await editor.get_by_text("Only owners and admins manage").wait_for()
    assert await editor.get_by_role("button", name="New API key").count() == 0
    await screens.check(editor, "api-keys-editor")
    assert screens.errors == []


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
    await page.get_by_role("button", name="New property").click()
    await page.get_by_role("dialog").wait_for()
    await settle(page)
    await dialog.get_by_label("Label").fill("Plan")
    await dialog.get_by_role("button", name="Add property").click()
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


IMPORTED = 4000


async def test_contact_detail_import_and_export(
    browser: Browser, dashboard_site: Site, screens: Screens
) -> None:
    site = dashboard_site
    page = await owner_page(browser, site, screens)
    dialog = page.get_by_role("dialog")
    await go(page, "Custom properties")
    await page.get_by_role("button", name="New property").click()
    await page.get_by_role("dialog").wait_for()
    await settle(page)
    await dialog.get_by_label("Label").fill("Plan")
    await dialog.get_by_role("button", name="Add property").click()
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


@pytest.fixture
async def mail_site(tmp_path: Path, built_web: Path) -> AsyncIterator[tuple[Site, DnsServer]]:
    """`dashboard_site` whose DNS checks ask a DNS server of the test's own."""

    def web(client_url: str) -> WebApp | None:
        return dashboard("owlat.app", Settings(web_dir=BUILD), client_url)

    with DnsServer.running() as dns:
        options = {"dns_nameservers": (("127.0.0.1", dns.port),)}
        async with start_site(tmp_path, web=web, **options) as site:
            yield site, dns


async def test_sending_domains_and_email_providers(
    browser: Browser, mail_site: tuple[Site, DnsServer], screens: Screens
) -> None:
    site, dns = mail_site
    page = await owner_page(browser, site, screens)
    await page.context.grant_permissions(
        ["clipboard-read", "clipboard-write"], origin=site.site_url
    )
    dialog = page.get_by_role("dialog")
    await go(page, "Sending domains")
    await page.get_by_text("No sending domains yet.").wait_for()
    await page.get_by_role("button", name="Add domain").click()
    await dialog.wait_for()
    await settle(page)
    await dialog.get_by_label("Domain").fill("mail.acme-mail.com")
    await dialog.get_by_role("button", name="Add domain").click()
    await page.get_by_role("heading", name="mail.acme-mail.com").wait_for()
    records = page.get_by_role("table", name="DNS records")
    for label in ("DKIM", "DMARC"):  # no SPF: no relay with an SPF include yet
        await records.get_by_role("cell", name=label, exact=True).wait_for()
    await page.get_by_text("pending", exact=True).wait_for()
    other = screens.watch(await page.context.new_page())
    await other.goto(site.site_url + "/domains")
    row = other.get_by_role("row").filter(has_text="mail.acme-mail.com")
    await row.get_by_text("pending").wait_for()

    # the copy buttons copy what the server issued
    async def issued(ctx: Any) -> dict[str, Any]:
        (domain,) = await ctx.db.query("domains").collect()
        return dict(domain["dnsRecords"])

    dkim = (await in_query(site.application, issued))["dkim"][0]
    await page.get_by_role("button", name="Copy the value of the DKIM record").click()
    assert await page.evaluate("navigator.clipboard.readText()") == dkim["value"]
    await page.get_by_role("button", name="Copy all records as a zone file").click()
    zone = await page.evaluate("navigator.clipboard.readText()")
    assert f"{dkim['host']}.mail.acme-mail.com. 3600 IN TXT" in zone
    await screens.check(page, "domain-pending")

    # published, checked: verified here and in the other tab's list, live
    dns.publish(*zone.splitlines())
    await page.get_by_role("button", name="Check now").click()
    await page.get_by_text("verified", exact=True).wait_for()
    await records.get_by_role("cell", name="found").first.wait_for()
    await row.get_by_text("verified").wait_for(timeout=1000)
    await screens.check(page, "domain-verified")
    await screens.check(other, "domains")

    # providers: the SMTP relay; its password is never shown back
    await go(page, "Email providers")
    await page.get_by_text("No email provider configured yet.").wait_for()
    await page.get_by_role("button", name="Set up SMTP relay").click()
    await page.get_by_role("dialog").wait_for()
    await settle(page)
    await dialog.get_by_label("Host").fill("smtp.acme.example")
    await dialog.get_by_label("Port").fill("2525")
    await dialog.get_by_label("Username").fill("acme")
    await dialog.get_by_label("Password").fill("s3cret-relay-password")
    await screens.check(page, "provider-dialog")
    await dialog.get_by_role("button", name="Save").click()
    smtp = page.get_by_role("row").filter(has_text="SMTP relay")
    await smtp.get_by_text("host: smtp.acme.example").wait_for()
    await smtp.get_by_text("password: set").wait_for()
    assert await page.get_by_text("s3cret-relay-password").count() == 0
    assert await page.get_by_role("button", name="Set up SMTP relay").count() == 0
    await screens.check(page, "providers")
    await page.get_by_role("button", name="Edit SMTP relay").click()
    await page.get_by_role("dialog").wait_for()
    await settle(page)
    assert await dialog.get_by_label("Password").input_value() == ""
    assert await dialog.get_by_label("Host").input_value() == "smtp.acme.example"
    await dialog.get_by_role("button", name="Cancel").click()
    # connection tests: the relay's name resolves nowhere here; the outbox takes files
    tested = page.get_by_role("status", name="Connection test")
    await page.get_by_role("button", name="Test SMTP relay").click()
    await tested.filter(has_text="SMTP relay: SERVER_ERROR").wait_for()
    await page.get_by_role("button", name="Test the local outbox").click()
    await tested.filter(has_text="Local outbox: messages are written to").wait_for()

    # an editor sees the domain and the provider, changes neither
    editor = await editor_page(browser, site, screens)
    await go(editor, "Sending domains")
    await editor.get_by_role("link", name="mail.acme-mail.com").click()
    await editor.get_by_role("heading", name="mail.acme-mail.com").wait_for()
    assert await editor.get_by_role("button", name="Remove domain").count() == 0
    await go(editor, "Email providers")
    await editor.get_by_role("cell", name="SMTP relay").wait_for()
    assert await editor.get_by_role("button", name="Edit SMTP relay").count() == 0
    assert await editor.get_by_role("button", name="Test SMTP relay").count() == 0
    assert await editor.get_by_role("button", name="Set up Resend").count() == 0

    await page.get_by_role("button", name="Remove SMTP relay").click()
    await dialog.get_by_role("button", name="Remove").click()
    await editor.get_by_text("No email provider configured yet.").wait_for(timeout=1000)
    assert screens.errors == []


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


@pytest.fixture
async def development_site(tmp_path: Path, built_web: Path) -> AsyncIterator[Site]:
    """`dashboard_site` as `owlat dev` runs it (the local outbox served)."""

    def web(client_url: str) -> WebApp | None:
        return dashboard("owlat.app", Settings(web_dir=BUILD), client_url)

    async with start_site(tmp_path, web=web, development=True) as site:
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
