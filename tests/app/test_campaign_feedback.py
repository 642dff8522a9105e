"""Campaign sends (`emailSends`) as first-class sends: tracked links and pixel in the
message, opens and clicks moving the campaign's counters and the contact's flags, provider
bounces suppressing and counting, outgoing email.* webhooks; on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from owlat.runtime.testing import in_mutation, in_query
from tests.app.campaign_setup import finished, list_audience
from tests.app.conftest import Caller, Site
from tests.app.rendering.samples import text_block
from tests.app.test_provider_webhooks import SnsSigner, _post, _ses, signer
from tests.app.test_rest_api import organization
from tests.app.test_webhooks import Receiver, _finished, _webhook, receiver

__all__ = ["receiver", "signer"]  # fixtures
BROWSER = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0) AppleWebKit/605.1.15 Safari/605.1.15"
SHOP = "https://shop.example/spring"


@pytest.fixture
async def site(site_on_both_engines: Site) -> Site:
    return site_on_both_engines


@pytest.fixture
async def team(site: Site) -> tuple[Caller, str]:
    return await organization(site, "acme")


async def _campaign(site: Site, team: tuple[Caller, str], count: int) -> tuple[str, list[str]]:
    """A sent campaign (through the outbox) to a list of `count`, whose template links to
    `SHOP`; (campaign id, contact ids)."""
    owner, organization_id = team
    list_id = await owner.mutation(
        "mailingLists:create", {"name": "Readers", "requireDoubleOptIn": False}
    )
    contacts = await list_audience(site.application, organization_id, list_id, count)
    content = json.dumps([text_block(f'<p>Hi <a href="{SHOP}">the spring sale</a></p>')])
    template_id = await owner.mutation(
        "emailTemplates:create",
        {"name": "News", "type": "marketing", "subject": "News", "content": content},
    )
    await owner.mutation("emailTemplates:publish", {"templateId": template_id})
    campaign_id: str = await owner.mutation("campaigns:create", {"name": "Spring"})
    await owner.mutation(
        "campaigns:update",
        {"campaignId": campaign_id, "emailTemplateId": template_id,
         "fromEmail": "news@acme.example.com", "fromName": "Acme",
         "audience": {"kind": "list", "listId": list_id}},
    )  # fmt: skip
    await owner.mutation("campaigns:send", {"campaignId": campaign_id})
    await finished(owner, campaign_id)
    return campaign_id, contacts


async def _sends(site: Site, campaign_id: str) -> dict[str, dict[str, Any]]:
    async def read(ctx: Any) -> dict[str, dict[str, Any]]:
        rows = await ctx.db.query("emailSends").collect()
        return {row["email"]: dict(row) for row in rows if row["campaignId"] == campaign_id}

    return dict(await in_query(site.application, read))


def _html(site: Site, email: str) -> str:
    (mail,) = [m for m in site.outbox() if m["To"] == email]
    return str(mail.get_body(("html",)).get_content())


def _pixel_and_link(html: str) -> tuple[str, str]:
    pixel = html.split('<img src="')[-1].split('"')[0]
    (link,) = [href for href in html.split('href="')[1:] if "/t/c/" in href]
    return pixel, link.split('"')[0]


async def _progress(owner: Caller, campaign_id: str) -> dict[str, Any]:
    progress: dict[str, Any] = await owner.query("campaigns:progress", {"campaignId": campaign_id})
    return progress


async def test_opens_and_clicks_of_a_campaign_move_its_stats_and_the_contact(
    site: Site, team: tuple[Caller, str]
) -> None:
    owner = team[0]
    campaign_id, contacts = await _campaign(site, team, 3)
    sends = await _sends(site, campaign_id)
    first, second = sorted(sends)[:2]
    pixel, link = _pixel_and_link(_html(site, first))
    assert f"/t/o/{sends[first]['_id']}" in pixel and "/t/c/" in link
    assert SHOP not in _html(site, first).replace(f"{SHOP}</", "")  # the link is rewritten
    async with httpx.AsyncClient(headers={"user-agent": BROWSER}) as http:
        assert (await http.get(pixel)).status_code == 200
        await http.get(pixel)  # a second open counts on the row, not in the stats
        clicked = await http.get(link)
        assert (clicked.status_code, clicked.headers["location"]) == (302, SHOP)
        # Gmail's image proxy: an open, not a human one
        proxy = {"user-agent": "Mozilla/5.0 (via ggpht.com GoogleImageProxy)"}
        await http.get(_pixel_and_link(_html(site, second))[0], headers=proxy)
    progress = await _progress(owner, campaign_id)
    assert {k: progress[k] for k in ("sent", "delivered", "opened", "humanOpened", "clicked")} == {
        "sent": 3, "delivered": 2, "opened": 2, "humanOpened": 1, "clicked": 1,
    }  # fmt: skip
    row = (await _sends(site, campaign_id))[first]
    assert (row["status"], row["openCount"], row["clickCount"]) == ("clicked", 2, 1)
    assert row["clickedLinks"][0]["url"] == SHOP

    async def contacts_of(ctx: Any) -> list[dict[str, Any]]:
        return [dict(await ctx.db.get(contact_id)) for contact_id in contacts]

    flags = {
        c["email"]: (c.get("hasOpened"), c.get("hasClicked"))
        for c in await in_query(site.application, contacts_of)
    }
    assert flags[first] == (True, True)
    assert flags[second] == (None, None)  # a proxy's prefetch is not the reader


async def test_a_campaign_is_untracked_when_the_organization_turns_tracking_off(
    site: Site, team: tuple[Caller, str]
) -> None:
    owner = team[0]
    await owner.mutation("organizationSettings:update", {"tracking": False})
    campaign_id, _ = await _campaign(site, team, 1)
    (email,) = await _sends(site, campaign_id)
    html = _html(site, email)
    assert f'href="{SHOP}"' in html and "/t/o/" not in html and "/t/c/" not in html


async def test_an_ses_bounce_of_a_campaign_send_suppresses_and_counts(
    site: Site, team: tuple[Caller, str], signer: SnsSigner
) -> None:
    owner = team[0]
    campaign_id, _ = await _campaign(site, team, 2)
    sends = await _sends(site, campaign_id)
    gone, annoyed = sorted(sends)

    async def as_ses(ctx: Any) -> None:
        for email, message_id in ((gone, "s-1"), (annoyed, "s-2")):
            patch = {"providerType": "ses", "providerMessageId": message_id}
            await ctx.db.patch(sends[email]["_id"], patch)

    await in_mutation(site.application, as_ses)
    bounce = {"bounceType": "Permanent", "bouncedRecipients": [{"diagnosticCode": "550 5.1.1"}]}
    message = signer.message(Message=_ses("Bounce", "s-1", bounce=bounce))
    response = await _post(site, "/webhooks/ses", message)
    assert response.json() == {"success": True, "kind": "bounced"}
    row = (await _sends(site, campaign_id))[gone]
    assert (row["status"], row["bounceType"]) == ("bounced", "hard")

    async def blocked(ctx: Any) -> list[dict[str, Any]]:
        return [dict(r) for r in await ctx.db.query("blockedEmails").collect()]

    (entry,) = await in_query(site.application, blocked)
    assert (entry["email"], entry["reason"]) == (gone, "bounced")
    assert entry["sourceSendId"] == f"emailSends:{row['_id']}"
    progress = await _progress(owner, campaign_id)
    assert (progress["bounced"], progress["hardBounced"], progress["softBounced"]) == (1, 1, 0)
    complaint = {"complainedRecipients": [{"emailAddress": annoyed}]}
    message = signer.message(Message=_ses("Complaint", "s-2", complaint=complaint))
    assert (await _post(site, "/webhooks/ses", message)).status_code == 200
    progress = await _progress(owner, campaign_id)
    assert (progress["complained"], progress["delivered"]) == (1, 1)


async def test_webhooks_receive_the_email_events_of_a_campaign_send(
    site: Site, team: tuple[Caller, str], receiver: Receiver
) -> None:
    owner = team[0]
    created = await _webhook(owner, receiver, ["email.sent", "email.opened"])
    campaign_id, _ = await _campaign(site, team, 2)
    await _finished(owner, created["webhookId"], 2)
    sends = await _sends(site, campaign_id)
    email = sorted(sends)[0]
    async with httpx.AsyncClient(headers={"user-agent": BROWSER}) as http:
        await http.get(_pixel_and_link(_html(site, email))[0])
    await _finished(owner, created["webhookId"], 3)
    assert receiver.events() == ["email.opened", "email.sent", "email.sent"]
    sent = receiver.data("email.sent")
    assert {d["campaignId"] for d in sent} == {campaign_id}
    assert {d["sendId"] for d in sent} == {str(row["_id"]) for row in sends.values()}
    (opened,) = receiver.data("email.opened")
    assert (opened["email"], opened["sendId"]) == (email, str(sends[email]["_id"]))


async def test_without_a_webhook_a_campaign_logs_no_deliveries(
    site: Site, team: tuple[Caller, str]
) -> None:
    campaign_id, _ = await _campaign(site, team, 3)

    async def logs(ctx: Any) -> int:
        return len(await ctx.db.query("webhookDeliveryLogs").collect())

    assert await in_query(site.application, logs) == 0
    assert (await _progress(team[0], campaign_id))["sent"] == 3
