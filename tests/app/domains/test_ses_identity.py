"""A domain's SES identity against a real moto_server, and the whole SES path: register,
publish the issued records in a real DNS server, verify."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator

import pytest

from owlat.app.lib.domains.records import DmarcPolicy, mail_from_domain, ses_records
from owlat.app.lib.domains.ses_identity import (
    SesError,
    SesIdentities,
    SesSettings,
    identity_check,
)
from owlat.app.lib.domains.states import DomainState, DomainStatus, decide, move
from owlat.app.lib.domains.verification import CheckStatus, DnsChecker
from tests.app.domains.dns_server import DnsServer
from tests.s3 import MotoServer, free_port

_numbers = itertools.count()


def fresh_domain() -> str:
    """moto_server lives for the whole run: each test registers its own domain."""
    return f"shop{next(_numbers)}.example.com"


@pytest.fixture
async def ses(moto_server: MotoServer) -> AsyncIterator[SesIdentities]:
    settings = SesSettings("us-east-1", "test", "test", endpoint_url=moto_server.endpoint_url)
    identities = SesIdentities(settings)
    yield identities
    identities.close()


async def test_register_returns_the_tokens_and_sets_mail_from(
    ses: SesIdentities, moto_server: MotoServer
) -> None:
    domain = fresh_domain()
    identity = await ses.register(domain, f"bounce.{domain}")
    assert identity.verification_token
    assert len(identity.dkim_tokens) == 3
    assert identity.mail_from_domain == f"bounce.{domain}"
    with moto_server.client("ses") as client:
        assert domain in client.list_identities(IdentityType="Domain")["Identities"]
        attributes = client.get_identity_mail_from_domain_attributes(Identities=[domain])
    assert attributes["MailFromDomainAttributes"][domain]["MailFromDomain"] == f"bounce.{domain}"


async def test_check_reports_the_identity_verified(ses: SesIdentities) -> None:
    domain = fresh_domain()
    await ses.register(domain, f"mail.{domain}")
    result = await ses.check(domain)
    assert (result.key, result.status, result.reason) == (
        "provider", CheckStatus.OK, "SES verified the domain",
    )  # fmt: skip
    assert result.found == ("verification Success", "DKIM Success")


async def test_delete_removes_the_identity_and_check_then_fails(
    ses: SesIdentities, moto_server: MotoServer
) -> None:
    domain = fresh_domain()
    await ses.register(domain, f"mail.{domain}")
    await ses.delete(domain)
    with moto_server.client("ses") as client:
        assert domain not in client.list_identities()["Identities"]
    result = await ses.check(domain)
    assert result.status is CheckStatus.FAILED
    assert result.reason == f"SES has no identity for {domain}; register the domain again"


async def test_an_ses_refusal_becomes_an_ses_error_naming_the_call(ses: SesIdentities) -> None:
    domain = fresh_domain()
    with pytest.raises(SesError, match="SES could not register the domain: InvalidParameterValue: "
                       "Provided MAIL-FROM domain 'mail.other.org' is not subdomain"):  # fmt: skip
        await ses.register(domain, "mail.other.org")


async def test_an_unreachable_ses_fails_registration_but_only_delays_the_check() -> None:
    down = SesIdentities(SesSettings("us-east-1", "t", "t", f"http://127.0.0.1:{free_port()}"))
    try:
        with pytest.raises(SesError, match="SES could not register the domain: Could not connect"):
            await down.register("example.com", "mail.example.com")
        result = await down.check("example.com")
        assert result.status is CheckStatus.RETRY
        assert result.reason.startswith("SES could not check the domain: Could not connect")
    finally:
        down.close()


@pytest.mark.parametrize(
    ("verification", "dkim", "status", "reason"),
    [
        ("Success", "Success", CheckStatus.OK, "SES verified the domain"),
        ("Pending", "Success", CheckStatus.RETRY,
         "SES is still verifying x.com (verification Pending, DKIM Success)"),
        ("Success", "TemporaryFailure", CheckStatus.RETRY, "SES is still verifying x.com"),
        ("Failed", "Pending", CheckStatus.FAILED,
         "SES could not verify x.com (verification Failed, DKIM Pending); check the records, "
         "then register the domain again"),
        ("Success", "Failed", CheckStatus.FAILED, "SES could not verify x.com"),
        ("Success", None, CheckStatus.RETRY, "(verification Success, DKIM absent)"),
        (None, None, CheckStatus.FAILED, "SES has no identity for x.com"),
    ],
)  # fmt: skip
def test_ses_statuses_map_to_a_provider_check(
    verification: str | None, dkim: str | None, status: CheckStatus, reason: str
) -> None:
    result = identity_check("x.com", verification, dkim)
    assert result.status is status
    assert reason in result.reason


async def test_registered_published_and_checked_a_domain_is_verified(
    ses: SesIdentities, dns: DnsServer, checker: DnsChecker
) -> None:
    domain = fresh_domain()
    now = 1_800_000_000_000
    state = DomainState(DomainStatus.REGISTERING)
    identity = await ses.register(domain, mail_from_domain(domain))
    records = ses_records(
        domain, verification_token=identity.verification_token,
        dkim_tokens=identity.dkim_tokens, mail_from=identity.mail_from_domain,
        region="us-east-1", dmarc=DmarcPolicy(),
    )  # fmt: skip
    state = move(state, DomainStatus.PENDING, now)

    # Nothing published yet: still pending, checked again soon.
    verdict = decide(
        state, [*await checker.check_all(records, domain), await ses.check(domain)], now
    )
    assert verdict.state.status is DomainStatus.PENDING
    assert f"No TXT record found: _amazonses.{domain} does not exist" in verdict.summary

    dns.publish(*(record.zone_line(domain) for record in records))
    checks = [*await checker.check_all(records, domain), await ses.check(domain)]
    assert [c.status for c in checks] == [CheckStatus.OK] * 9, [c.reason for c in checks]
    verdict = decide(verdict.state, checks, now + 600_000)
    assert verdict.state.status is DomainStatus.VERIFIED
    assert verdict.state.verified_at == now + 600_000
