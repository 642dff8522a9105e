"""The dashboard's campaign screens in a real browser against the real server: a draft made
in the wizard, the server's preflight problems shown at their fields before any send
(Send waits), fixed, sent to a list through the outbox while the live page's progress
reaches 100 % without a reload and a second browser sees the status change; scheduling
with the date and time pickers, also at each recipient's local time; an editor drafts but
has no send or schedule button, and the server refuses them anyway; an A/B test set up in
the editor, its variants live, a manual winner declared by an admin (an editor has no
button); one held by the content scan, its findings shown, approved; the curated
senders' From picker and settings card. No console error, no serious
or critical axe-core violation, screenshots in `.artifacts/web/<test>/`."""

from __future__ import annotations

import asyncio
import dataclasses
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session

from owlat.runtime import ConvexError
from owlat.runtime.testing import in_mutation, in_query
from tests.app.campaign_setup import (
    list_audience,
    progress_until,
    published_template,
    ready_campaign,
)
from tests.app.conftest import Caller, Site
from tests.app.mail_setup import LOOPBACK_SINKS
from tests.app.sending.servers import Sink, smtp_server
from tests.web.conftest import Screens, new_page, settle, start_dashboard_site
from tests.web.pages import choose, editor_page, go, owner_page

if TYPE_CHECKING:
    from playwright.async_api import Browser, Page


pytestmark = pytest.mark.timeout(180)


async def caller_of(site: Site, email: str) -> tuple[Caller, str]:
    """The user signed in as `email` in a browser, as an in-process caller (their browser
    session, hence its active organization), and that organization's id."""

    async def read(ctx: Any) -> tuple[str, str, str]:
        user = (
            await ctx.db.query("users")
            .with_index("by_email", lambda q: q.eq("email", email))
            .unique()
        )
        session = (
            await ctx.db.query("sessions")
            .with_index("by_user", lambda q: q.eq("userId", user["_id"]))
            .first()
        )
        return str(user["_id"]), str(session["_id"]), str(session["activeOrganizationId"])

    user_id, session_id, organization_id = await in_query(site.application, read)
    return Caller(site.application, user_id, session_id, email), organization_id


async def new_draft(page: Page, name: str) -> None:
    await page.get_by_role("button", name="New campaign").click()
    dialog = page.get_by_role("dialog")
    await dialog.wait_for()
    await settle(page)
    await dialog.get_by_label("Campaign name").fill(name)
    await dialog.get_by_role("button", name="Create draft").click()
    await page.get_by_role("heading", name=name, level=1).wait_for()


