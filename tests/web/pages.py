"""What the dashboard's browser tests do on many screens: sign up (as Ada, the owner of
Acme Mail, or as a member of another role), open a section, pick from a select, add a
contact or a custom property, find a table cell."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from owlat.runtime.testing import in_mutation
from tests.app.conftest import Site
from tests.web.conftest import Screens, new_page, settle

if TYPE_CHECKING:
    from playwright.async_api import Browser, Locator, Page

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
    await dialog.wait_for()
    await settle(page)
    await dialog.get_by_label("Email").fill(email)
    if first_name:
        await dialog.get_by_label("First name").fill(first_name)
    await dialog.get_by_role("button", name="Add contact").click()
    await dialog.wait_for(state="hidden")  # added: the next dialog is a new one


async def add_property(page: Page, label: str) -> None:
    """On the custom properties screen: a text property named `label` (its key follows)."""
    await page.get_by_role("button", name="New property").click()
    dialog = page.get_by_role("dialog")
    await dialog.wait_for()
    await settle(page)
    await dialog.get_by_label("Label").fill(label)
    await dialog.get_by_role("button", name="Add property").click()


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
