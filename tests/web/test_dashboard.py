"""The dashboard in a real browser (Debian's Chromium through Playwright) against the real
server, as a newcomer meets it: sign up → create an organization → add a contact and find it
→ invite an editor, who accepts from the mailed link and finds no contact-management
actions; two browsers see each other's contacts live within a second. On every screen: no
console error, no serious or critical axe-core violation at desktop and mobile widths, and
screenshots in `.artifacts/web/<test>/`."""

from __future__ import annotations

import asyncio
import gzip
import re
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import pytest

from owlat.runtime.testing import in_mutation, in_query
from tests.app.conftest import Site, mail_text
from tests.web.conftest import Screens, new_page
from tests.web.pages import PASSWORD, add_contact, cell, owner_page, sign_up

if TYPE_CHECKING:
    from playwright.async_api import Browser, Page, Response

pytestmark = pytest.mark.timeout(180)

async def invitation_link(site: Site, email: str) -> str:
    """The accept link of the invitation mailed to `email` (sent by a scheduled job)."""
    for _ in range(200):
        for message in site.outbox():
            if message["To"] == email:
                match = re.search(r"https?://\S+/invite/accept\?\S+", mail_text(message))
                assert match, mail_text(message)
                return match.group(0)
        await asyncio.sleep(0.05)
    raise AssertionError(f"no invitation mailed to {email}")


async def test_newcomer_path(browser: Browser, dashboard_site: Site, screens: Screens) -> None:
    site = dashboard_site
    owner = await new_page(browser, screens)
    await owner.goto(site.site_url + "/")
    await owner.wait_for_url("**/auth/sign-in**")
    await owner.get_by_role("heading", name="Sign in").wait_for()
    await screens.check(owner, "sign-in")

    await owner.get_by_role("link", name="Create an account").click()
    await owner.get_by_role("heading", name="Create your account").wait_for()
    await screens.check(owner, "sign-up")
    await sign_up(owner, "Ada Lovelace", "ada@example.com")

    await owner.wait_for_url("**/organizations/new")
    await owner.get_by_label("Organization name").fill("Acme Mail")
    await screens.check(owner, "create-organization")
    await owner.get_by_role("button", name="Create organization").click()

    await owner.wait_for_url("**/contacts")
    await owner.get_by_text("No contacts yet.").wait_for()
    assert await owner.get_by_role("button", name="Acme Mail: switch organization").is_visible()
    await screens.check(owner, "contacts-empty")
    await owner.get_by_role("button", name="New contact").click()
    await owner.get_by_role("dialog").get_by_label("Email").wait_for()
    await screens.check(owner, "contact-dialog")
    await owner.get_by_role("button", name="Cancel").click()
    await add_contact(owner, "grace@example.com", "Grace")
    await add_contact(owner, "linus@example.com")
    await cell(owner, "grace@example.com").wait_for()
    await cell(owner, "linus@example.com").wait_for()
    await screens.check(owner, "contacts")

    search = owner.get_by_role("searchbox", name="Search by email or name")
    await search.fill("gra")
    await cell(owner, "linus@example.com").wait_for(state="detached")
    assert await cell(owner, "grace@example.com").is_visible()
    await search.fill("nobody")
    await owner.get_by_text("No contact matches “nobody”.").wait_for()
    await search.fill("")
    await cell(owner, "linus@example.com").wait_for()

    await owner.get_by_role("link", name="Members").click()
    await cell(owner, "ada@example.com").wait_for()
    await owner.get_by_label("Email address").fill("editor@example.com")
    await owner.get_by_role("button", name="Invite").click()
    await cell(owner, "editor@example.com").wait_for()  # pending, pushed live
    await screens.check(owner, "members")

    # the editor follows the mailed link, signs up, accepts
    editor = await new_page(browser, screens)
    await editor.goto(await invitation_link(site, "editor@example.com"))
    await editor.get_by_text("Sign in, or create an account").wait_for()
    await screens.check(editor, "invitation-signed-out")
    await editor.get_by_role("link", name="Create an account").click()
    await sign_up(editor, "Eddie Editor", "editor@example.com")
    await editor.get_by_text("You are invited to join").wait_for()
    await screens.check(editor, "invitation")
    await editor.get_by_role("button", name="Accept").click()

    await editor.wait_for_url("**/contacts")
    await cell(editor, "grace@example.com").wait_for()
    await screens.check(editor, "contacts-editor")
    assert await editor.get_by_role("button", name="New contact").count() == 0
    assert await editor.get_by_role("button", name="Delete grace@example.com").count() == 0
    await editor.get_by_role("link", name="Members").click()
    await cell(editor, "editor@example.com").wait_for()
    assert await editor.get_by_role("button", name="Invite").count() == 0

    # the owner sees the new member without reloading; signs out
    await owner.get_by_role("cell", name="Eddie Editor").wait_for()
    await owner.get_by_role("button", name="Account").click()
    await owner.get_by_role("button", name="Sign out").click()
    await owner.wait_for_url("**/auth/sign-in**")

    # the other signed-out screens
    await owner.get_by_role("link", name="Forgot your password?").click()
    await owner.get_by_role("heading", name="Reset your password").wait_for()
    await screens.check(owner, "forgot-password")
    await owner.get_by_label("Email").fill("ada@example.com")
    await owner.get_by_role("button", name="Send the link").click()
    await owner.get_by_text("a link to choose a new password is on its way").wait_for()
    await owner.goto(site.site_url + "/auth/reset-password?token=not-a-real-token")
    await owner.get_by_label("New password").wait_for()
    await screens.check(owner, "reset-password")
    await owner.goto(site.site_url + "/auth/verify-email?email=ada%40example.com")
    await owner.get_by_text("We sent a link to").wait_for()
    await screens.check(owner, "verify-email")

    assert screens.errors == []