async def test_campaign_wizard_send_and_live_progress(
    browser: Browser, dashboard_site: Site, screens: Screens
) -> None:
    site = dashboard_site
    page = await owner_page(browser, site, screens)
    ada, organization_id = await caller_of(site, "ada@example.com")
    list_id = await ada.mutation(
        "mailingLists:create", {"name": "Readers", "requireDoubleOptIn": False}
    )
    readers = await list_audience(site.application, organization_id, list_id, 3)
    await published_template(ada)  # "News"

    # a draft: name, audience with its live count, From; saved
    await go(page, "Campaigns")
    await page.get_by_text("No campaigns yet.").wait_for()
    await new_draft(page, "Spring news")
    await choose(page, page, "Mailing list", "Readers")
    recipients = page.get_by_role("status", name="Recipients")
    await recipients.filter(has_text="3 recipients subscribed").wait_for()
    await page.get_by_label("From address").fill("news@acme-mail.com")
    await page.get_by_label("From name").fill("Acme News")
    await page.get_by_role("button", name="Save draft").click()
    await page.get_by_text("Draft saved").wait_for()

    # the preflight's problems show at their fields before any send; Send waits for none
    send_now = page.get_by_role("button", name="Send now…")
    template = page.locator(".v-input", has=page.get_by_role("combobox", name="Template"))
    await template.get_by_text("Choose the campaign's email template first").wait_for()
    await page.get_by_role("status", name="Preflight").filter(has_text="1 problem").wait_for()
    assert await send_now.is_disabled()
    await page.get_by_label("Reply-To").fill("not an address")
    reply_to = page.locator(".v-input", has=page.get_by_label("Reply-To"))
    await reply_to.get_by_text("replyTo must be one email address").wait_for()
    await page.get_by_text("2 problems to fix before sending").wait_for()
    await screens.check(page, "campaign-editor-preflight")
    await page.get_by_label("Reply-To").fill("")
    await reply_to.get_by_text("replyTo must be").wait_for(state="detached")
    await choose(page, page, "Template", "News")
    frame = page.get_by_title("Email preview")
    await frame.wait_for()
    assert "Hello Jane" in (await frame.get_attribute("srcdoc") or "")
    await page.get_by_label("Subject").fill("Spring is here, {{firstName}}")
    await template.get_by_text("Choose the campaign's email template").wait_for(state="detached")
    await page.get_by_role("status", name="Preflight").wait_for(state="detached")
    await send_now.and_(page.locator(":enabled")).wait_for()
    await page.get_by_role("button", name="Save draft").click()
    await page.get_by_text("Draft saved").wait_for()
    await screens.check(page, "campaign-editor")

    # scheduling: the date and time pickers, the recipient count, and back to draft
    await page.get_by_role("button", name="Schedule…").click()
    dialog = page.get_by_role("dialog", name="Schedule the campaign")
    await dialog.wait_for()
    await settle(page)
    await dialog.get_by_text("3 recipients").wait_for()
    await screens.check(page, "campaign-schedule")
    await dialog.get_by_role("status", name="Send time").filter(has_text="Sends ").wait_for()
    await dialog.get_by_role("button", name="Schedule", exact=True).click()
    status = page.get_by_label("Status")
    await status.filter(has_text="Scheduled").wait_for()
    await page.get_by_text("Scheduled for").wait_for()
    await page.get_by_role("button", name="Back to draft").click()
    await status.filter(has_text="Draft").wait_for()

    # at each recipient's local time: the hour of the picker in every recipient's zone
    await page.get_by_role("button", name="Schedule…").click()
    dialog = page.get_by_role("dialog", name="Schedule the campaign")
    await dialog.get_by_label("At each recipient's local time").check()
    send_time = dialog.get_by_role("status", name="Send time")
    await send_time.filter(has_text="in each recipient's time zone").wait_for()
    await dialog.get_by_role("button", name="Schedule", exact=True).click()
    await page.get_by_text(":00 in each recipient's time zone").wait_for()
    scheduled = await ada.query("campaigns:get", {"campaignId": page.url.rsplit("/", 1)[1]})
    assert scheduled["useRecipientTimezone"] is True and scheduled["scheduledMinute"] == 0
    await page.get_by_role("button", name="Back to draft").click()
    await status.filter(has_text="Draft").wait_for()

    # another browser (the same user) watches the list
    other = await new_page(browser, screens)
    await other.context.add_cookies(await page.context.cookies())
    await other.goto(site.site_url + "/campaigns")
    row = other.get_by_role("row").filter(has_text="Spring news")
    await row.get_by_text("Draft").wait_for()

    # sent through the outbox: the page follows to 100 % without a reload
    await page.evaluate("window.__notReloaded = true")
    await page.get_by_role("button", name="Send now…").click()
    dialog = page.get_by_role("dialog", name="Send the campaign")
    await dialog.get_by_text("3 recipients").wait_for()
    await dialog.get_by_role("button", name="Send", exact=True).click()
    await (
        page.get_by_role("status", name="Percent sent")
        .filter(has_text="100 %")
        .wait_for(timeout=15_000)
    )
    await status.filter(has_text="Sent").wait_for()
    assert (await page.get_by_label("Sent", exact=True).text_content() or "").strip() == "3"
    assert await page.evaluate("window.__notReloaded === true")
    await row.get_by_text("Sent").wait_for(timeout=2000)
    received = sorted(
        str(message["To"]) for message in site.outbox() if "Spring" in str(message["Subject"])
    )
    assert len(received) == 3, received
    assert len(readers) == 3

    # feedback (provider events, tracking) moves the figures and the chart live
    async def engaged(ctx: Any) -> None:
        (stats,) = await ctx.db.query("campaignStats").collect()
        await ctx.db.patch(
            stats["_id"], {"delivered": 3, "opened": 2, "humanOpened": 1, "clicked": 1}
        )

    await in_mutation(site.application, engaged)
    human = page.get_by_label("Human opens", exact=True)
    await human.filter(has_text="33.3 %").wait_for(timeout=1000)
    chart = page.get_by_role("img", name="Engagement")
    await chart.and_(page.locator('[aria-label*="Human opens 1"]')).wait_for()
    await screens.check(page, "campaign-live")

    # the list: status badges, filtered by status
    await choose(other, other, "Status", "Draft")
    await other.get_by_text("No draft campaigns.").wait_for()
    await choose(other, other, "Status", "Sent")
    await row.get_by_role("link", name="Spring news").wait_for()
    await choose(other, other, "Status", "All statuses")

    # an editor drafts but sends nothing: no button, and the server refuses
    editor = await editor_page(browser, site, screens)
    await go(editor, "Campaigns")
    await new_draft(editor, "Summer news")
    await editor.get_by_role("button", name="Save draft").wait_for()
    assert await editor.get_by_role("button", name="Send now…").count() == 0
    assert await editor.get_by_role("button", name="Schedule…").count() == 0
    await editor.get_by_text("Only owners and admins send").wait_for()
    await screens.check(editor, "campaign-editor-editor")
    eddie, _ = await caller_of(site, "editor@example.com")
    summer = editor.url.rsplit("/", 1)[1]
    for refused in ("campaigns:send", "campaigns:cancel"):
        with pytest.raises(ConvexError, match="^Admin access required"):
            await eddie.mutation(refused, {"campaignId": summer})
    await other.get_by_role("row").filter(has_text="Summer news").wait_for()
    await screens.check(other, "campaigns")
    await go(editor, "Campaigns")
    await editor.get_by_role("link", name="Spring news").click()
    await editor.get_by_text("Engagement").wait_for()
    assert await editor.get_by_role("button", name="Pause").count() == 0
    assert screens.errors == []


