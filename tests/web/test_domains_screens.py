"""The dashboard's sending domains and email providers in a real browser against the real
server and a DNS server of the test's own: the DNS records issued and copied, verified
live once published; the SMTP relay set up (its password never shown back), tested,
removed; an editor changes neither. No console error, axe-core passes (screenshots in
`.artifacts/web/<test>/`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from owlat.runtime.testing import in_mutation, in_query
from tests.app.conftest import Site
from tests.app.domains.dns_server import DnsServer
from tests.web.conftest import Screens, settle, start_dashboard_site
from tests.web.pages import editor_page, go, owner_page

if TYPE_CHECKING:
    from playwright.async_api import Browser

pytestmark = pytest.mark.timeout(180)


@pytest.fixture
async def mail_site(tmp_path: Path, built_web: Path) -> AsyncIterator[tuple[Site, DnsServer]]:
    """`dashboard_site` whose DNS checks ask a DNS server of the test's own."""
    with DnsServer.running() as dns:
        options = {"dns_nameservers": (("127.0.0.1", dns.port),)}
        async with start_dashboard_site(tmp_path, **options) as site:
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

    # a verification over a day old is stale: a warning; the domain stays verified
    async def age(ctx: Any) -> None:
        (domain,) = await ctx.db.query("domains").collect()
        day_ago = domain["lastVerifiedAt"] - 25 * 3600 * 1000
        await ctx.db.patch(domain["_id"], {"lastVerifiedAt": day_ago})

    await in_mutation(site.application, age)
    await page.get_by_text("The last successful verification is over 24 hours old").wait_for()
    await page.get_by_text("verified", exact=True).wait_for()

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
