"""campaignSenders:* (lib/campaigns/senders.py, reference §2.2, §7.5): the curated From
list, admin-only, on verified domains; once curated, a campaign sends From an enabled
sender only (set on a draft, and again at preflight); on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from owlat.runtime import ConvexError
from owlat.runtime.application import Application
from tests.app.campaign_setup import finished, ready_campaign
from tests.app.conftest import Caller
from tests.app.domains.dns_server import DnsServer
from tests.app.sending.servers import Sink
from tests.app.test_campaigns import DOMAIN, SENDER, _smtp_list, owlat, sink, team

__all__ = ["owlat", "sink", "team"]  # fixtures


async def test_a_curated_sender_list_gates_the_from_address_of_campaigns(
    owlat: Application, team: tuple[Caller, Caller, str], sink: tuple[Sink, int], dns: DnsServer
) -> None:
    owner, editor, _ = team
    list_id, _ = await _smtp_list(owlat, team, sink[1], dns, 3)
    campaign_id = await ready_campaign(owner, list_id, SENDER, editor)  # no list: not gated
    ident = {"campaignId": campaign_id}
    with pytest.raises(ConvexError, match="^Admin access required$"):
        await editor.mutation("campaignSenders:create", {"email": SENDER})
    for email, message in (
        ("not an address", "^Invalid email address: 'not an address'$"),
        ("x@elsewhere.com", "^Cannot send from x@elsewhere.com: elsewhere.com is not a sending"),
    ):
        with pytest.raises(ConvexError, match=message):
            await owner.mutation("campaignSenders:create", {"email": email})
    news = await owner.mutation(
        "campaignSenders:create", {"email": SENDER.upper(), "displayName": " Acme\nNews "}
    )
    with pytest.raises(ConvexError, match=f"^{SENDER} is a campaign sender already$"):
        await owner.mutation("campaignSenders:create", {"email": SENDER})
    alerts = await owner.mutation("campaignSenders:create", {"email": f"alerts@{DOMAIN}"})
    listed = await owner.query("campaignSenders:list", {})
    assert [(s["email"], s["isDefault"], s.get("displayName")) for s in listed] == [
        (SENDER, True, "Acme News"), (f"alerts@{DOMAIN}", False, None)
    ]  # fmt: skip
    await owner.mutation("campaignSenders:setDefault", {"senderId": alerts})
    picker = await editor.query("campaignSenders:listForPicker", {})
    assert [(s["_id"], s["isDefault"]) for s in picker] == [(alerts, True), (news, False)]
    with pytest.raises(ConvexError, match="^Admin access required$"):
        await editor.query("campaignSenders:list", {})

    # curated: a draft takes only an enabled sender
    with pytest.raises(ConvexError, match=f"^other@{DOMAIN} is not one of the organization's"):
        await editor.mutation("campaigns:update", {**ident, "fromEmail": f"other@{DOMAIN}"})
    await owner.mutation("campaignSenders:update", {"senderId": news, "isEnabled": False})
    assert [s["_id"] for s in await editor.query("campaignSenders:listForPicker", {})] == [alerts]
    with pytest.raises(ConvexError, match=f"^{SENDER} is not one of the organization's campaign"):
        await owner.mutation("campaigns:send", ident)  # preflight: disabled since
    await owner.mutation("campaignSenders:update", {"senderId": news, "isEnabled": True})
    await owner.mutation("campaigns:send", ident)
    assert (await finished(editor, campaign_id))["sent"] == 3
    await owner.mutation("campaignSenders:remove", {"senderId": news})
    with pytest.raises(ConvexError, match="^Sender not found$"):
        await owner.mutation("campaignSenders:setDefault", {"senderId": news})
