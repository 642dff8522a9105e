"""domains:*, dnsVerification:*, sesActions:*, trackingDomains:* — records issued per
provider kind, verification against a real DNS server on loopback (dnslib), the lifecycle
of §12.1 and the cron that re-checks, SES identities on moto_server."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from owlat.app.lib.domains.states import PENDING_GRACE_MS
from owlat.runtime import ConvexError
from owlat.runtime.application import Application
from owlat.runtime.testing import in_mutation
from tests.app.conftest import Caller, owner_and_editor
from tests.app.domains.dns_server import DnsServer
from tests.app.mail_setup import configure
from tests.s3 import MotoServer, free_port

DOMAIN = "mail-example.com"


@pytest.fixture
async def owlat(owlat_on_both_engines: Application, tmp_path: Path, dns: DnsServer) -> Application:
    """On SQLite and PostgreSQL; domains are checked against `dns` only."""
    configure(tmp_path, dns)
    return owlat_on_both_engines


@pytest.fixture
async def team(owlat: Application) -> tuple[Caller, Caller]:
    owner, editor, _ = await owner_and_editor(owlat)
    return owner, editor


async def _patch(owlat: Application, document_id: str, fields: dict[str, Any]) -> None:
    async def patch(ctx: Any) -> None:
        await ctx.db.patch(document_id, fields)

    await in_mutation(owlat, patch)


async def test_an_smtp_domain_gets_owlats_dkim_key_and_verifies_once_published(
    team: tuple[Caller, Caller], dns: DnsServer
) -> None:
    owner, _ = team
    domain_id = await owner.mutation(
        "domains:create", {"domain": " Mail-Example.COM ", "providerKind": "smtp"}
    )
    added = await owner.query("domains:get", {"domainId": domain_id})
    assert (added["domain"], added["status"], added["providerKind"]) == (DOMAIN, "pending", "smtp")
    assert "dkimPrivateKey" not in added
    (dkim,) = added["dnsRecords"]["dkim"]
    assert dkim["host"] == f"{added['dkimSelector']}._domainkey"
    assert dkim["value"] == f"v=DKIM1; k=rsa; p={added['dkimPublicKey']}"
    assert added["dnsRecords"]["dmarc"] == {
        "type": "TXT",
        "host": "_dmarc",
        "value": "v=DMARC1; p=none",
    }
    assert "spf" not in added["dnsRecords"]  # no relay include configured

    checked = await owner.action("dnsVerification:verify", {"domainId": domain_id})
    assert checked["status"] == "pending"
    assert f"No TXT record found: _dmarc.{DOMAIN} does not exist" in checked["lastCheckSummary"]
    assert [r["verified"] for r in checked["verificationResults"]] == [False, False]
    assert checked["unverifiedChecks"] == 1

    dns.publish(*added["zoneFile"].splitlines())
    verified = await owner.action("dnsVerification:verify", {"domainId": domain_id})
    assert verified["status"] == "verified"
    assert verified["lastCheckSummary"] == "All DNS records are published and verified"
    assert all(r["verified"] for r in verified["verificationResults"])
    assert verified["verifiedAt"] == verified["lastVerifiedAt"]
    assert verified["nextCheckAt"] == verified["lastVerifiedAt"] + 24 * 3600 * 1000
    listed = await owner.query("domains:list")
    assert [d["_id"] for d in listed] == [domain_id]
    assert "dkimPrivateKey" not in listed[0]


async def test_the_relays_spf_include_is_issued_for_smtp_domains(
    team: tuple[Caller, Caller],
) -> None:
    owner, _ = team
    await owner.mutation(
        "emailProviders:saveSmtp", {"host": "relay.example.net", "spfInclude": "_spf.relay.net"}
    )
    domain_id = await owner.mutation("domains:create", {"domain": DOMAIN, "providerKind": "smtp"})
    added = await owner.query("domains:get", {"domainId": domain_id})
    assert added["dnsRecords"]["spf"]["value"] == "v=spf1 include:_spf.relay.net -all"


async def test_the_cron_rechecks_due_domains_a_verified_one_fails_when_its_records_go(
    owlat: Application, team: tuple[Caller, Caller], dns: DnsServer
) -> None:
    owner, _ = team
    domain_id = await owner.mutation("domains:create", {"domain": DOMAIN, "providerKind": "smtp"})
    added = await owner.query("domains:get", {"domainId": domain_id})
    dns.publish(*added["zoneFile"].splitlines())
    await owner.action("dnsVerification:verify", {"domainId": domain_id})

    dns.clear()
    await owlat.run_action("dnsVerification:recheckDue", {}, internal=True)
    assert (await owner.query("domains:get", {"domainId": domain_id}))["status"] == "verified"
    await _patch(owlat, domain_id, {"nextCheckAt": 1.0})  # due now
    await owlat.run_action("dnsVerification:recheckDue", {}, internal=True)
    failed = await owner.query("domains:get", {"domainId": domain_id})
    assert failed["status"] == "failed"
    assert "No TXT record found" in failed["lastCheckSummary"]
    assert failed["nextCheckAt"] == failed["lastCheckedAt"] + 5 * 60_000  # backing off

    dns.publish(*added["zoneFile"].splitlines())  # fixed: the next check verifies it
    await _patch(owlat, domain_id, {"nextCheckAt": 1.0})
    await owlat.run_action("dnsVerification:recheckDue", {}, internal=True)
    assert (await owner.query("domains:get", {"domainId": domain_id}))["status"] == "verified"


async def test_a_pending_domain_fails_after_the_grace_period_and_servfail_decides_nothing(
    owlat: Application, team: tuple[Caller, Caller], dns: DnsServer
) -> None:
    owner, _ = team
    domain_id = await owner.mutation("domains:create", {"domain": DOMAIN, "providerKind": "smtp"})
    added = await owner.query("domains:get", {"domainId": domain_id})
    dns.publish(*added["zoneFile"].splitlines())
    dns.servfail(f"_dmarc.{DOMAIN}")
    await _patch(owlat, domain_id, {"pendingSince": 1.0})  # long past the grace period
    checked = await owner.action("dnsVerification:verify", {"domainId": domain_id})
    assert checked["status"] == "pending"  # no answer is no verdict
    assert "the DNS server answered SERVFAIL" in checked["lastCheckSummary"]
    dns.clear()
    failed = await owner.action("dnsVerification:verify", {"domainId": domain_id})
    assert failed["status"] == "failed"
    assert failed["pendingSince"] == 1.0 < failed["lastCheckedAt"] - PENDING_GRACE_MS


async def test_a_dmarc_change_issues_the_record_again_and_the_domain_goes_back_to_pending(
    team: tuple[Caller, Caller], dns: DnsServer
) -> None:
    owner, _ = team
    domain_id = await owner.mutation("domains:create", {"domain": DOMAIN, "providerKind": "smtp"})
    added = await owner.query("domains:get", {"domainId": domain_id})
    dns.publish(*added["zoneFile"].splitlines())
    await owner.action("dnsVerification:verify", {"domainId": domain_id})
    changed = await owner.mutation(
        "domains:setDmarcPolicy",
        {"domainId": domain_id, "dmarcPolicy": "quarantine", "dmarcPct": 50,
         "dmarcRua": "Reports@Mail-Example.com"},
    )  # fmt: skip
    assert changed["status"] == "pending"
    assert changed["recordsVersion"] == 2
    assert changed["dnsRecords"]["dmarc"]["value"] == (
        "v=DMARC1; p=quarantine; pct=50; rua=mailto:reports@mail-example.com"
    )
    still_old = await owner.action("dnsVerification:verify", {"domainId": domain_id})
    assert "DMARC record found" in still_old["lastCheckSummary"]
    with pytest.raises(ConvexError, match="^DMARC pct must be a whole number from 0 to 100$"):
        await owner.mutation("domains:setDmarcPolicy", {"domainId": domain_id, "dmarcPct": 101})


async def test_a_check_of_records_that_changed_meanwhile_is_not_applied(
    owlat: Application, team: tuple[Caller, Caller]
) -> None:
    owner, _ = team
    domain_id = await owner.mutation("domains:create", {"domain": DOMAIN, "providerKind": "smtp"})
    ok = {"key": "dmarc", "name": f"_dmarc.{DOMAIN}", "status": "ok", "reason": "", "found": []}
    answer = await owlat.run_mutation(
        "dnsVerification:apply",
        {"domainId": domain_id, "recordsVersion": 0, "results": [ok]},
        internal=True,
    )
    assert answer.value["status"] == "pending"


async def test_a_resend_domain_proves_control_with_owlats_token(
    team: tuple[Caller, Caller], dns: DnsServer
) -> None:
    owner, _ = team
    domain_id = await owner.mutation("domains:create", {"domain": DOMAIN, "providerKind": "resend"})
    added = await owner.query("domains:get", {"domainId": domain_id})
    token = added["dnsRecords"]["verification"]
    assert token["host"] == "_owlat" and token["value"].startswith("owlat-verification=")
    assert "Add the domain in Resend too" in token["note"]
    dns.publish(f'_dmarc.{DOMAIN}. 300 IN TXT "v=DMARC1; p=none"')
    checked = await owner.action("dnsVerification:verify", {"domainId": domain_id})
    assert checked["status"] == "pending"  # DMARC alone proves nothing
    dns.publish(f'_owlat.{DOMAIN}. 300 IN TXT "{token["value"]}"')
    verified = await owner.action("dnsVerification:verify", {"domainId": domain_id})
    assert verified["status"] == "verified"


async def test_who_may_add_what(team: tuple[Caller, Caller]) -> None:
    owner, editor = team
    with pytest.raises(ConvexError, match="^Admin access required$"):
        await editor.mutation("domains:create", {"domain": DOMAIN, "providerKind": "smtp"})
    with pytest.raises(ConvexError, match="this is an email address"):
        await owner.mutation("domains:create", {"domain": "me@x.com", "providerKind": "smtp"})
    domain_id = await owner.mutation("domains:create", {"domain": DOMAIN, "providerKind": "smtp"})
    with pytest.raises(ConvexError, match=f"^{DOMAIN} is already a sending domain"):
        await owner.mutation("domains:create", {"domain": DOMAIN, "providerKind": "outbox"})
    with pytest.raises(ConvexError, match="^Configure Amazon SES under email providers first$"):
        await owner.mutation("domains:create", {"domain": "b.example.org", "providerKind": "ses"})
    assert (await editor.query("domains:get", {"domainId": domain_id}))["domain"] == DOMAIN
    with pytest.raises(ConvexError, match="^Admin access required$"):
        await editor.mutation("domains:remove", {"domainId": domain_id})
    await owner.mutation("domains:remove", {"domainId": domain_id})
    assert await owner.query("domains:list") == []


async def test_tracking_domains_verify_by_cname(
    owlat: Application, team: tuple[Caller, Caller], dns: DnsServer
) -> None:
    owner, _ = team
    with pytest.raises(ConvexError, match="a tracking domain must be a subdomain"):
        await owner.mutation("trackingDomains:add", {"domain": DOMAIN})
    tracking_id = await owner.mutation("trackingDomains:add", {"domain": f"Track.{DOMAIN}"})
    added = await owner.query("trackingDomains:get", {"trackingDomainId": tracking_id})
    assert (added["domain"], added["cnameTarget"], added["status"]) == (
        f"track.{DOMAIN}", "owlat.test", "pending",
    )  # fmt: skip
    checked = await owner.action("trackingDomains:verify", {"trackingDomainId": tracking_id})
    assert checked["status"] == "pending"
    assert checked["lastError"] == f"No CNAME record found: track.{DOMAIN} does not exist"
    dns.publish(f"track.{DOMAIN}. 300 IN CNAME owlat.test.")
    verified = await owner.action("trackingDomains:verify", {"trackingDomainId": tracking_id})
    assert verified["status"] == "verified" and "lastError" not in verified

    dns.clear()
    await _patch(owlat, tracking_id, {"nextCheckAt": 1.0})
    await owlat.run_action("dnsVerification:recheckDue", {}, internal=True)
    failed = await owner.query("trackingDomains:get", {"trackingDomainId": tracking_id})
    assert failed["status"] == "failed"


# -- SES (moto_server) -----------------------------------------------------------------------


@pytest.fixture
async def ses_owner(
    owlat: Application, tmp_path: Path, dns: DnsServer, moto_server: MotoServer
) -> Caller:
    """An owner whose organization has SES configured (moto_server as the endpoint)."""
    configure(tmp_path, dns, ses_endpoint_url=moto_server.endpoint_url)
    owner, _, _ = await owner_and_editor(owlat, "sesco")
    await owner.mutation(
        "emailProviders:saveSes",
        {"region": "us-east-1", "accessKeyId": "AKIAIOSFODNN7EXAMPLE", "secretAccessKey": "x"},
    )
    return owner


async def _registered(owner: Caller, domain_id: str) -> dict[str, Any]:
    async with asyncio.timeout(20):
        while True:
            domain: dict[str, Any] = await owner.query("domains:get", {"domainId": domain_id})
            if domain["status"] != "registering":
                return domain
            await asyncio.sleep(0.05)


async def test_an_ses_domain_is_registered_then_verified(
    ses_owner: Caller, dns: DnsServer, moto_server: MotoServer, database_url: str
) -> None:
    domain = f"ses{'pg' if database_url else 'lite'}.example.org"
    domain_id = await ses_owner.mutation(
        "domains:create", {"domain": domain, "providerKind": "ses", "returnPathHost": "bounce"}
    )
    with pytest.raises(ConvexError, match="^The domain is still being registered"):
        await ses_owner.action("dnsVerification:verify", {"domainId": domain_id})
    registered = await _registered(ses_owner, domain_id)
    assert registered["status"] == "pending", registered.get("lastRegistrationError")
    records = registered["dnsRecords"]
    assert records["verification"]["host"] == "_amazonses"
    assert len(records["dkim"]) == 3
    assert records["mailFrom"][0] == {
        "type": "MX", "host": "bounce", "value": "feedback-smtp.us-east-1.amazonses.com",
        "priority": 10,
    }  # fmt: skip
    dns.publish(*registered["zoneFile"].splitlines())
    verified = await ses_owner.action("dnsVerification:verify", {"domainId": domain_id})
    assert verified["status"] == "verified", verified["lastCheckSummary"]
    assert verified["verificationResults"][-1]["key"] == "provider"

    await ses_owner.mutation("domains:remove", {"domainId": domain_id})
    async with asyncio.timeout(20):
        while True:
            with moto_server.client("ses") as client:
                if domain not in client.list_identities()["Identities"]:
                    break
            await asyncio.sleep(0.05)


async def test_registration_fails_with_sess_reason_and_can_be_started_again(
    ses_owner: Caller, tmp_path: Path, dns: DnsServer, moto_server: MotoServer
) -> None:
    configure(tmp_path, dns, ses_endpoint_url=f"http://127.0.0.1:{free_port()}")  # SES down
    domain_id = await ses_owner.mutation(
        "domains:create", {"domain": "down.example.org", "providerKind": "ses"}
    )
    failed = await _registered(ses_owner, domain_id)
    assert failed["status"] == "failed"
    assert failed["lastRegistrationError"].startswith(
        "SES could not register the domain: Could not connect"
    )
    configure(tmp_path, dns, ses_endpoint_url=moto_server.endpoint_url)  # SES back
    again = await ses_owner.mutation("sesActions:register", {"domainId": domain_id})
    assert again["status"] == "registering"
    registered = await _registered(ses_owner, domain_id)
    assert registered["status"] == "pending" and "lastRegistrationError" not in registered