@dataclasses.dataclass
class HeldSink(Sink):
    """An SMTP sink that accepts no message until `gate` is set: the campaign stays
    `sending` while the test needs it (less than the relay's 30 s timeout: no slow
    screenshot while it holds)."""

    gate: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        await self.gate.wait()
        return await super().handle_DATA(server, session, envelope)


@pytest.fixture
async def held_relay_site(
    tmp_path: Path, built_web: Path
) -> AsyncIterator[tuple[Site, HeldSink, int]]:
    """`owlat dev` (a relay on loopback is a local sink: no sending domain needed) with an
    SMTP relay that holds every message until released; the relay's port."""
    sink = HeldSink()
    async with smtp_server(sink) as port:
        options = {"development": True, "smtp_hosts": LOOPBACK_SINKS}
        async with start_dashboard_site(tmp_path, **options) as site:
            try:
                yield site, sink, port
            finally:
                sink.gate.set()


async def test_pause_resume_and_cancel_a_sending_campaign(
    browser: Browser, held_relay_site: tuple[Site, HeldSink, int], screens: Screens
) -> None:
    site, sink, port = held_relay_site
    page = await owner_page(browser, site, screens)
    ada, organization_id = await caller_of(site, "ada@example.com")
    await ada.mutation(
        "emailProviders:saveSmtp",
        {"host": "127.0.0.1", "port": port, "security": "none"},
    )
    list_id = await ada.mutation(
        "mailingLists:create", {"name": "Readers", "requireDoubleOptIn": False}
    )
    await list_audience(site.application, organization_id, list_id, 3)
    campaign_id = await ready_campaign(ada, list_id, "news@acme-mail.com")
    other = screens.watch(await page.context.new_page())
    await other.goto(site.site_url + "/campaigns")
    await other.get_by_role("row").filter(has_text="Spring news").wait_for()

    await page.goto(f"{site.site_url}/campaigns/{campaign_id}")
    await page.get_by_role("button", name="Send now…").click()
    await (
        page.get_by_role("dialog", name="Send the campaign")
        .get_by_role("button", name="Send", exact=True)
        .click()
    )
    status = page.get_by_label("Status")
    await status.filter(has_text="Sending").wait_for()
    await page.get_by_role("status", name="Percent sent").filter(has_text="0 %").wait_for()
    # the list shows the sending campaign's live progress
    await other.get_by_role("progressbar", name="Spring news: send progress").wait_for()
    await screens.check(other, "campaigns-sending")

    await page.get_by_role("button", name="Pause").click()
    await status.filter(has_text="Paused").wait_for()
    await page.get_by_role("button", name="Resume").click()
    await status.filter(has_text="Sending").wait_for()
    await page.get_by_role("button", name="Cancel sending").click()
    await (
        page.get_by_role("dialog", name="Cancel sending")
        .get_by_role("button", name="Cancel sending")
        .click()
    )
    await status.filter(has_text="Cancelled").wait_for()
    assert await page.get_by_role("button", name="Resume").count() == 0
    await (
        other.get_by_role("row")
        .filter(has_text="Spring news")
        .get_by_text("Cancelled")
        .wait_for(timeout=2000)
    )
    sink.gate.set()  # the batch claimed before the pause goes out; nothing else
    await page.get_by_label("Pending", exact=True).filter(has_text="0").wait_for()
    await screens.check(page, "campaign-cancelled")

    # one the content scan holds: its findings, then the owner's approval sends it
    held = await ready_campaign(ada, list_id, "news@acme-mail.com")
    shouting = {"campaignId": held, "subject": "FREE MONEY, ACT NOW!!!"}
    await ada.mutation("campaigns:update", shouting)
    assert (await ada.mutation("campaigns:send", {"campaignId": held}))["status"] == (
        "pending_review"
    )
    await page.goto(f"{site.site_url}/campaigns/{held}")
    await status.filter(has_text="Pending review").wait_for()
    review = page.get_by_role("region", name="Content scan")
    await review.get_by_text("Held for review: the content scan scored 36 of 100").wait_for()
    await review.get_by_text("Subject is mostly capital letters").wait_for()
    await screens.check(page, "campaign-held")
    await review.get_by_role("button", name="Approve").click()
    await status.filter(has_text=re.compile("^(Sending|Sent)$")).wait_for()
    assert await review.count() == 0
    assert screens.errors == []


