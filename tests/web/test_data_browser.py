"""The data browser in Debian's Chromium (runtime/server/data_browser.py): sign in with the
admin key, see a table's count, page to a document and open it, run a function; each
screen without serious or critical axe-core violations, photographed into .artifacts/web/."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from owlat.runtime.server.data_browser import CONTENT_SECURITY_POLICY
from tests.e2e.conftest import Issuers, start_server
from tests.e2e.conftest import issuers as issuers  # the fixture
from tests.web.conftest import Screens, new_page

if TYPE_CHECKING:
    from playwright.async_api import Browser


async def test_sign_in_browse_and_run(
    tmp_path: Path, issuers: Issuers, browser: Browser, screens: Screens
) -> None:
    async with start_server(tmp_path, issuers) as server:
        for body in ("first", "second"):
            await server.application.run_mutation(
                "messages:send", {"channel": "general", "body": body}
            )
        page = await new_page(browser, screens)
        response = await page.goto(f"{server.url}/_admin/")
        assert response is not None
        assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        await screens.check(page, "data-browser-sign-in")

        await page.get_by_label("Admin key").fill("wrong")
        await page.get_by_role("button", name="Sign in").click()
        await page.get_by_text("The admin key was refused").wait_for()

        await page.get_by_label("Admin key").fill(server.admin_key)
        await page.get_by_role("button", name="Sign in").click()
        count = page.locator('td[data-table="messages"]')
        await count.wait_for()
        assert await count.text_content() == "2"

        await page.get_by_role("button", name="messages", exact=True).click()
        documents = page.locator("#documents li")
        await documents.nth(1).wait_for()
        assert "second" in (await documents.first.text_content() or "")  # newest first
        await documents.first.get_by_role("button").click()
        await page.locator("#document").filter(has_text='"body": "second"').wait_for()

        await page.get_by_role("textbox", name="Function", exact=True).fill("probes:shout")
        await page.get_by_label("Arguments (JSON object)").fill('{"text": "hello"}')
        await page.get_by_role("button", name="Run", exact=True).click()
        await page.locator("#run-result").filter(has_text='"HELLO"').wait_for()
        await page.locator("#logs").filter(has_text="shouting hello").wait_for()
        await screens.check(page, "data-browser")
        # the browser's only console errors: the refused sign-in's 401 responses
        assert all("401" in error for error in screens.errors), screens.errors