async def test_two_browsers_see_a_new_contact_within_a_second(
    browser: Browser, dashboard_site: Site, screens: Screens
) -> None:
    site = dashboard_site
    first = await owner_page(browser, site, screens)

    # another browser, signed in as the same user: its new session takes her organization
    second = await new_page(browser, screens)
    await second.goto(site.site_url + "/")
    await second.get_by_label("Email").fill("ada@example.com")
    await second.get_by_label("Password").fill(PASSWORD)
    await second.get_by_role("button", name="Sign in").click()
    await second.get_by_text("No contacts yet.").wait_for()

    await add_contact(first, "grace@example.com", "Grace")
    started = time.monotonic()
    await cell(first, "grace@example.com").wait_for()
    await cell(second, "grace@example.com").wait_for(timeout=1000)
    assert time.monotonic() - started < 1.0

    # and back, for a delete
    await second.get_by_role("button", name="Delete grace@example.com").click()
    await second.get_by_role("dialog").get_by_role("button", name="Delete").click()
    await cell(first, "grace@example.com").wait_for(state="detached", timeout=1000)
    await first.get_by_text("No contacts yet.").wait_for(timeout=1000)
    await screens.check(second, "contacts-after-delete")
    assert screens.errors == []


# More than one query may read (32,000 documents): the open page outgrows it and starts
# afresh. The screen's timings at 100,000 are bench/bench_dashboard.py's (BENCHMARKS.md).
SEEDED = 40_000


async def _seed_contacts(site: Site, slug: str, count: int) -> None:
    """`count` contacts in the organization `slug`, written straight to the table (as an
    import would leave them, without activities), in batches of 4,000 per transaction."""

    async def organization(ctx: Any) -> str:
        found = await (
            ctx.db.query("organizations")
            .with_index("by_slug", lambda q: q.eq("slug", slug))
            .unique()
        )
        return str(found["_id"])

    organization_id = await in_query(site.application, organization)
    for start in range(0, count, 4000):

        async def insert(ctx: Any, start: int = start) -> None:
            for i in range(start, min(start + 4000, count)):
                first, last = f"First{i}", f"Last{i:06d}"
                await ctx.db.insert(
                    "contacts",
                    {
                        "organizationId": organization_id,
                        "email": f"user-{i:06d}@example.com",
                        "firstName": first,
                        "lastName": last,
                        "nameKey": f"{first} {last}".lower(),
                        "lastNameKey": last.lower(),
                        "source": "import",
                        "properties": {},
                        "createdAt": 0.0,
                        "updatedAt": 0.0,
                    },
                )

        await in_mutation(site.application, insert)


