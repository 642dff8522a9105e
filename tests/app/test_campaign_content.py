"""What a campaign sends (lib/campaigns/content.py): the template as it was when sending
started, and the public "view in browser" archive (reference §11.2.5) on the site port;
on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from owlat.runtime.application import Application
from owlat.runtime.testing import in_query
from tests.app.campaign_setup import finished, list_audience, progress_until, ready_campaign
from tests.app.conftest import Caller, Site, owner_and_editor
from tests.app.domains.dns_server import DnsServer
from tests.app.sending.servers import Sink
from tests.app.test_campaigns import SENDER, _received, _smtp_list, owlat, sink, team

__all__ = ["owlat", "sink", "team"]  # fixtures
CHANGED = json.dumps(
    [{"id": "t1", "type": "text", "content": {"html": "<p>Changed {{firstName}}</p>"}}]
)


async def test_a_running_campaign_sends_its_template_as_it_was_at_the_start(
    owlat: Application, team: tuple[Caller, Caller, str], sink: tuple[Sink, int], dns: DnsServer
) -> None:
    owner, editor, _ = team
    list_id, _ = await _smtp_list(owlat, team, sink[1], dns, 300)
    campaign_id = await ready_campaign(owner, list_id, SENDER, editor)
    ident = {"campaignId": campaign_id}
    await owner.mutation("campaigns:send", ident)
    await owner.mutation("campaigns:pause", ident)
    campaign = await owner.query("campaigns:get", ident)
    template_id = campaign["emailTemplateId"]
    await owner.mutation(
        "emailTemplates:update",
        {
            "templateId": template_id,
            "subject": "Changed subject",
            "content": CHANGED,
            "forceWhilePublished": True,
        },
    )
    before = len(sink[0].received)
    await owner.mutation("campaigns:resume", ident)
    await finished(owner, campaign_id)
    assert len(sink[0].received) - before > 0  # sent after the edit
    for recipient, mail in _received(sink[0]):
        index = int(recipient[6:13])
        assert mail["Subject"] == f"News for R{index}"
        html = mail.get_body(("html",)).get_content()
        assert f"Hello R{index}" in html and "Changed" not in html
    # the next campaign with the template sends the new version
    copy_id = await owner.mutation("campaigns:duplicate", ident)
    await owner.mutation("campaigns:send", {"campaignId": copy_id})
    await finished(owner, copy_id)
    assert _received(sink[0])[-1][1]["Subject"] == "Changed subject"


@pytest.fixture
async def site(site_on_both_engines: Site) -> Site:
    return site_on_both_engines


def _view_url(mail: Any) -> str:
    text = mail.get_body(("plain",)).get_content()
    found = re.search(r"View in browser: (\S+)", text)
    assert found is not None, text[:300]
    return found.group(1)


async def test_the_archive_page_shows_a_recipient_their_message_without_counting_an_open(
    site: Site,
) -> None:
    owlat = site.application
    owner, editor, organization_id = await owner_and_editor(owlat)
    await owner.mutation(
        "providerRoutes:set",
        {"messageType": "campaign", "strategy": "single", "providers": [{"provider": "outbox"}]},
    )
    list_id = await owner.mutation(
        "mailingLists:create", {"name": "Readers", "requireDoubleOptIn": False}
    )
    contact_ids = await list_audience(owlat, organization_id, list_id, 2)
    campaign_id = await ready_campaign(owner, list_id, "news@acme-mail.example.com", editor)
    ident = {"campaignId": campaign_id}
    await editor.mutation("campaigns:update", {**ident, "archiveEnabled": True})
    assert "archiveToken" not in await editor.query("campaigns:get", ident)
    await owner.mutation("campaigns:send", ident)
    await finished(owner, campaign_id)
    token = (await editor.query("campaigns:get", ident))["archiveToken"]
    assert re.fullmatch(r"[A-Za-z0-9]{24}", token)
    outbox = site.outbox()  # the editor's invitation too
    mails = {str(mail["To"]): mail for mail in outbox if str(mail["To"]).startswith("reader")}
    assert set(mails) == {"reader0000000@example.org", "reader0000001@example.org"}
    mail = mails["reader0000000@example.org"]
    assert "View in browser</a>" in mail.get_body(("html",)).get_content()
    url = _view_url(mail)
    parts = urlsplit(url)
    assert parts.path == "/archive" and parse_qs(parts.query)["token"] == [token]
    path = f"{parts.path}?{parts.query}"

    async with httpx.AsyncClient(base_url=site.site_url) as http:
        page = await http.get(path)
        assert page.status_code == 200 and "Hello R0" in page.text
        assert "/t/o/" not in page.text and "/t/c/" not in page.text
        csp = page.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "allow-scripts" not in csp
        unsubscribe = re.search(r'href="([^"]*/unsubscribe\?token=[^"]+)"', page.text)
        assert unsubscribe is not None
        target = urlsplit(unsubscribe.group(1).replace("&amp;", "&"))
        done = await http.post(
            target.path,
            params=parse_qs(target.query),
            data={"token": parse_qs(target.query)["token"][0]},
        )
        assert done.status_code == 200 and "You are unsubscribed" in done.text

        async def contact(ctx: Any) -> dict[str, Any]:
            return dict(await ctx.db.get(contact_ids[0]))

        assert (await in_query(owlat, contact))["unsubscribedAt"] > 0
        progress = await editor.query("campaigns:progress", ident)
        assert progress["opened"] == 0 and progress["clicked"] == 0

        # a tampered or missing send signature: the campaign for nobody in particular
        for query in (parts.query[:-3] + "abc", f"token={token}"):
            generic = await http.get(f"/archive?{query}")
            assert generic.status_code == 200 and "Hello friend" in generic.text
            assert "R0" not in generic.text and "/unsubscribe?token=" not in generic.text
        answer = await http.get(f"/archive/{token}")
        assert answer.status_code == 200
        assert answer.headers["cache-control"] == "public, max-age=3600"
        data = answer.json()["data"]
        assert data["subject"] == "News for " and data["organizationName"] == "Acme"
        assert data["sentAt"] > 0 and "Hello friend" in data["html"]
        personal = await http.get(f"/archive/{token}", params={"s": parse_qs(parts.query)["s"][0]})
        assert personal.headers["cache-control"] == "no-store"
        assert personal.json()["data"]["subject"] == "News for R0"
        missing = await http.get("/archive/" + "x" * 24)
        assert missing.status_code == 404
        assert missing.json()["error"]["data"]["reason"] == "archive_not_found"
        assert (await http.get("/archive?token=" + "x" * 24)).status_code == 404
        assert (await http.post(f"/archive/{token}")).status_code == 405

    # a campaign without the archive has no page
    plain_id = await owner.mutation("campaigns:duplicate", ident)
    await editor.mutation("campaigns:update", {"campaignId": plain_id, "archiveEnabled": False})
    await owner.mutation("campaigns:send", {"campaignId": plain_id})
    await progress_until(owner, plain_id, lambda p: p["status"] == "sent")
    assert "archiveToken" not in await editor.query("campaigns:get", {"campaignId": plain_id})
