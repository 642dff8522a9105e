"""The dashboard's API keys screen in a real browser against the real server: the secret
shown once, copied, stored by hash with the scopes chosen, then masked; keys made and
revoked elsewhere show live; an editor has no API keys section. No console error, axe-core
passes (screenshots in `.artifacts/web/<test>/`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from owlat.app.lib.tokens import token_hash
from owlat.runtime.testing import in_query
from tests.app.conftest import Site
from tests.web.conftest import Screens, settle
from tests.web.pages import cell, editor_page, go, owner_page

if TYPE_CHECKING:
    from playwright.async_api import Browser

pytestmark = pytest.mark.timeout(180)


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