async def test_an_ab_test_with_a_manual_winner(
    browser: Browser, dashboard_site: Site, screens: Screens
) -> None:
    site = dashboard_site
    page = await owner_page(browser, site, screens)
    ada, organization_id = await caller_of(site, "ada@example.com")
    list_id = await ada.mutation(
        "mailingLists:create", {"name": "Readers", "requireDoubleOptIn": False}
    )
    await list_audience(site.application, organization_id, list_id, 30)
    campaign_id = await ready_campaign(ada, list_id, "news@acme-mail.com")

    async def curated(ctx: Any) -> None:  # written directly: no verified domain here
        for email in ("news@acme-mail.com", "team@acme-mail.com"):
            await ctx.db.insert(
                "campaignSenders",
                {"organizationId": organization_id, "email": email, "displayName": "Acme",
                 "isEnabled": True, "isDefault": email.startswith("news"), "createdAt": 0.0,
                 "updatedAt": 0.0},
            )  # fmt: skip

    await in_mutation(site.application, curated)
    await page.goto(f"{site.site_url}/campaigns/{campaign_id}")

    # From: the curated senders' picker
    await page.get_by_text("The organization's campaign senders").wait_for()
    await page.locator(".v-field", has=page.get_by_role("combobox", name="From address")).click()
    await page.get_by_role("option", name="Acme <team@acme-mail.com>").wait_for()
    await page.keyboard.press("Escape")

    # set up in the editor: variant B's subject, 20 % each, a manual winner
    await page.get_by_role("button", name="Set up an A/B test").click()
    await page.get_by_label("Variant B subject").fill("Variant B news")
    await page.get_by_role("status", name="Split").filter(has_text="the other 60 %").wait_for()
    await choose(page, page, "Winner", "I choose (manual)")
    assert await page.get_by_label("Test duration (hours)").count() == 0
    await page.get_by_role("button", name="Save A/B test").click()
    await page.get_by_role("button", name="Remove A/B test").wait_for()
    await screens.check(page, "campaign-ab-editor")

    # sent through the outbox (with its "view in browser" page): the test cohort gets its
    # variants, the rest waits
    await page.get_by_label("View in browser").check()
    await page.get_by_role("button", name="Send now…").click()
    dialog = page.get_by_role("dialog", name="Send the campaign")
    await dialog.get_by_role("button", name="Send", exact=True).click()
    state = page.get_by_role("status", name="A/B test state")
    await state.filter(has_text="an owner or admin declares the winner").wait_for()

    def tested(progress: dict[str, Any]) -> bool:
        return progress["enqueued"] > 0 and progress["pending"] == 0 and not progress["walking"]

    progress = await progress_until(ada, campaign_id, tested)
    test = progress["abTest"]
    sent = {name: int(test["variants"][name]["sent"]) for name in ("A", "B")}
    assert sent["A"] + sent["B"] == progress["sent"] and test["heldBack"] > 0, progress
    for name in ("A", "B"):
        row = page.get_by_role("row", name=f"Variant {name}")
        await row.get_by_role("cell").first.filter(has_text=str(sent[name])).wait_for()
    await page.get_by_text(f"{int(test['heldBack'])} contacts wait for the winner").wait_for()

    # an editor sees the test, and no Declare-winner button
    editor = await editor_page(browser, site, screens)
    await editor.goto(f"{site.site_url}/campaigns/{campaign_id}")
    await editor.get_by_role("row", name="Variant B").wait_for()
    assert await editor.get_by_role("button", name="Declare B the winner").count() == 0
    eddie, _ = await caller_of(site, "editor@example.com")
    with pytest.raises(ConvexError, match="^Admin access required"):
        await eddie.mutation(
            "campaigns:declareAbTestWinner", {"campaignId": campaign_id, "winner": "B"}
        )

    # the owner declares B: the rest of the audience gets variant B
    await screens.check(page, "campaign-ab-testing")
    await page.get_by_role("button", name="Declare B the winner").click()
    await (
        page.get_by_role("dialog", name="Declare the winner")
        .get_by_role("button", name="Declare B the winner")
        .click()
    )
    await state.filter(has_text="Variant B won").wait_for()
    await page.get_by_label("Status").filter(has_text="Sent").wait_for(timeout=15_000)
    await page.get_by_role("row", name="Variant B").get_by_label("Winner").wait_for()
    await editor.get_by_role("status", name="A/B test state").filter(has_text="B won").wait_for()
    subjects = [str(message["Subject"]) for message in site.outbox()]
    assert len(subjects) == 30
    assert sum(s == "Variant B news" for s in subjects) == 30 - sent["A"]
    archive = page.get_by_role("link", name="View in browser")
    assert (await archive.get_attribute("href") or "").startswith("/archive?token=")
    await screens.check(page, "campaign-ab-live")

    # the senders card in the settings: switched off, a sender leaves the picker
    await go(page, "Settings")
    switch = page.get_by_label("team@acme-mail.com enabled")
    await switch.check()  # already on: no change
    await switch.uncheck()
    await screens.check(page, "settings-senders")
    senders = await ada.query("campaignSenders:listForPicker")
    assert [row["email"] for row in senders] == ["news@acme-mail.com"]
    assert screens.errors == []