@pytest.mark.timeout(600)
async def test_contacts_screen_with_more_contacts_than_a_query_may_read(
    browser: Browser, dashboard_site: Site, screens: Screens
) -> None:
    site = dashboard_site
    page = await owner_page(browser, site, screens)
    await _seed_contacts(site, "acme-mail", SEEDED)
    # the open page grew past what one query may read: it started afresh, newest first
    newest = f"user-{SEEDED - 1:06d}@example.com"
    await cell(page, newest).wait_for()
    assert await page.get_by_role("row").count() <= 1 + 25

    # a fresh load of the contacts screen in a new tab (the newest contact first)
    cold = screens.watch(await page.context.new_page())
    started = time.monotonic()
    await cold.goto(site.site_url + "/contacts")
    await cell(cold, newest).wait_for()
    loaded = time.monotonic() - started
    await cold.close()
    # from another screen
    await page.get_by_role("link", name="Members").click()
    await cell(page, "ada@example.com").wait_for()
    started = time.monotonic()
    await page.get_by_role("link", name="Contacts").click()
    await cell(page, newest).wait_for()
    navigated = time.monotonic() - started
    await screens.check(page, f"contacts-{SEEDED // 1000}k")
    # the next page starts with the 26th newest, and the previous one comes back
    pages = page.get_by_role("navigation", name="Pages")
    await pages.get_by_role("button", name="Next page").click()
    await cell(page, f"user-{SEEDED - 26:06d}@example.com").wait_for()
    await pages.get_by_text("Page 2").wait_for()
    await cell(page, newest).wait_for(state="detached")
    await pages.get_by_role("button", name="Previous page").click()
    await cell(page, newest).wait_for()
    assert await pages.get_by_role("button", name="Previous page").is_disabled()

    # search: the page shows the one match this long after the last keystroke
    search = page.get_by_role("searchbox", name="Search by email or name")
    await search.click()
    await page.keyboard.type("user-004242", delay=20)
    typed = time.monotonic()
    await cell(page, "user-004242@example.com").wait_for()
    await cell(page, newest).wait_for(state="detached")
    searched = time.monotonic() - typed
    await search.fill("")
    tenth = (SEEDED - 1) // 10  # by last name: Last{tenth}0 … Last{tenth}9, ten matches
    await page.keyboard.type(f"last{tenth:05d}", delay=20)
    typed = time.monotonic()
    await cell(page, f"user-{tenth * 10:06d}@example.com").wait_for()
    by_name = time.monotonic() - typed
    await screens.check(page, f"contacts-{SEEDED // 1000}k-search")

    print(
        f"\n{SEEDED:,} contacts: load {loaded * 1000:.0f} ms, navigation {navigated * 1000:.0f} ms,"
        f" email search {searched * 1000:.0f} ms, name search {by_name * 1000:.0f} ms"
    )
    # The figures are printed for BENCHMARKS.md (goal: ≤ 1 s, ≤ 300 ms on a quiet machine),
    # not asserted: a timed test fails on a busy machine without anything being wrong.
    assert screens.errors == []


async def _javascript_loaded(page: Page, url: str, ready: Callable[[], Awaitable[Any]]) -> int:
    """Gzipped bytes (zlib level 6) of the JavaScript `page` fetched from opening `url` until
    `ready()` returned."""
    bodies: list[asyncio.Task[bytes]] = []

    def on_response(response: Response) -> None:
        if response.url.endswith(".js"):
            bodies.append(asyncio.ensure_future(response.body()))

    page.on("response", on_response)
    await page.goto(url)
    await ready()
    page.remove_listener("response", on_response)
    return sum(len(gzip.compress(body, compresslevel=6)) for body in await asyncio.gather(*bodies))


async def test_first_screens_load_under_300_kb_of_gzipped_javascript(
    browser: Browser, dashboard_site: Site, screens: Screens
) -> None:
    site = dashboard_site
    page = await new_page(browser, screens)
    sign_in = await _javascript_loaded(
        page,
        site.site_url + "/",
        page.get_by_role("button", name="Sign in").wait_for,
    )
    await page.goto(site.site_url + "/auth/sign-up")
    await sign_up(page, "Ada Lovelace", "ada@example.com")
    await page.get_by_label("Organization name").fill("Acme Mail")
    await page.get_by_role("button", name="Create organization").click()
    await page.get_by_text("No contacts yet.").wait_for()
    fresh = await new_page(browser, screens)  # the same session, a cold cache
    await fresh.context.add_cookies(await page.context.cookies())
    contacts = await _javascript_loaded(
        fresh, site.site_url + "/contacts", fresh.get_by_text("No contacts yet.").wait_for
    )
    print(f"\nfirst-screen JavaScript (gzip): sign-in {sign_in} B, contacts {contacts} B")
    assert sign_in <= 300_000 and contacts <= 300_000
    assert screens.errors == []
