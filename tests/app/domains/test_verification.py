"""Checking issued records against a real DNS server on loopback (§12.3), rule by rule."""

from __future__ import annotations

import pytest

from owlat.app.lib.domains.dkim_keys import generate_dkim_key
from owlat.app.lib.domains.records import DmarcPolicy, DnsRecord, smtp_records, spf_record
from owlat.app.lib.domains.verification import CheckStatus, DnsChecker
from tests.app.domains.dns_server import DnsServer

DOMAIN = "example.com"
SES_SPF = spf_record("@", "include:amazonses.com")
DMARC = DnsRecord("dmarc", "TXT", "_dmarc", DmarcPolicy(rua="dmarc@example.com").value)


def txt(name: str, *strings: str) -> str:
    return f"{name}. 300 IN TXT " + " ".join(f'"{s}"' for s in strings)


# --- TXT: strings joined, exact values ---------------------------------------------------


async def test_a_txt_record_split_in_several_strings_is_joined(
    dns: DnsServer, checker: DnsChecker
) -> None:
    record = DnsRecord("verification", "TXT", "_amazonses", "abcDEF123+/token=")
    dns.publish(txt("_amazonses.example.com", "abc", "DEF123", "+/token="))
    result = await checker.check(record, DOMAIN)
    assert result.status is CheckStatus.OK, result.reason
    assert result.found == ("abcDEF123+/token=",)


async def test_a_2048_bit_dkim_record_split_in_two_strings_passes(
    dns: DnsServer, checker: DnsChecker
) -> None:
    key = generate_dkim_key("owlat20260101")
    [dkim, _] = smtp_records(
        DOMAIN, dkim_selector=key.selector, dkim_public_key=key.public_key, dmarc=DmarcPolicy()
    )
    line = dkim.zone_line(DOMAIN)
    assert line.count('" "') >= 1  # more than 255 characters: two strings
    dns.publish(line)
    result = await checker.check(dkim, DOMAIN)
    assert result.status is CheckStatus.OK, result.reason


async def test_an_answer_over_512_bytes_comes_again_over_tcp(
    dns: DnsServer, checker: DnsChecker
) -> None:
    dns.publish(
        *(txt("example.com", f"site-verification-{n}={'x' * 60}") for n in range(8)),
        txt("example.com", "v=spf1 include:amazonses.com -all"),
    )
    result = await checker.check(SES_SPF, DOMAIN)
    assert result.status is CheckStatus.OK, result.reason
    assert dns.queries == [("example.com", "TXT", "udp"), ("example.com", "TXT", "tcp")]


async def test_an_exact_txt_value_ignores_extra_whitespace_only(
    dns: DnsServer, checker: DnsChecker
) -> None:
    record = DnsRecord("verification", "TXT", "_amazonses", "token one")
    dns.publish(txt("_amazonses.example.com", "  token   one "))
    assert (await checker.check(record, DOMAIN)).status is CheckStatus.OK
    dns.clear()
    dns.publish(txt("_amazonses.example.com", "token two"))
    result = await checker.check(record, DOMAIN)
    assert result.status is CheckStatus.MISMATCH
    assert result.reason == (
        "TXT record found at _amazonses.example.com but its value does not match; "
        "expected token one"
    )


# --- SPF -----------------------------------------------------------------------------------


async def test_spf_with_other_includes_and_another_all_passes(
    dns: DnsServer, checker: DnsChecker
) -> None:
    dns.publish(
        txt("example.com", "google-site-verification=xyz"),
        txt("example.com", "v=spf1 include:_spf.google.com ", "include:amazonses.com ~all"),
    )
    result = await checker.check(SES_SPF, DOMAIN)
    assert result.status is CheckStatus.OK, result.reason
    assert result.found == ("v=spf1 include:_spf.google.com include:amazonses.com ~all",)


async def test_spf_without_our_include_gets_the_merged_record(
    dns: DnsServer, checker: DnsChecker
) -> None:
    dns.publish(txt("example.com", "v=spf1 include:_spf.google.com ~all"))
    result = await checker.check(SES_SPF, DOMAIN)
    assert result.status is CheckStatus.MISMATCH
    assert result.reason == (
        "SPF record found at example.com but include:amazonses.com is missing (or after its "
        "all). Change it to: v=spf1 include:_spf.google.com include:amazonses.com ~all"
    )


async def test_an_include_after_all_does_not_count(dns: DnsServer, checker: DnsChecker) -> None:
    dns.publish(txt("example.com", "v=spf1 -all include:amazonses.com"))
    result = await checker.check(SES_SPF, DOMAIN)
    assert result.status is CheckStatus.MISMATCH
    assert result.reason.endswith("Change it to: v=spf1 include:amazonses.com -all")


async def test_two_spf_records_fail_with_a_merge_hint(dns: DnsServer, checker: DnsChecker) -> None:
    dns.publish(
        txt("example.com", "v=spf1 include:_spf.google.com ~all"),
        txt("example.com", "v=spf1 include:amazonses.com -all"),
    )
    result = await checker.check(SES_SPF, DOMAIN)
    assert result.status is CheckStatus.MISMATCH
    assert "publishes 2 SPF records" in result.reason
    assert result.reason.endswith(
        "Merge them into one: v=spf1 include:_spf.google.com include:amazonses.com ~all"
    )


async def test_no_spf_among_other_txt_records_is_missing(
    dns: DnsServer, checker: DnsChecker
) -> None:
    dns.publish(txt("example.com", "google-site-verification=xyz"))
    result = await checker.check(SES_SPF, DOMAIN)
    assert result.status is CheckStatus.MISSING
    assert result.reason == "No SPF record (v=spf1 …) found at example.com"


# --- tag=value records: DKIM and DMARC -----------------------------------------------------


async def test_dmarc_tags_in_another_order_with_extra_tags_pass(
    dns: DnsServer, checker: DnsChecker
) -> None:
    dns.publish(
        txt("_dmarc.example.com", "v=DMARC1;rua=mailto:dmarc@example.com ;  adkim=r;p=none")
    )
    result = await checker.check(DMARC, DOMAIN)
    assert result.status is CheckStatus.OK, result.reason


async def test_dmarc_with_another_policy_or_a_missing_tag_is_a_mismatch(
    dns: DnsServer, checker: DnsChecker
) -> None:
    dns.publish(txt("_dmarc.example.com", "v=DMARC1; p=quarantine"))
    result = await checker.check(DMARC, DOMAIN)
    assert result.status is CheckStatus.MISMATCH
    assert result.reason == (
        "DMARC record found at _dmarc.example.com but it has p=quarantine (expected p=none), "
        "no rua=mailto:dmarc@example.com"
    )


async def test_two_dmarc_records_are_a_mismatch(dns: DnsServer, checker: DnsChecker) -> None:
    dns.publish(
        txt("_dmarc.example.com", "v=DMARC1; p=none; rua=mailto:dmarc@example.com"),
        txt("_dmarc.example.com", "v=DMARC1; p=reject"),
    )
    result = await checker.check(DMARC, DOMAIN)
    assert result.status is CheckStatus.MISMATCH
    assert "publishes 2 DMARC records" in result.reason


async def test_a_txt_record_of_another_family_is_not_a_dmarc_record(
    dns: DnsServer, checker: DnsChecker
) -> None:
    dns.publish(txt("_dmarc.example.com", "some-verification=1"))
    result = await checker.check(DMARC, DOMAIN)
    assert result.status is CheckStatus.MISSING
    assert result.reason == "No DMARC record found at _dmarc.example.com"


async def test_dkim_compares_tags_in_any_order_and_unfolds_the_key(
    dns: DnsServer, checker: DnsChecker
) -> None:
    record = DnsRecord("dkim", "TXT", "s1._domainkey", "v=DKIM1; k=rsa; p=MIIBIjANBgkq+AB/c=")
    dns.publish(txt("s1._domainkey.example.com", "p=MIIBIjA NBgkq", "+AB/c= ; v=DKIM1;k=rsa"))
    assert (await checker.check(record, DOMAIN)).status is CheckStatus.OK
    dns.clear()
    dns.publish(txt("s1._domainkey.example.com", "v=DKIM1; k=rsa; p=MIIBIjANBgkq+AB/d="))
    result = await checker.check(record, DOMAIN)
    assert result.status is CheckStatus.MISMATCH
    assert result.reason == (
        "DKIM record found at s1._domainkey.example.com but it has "
        "p=MIIBIjANBgkq+AB/d= (expected p=MIIBIjANBgkq+AB/c=)"
    )


async def test_a_dkim_name_delegated_by_cname_is_followed(
    dns: DnsServer, checker: DnsChecker
) -> None:
    record = DnsRecord("dkim", "TXT", "s1._domainkey", "v=DKIM1; k=rsa; p=KEY")
    dns.publish(
        "s1._domainkey.example.com. 300 IN CNAME s1.keys.relay.example.net.",
        txt("s1.keys.relay.example.net", "v=DKIM1; k=rsa; p=KEY"),
    )
    assert (await checker.check(record, DOMAIN)).status is CheckStatus.OK


# --- CNAME and MX --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expected", "published"),
    [
        ("tok.dkim.amazonses.com", "tok.dkim.amazonses.com."),
        ("Tok.DKIM.amazonses.com.", "tok.dkim.amazonses.com."),
        ("tok.dkim.amazonses.com.", "TOK.dkim.AmazonSES.com."),
    ],
)
async def test_cname_ignores_case_and_the_trailing_dot(
    dns: DnsServer, checker: DnsChecker, expected: str, published: str
) -> None:
    record = DnsRecord("dkim", "CNAME", "tok._domainkey", expected)
    dns.publish(f"tok._domainkey.example.com. 300 IN CNAME {published}")
    result = await checker.check(record, DOMAIN)
    assert result.status is CheckStatus.OK, result.reason


async def test_cname_to_another_target_is_a_mismatch(dns: DnsServer, checker: DnsChecker) -> None:
    record = DnsRecord("tracking", "CNAME", "@", "owlat.example.org")
    dns.publish("track.example.com. 300 IN CNAME elsewhere.example.org.")
    result = await checker.check(record, "track.example.com")
    assert result.status is CheckStatus.MISMATCH
    assert result.reason == (
        "CNAME at track.example.com points to elsewhere.example.org; expected owlat.example.org"
    )


async def test_mx_matches_exchange_and_priority(dns: DnsServer, checker: DnsChecker) -> None:
    record = DnsRecord("mailFrom", "MX", "mail", "feedback-smtp.eu-west-1.amazonses.com", 10)
    dns.publish("mail.example.com. 300 IN MX 10 Feedback-SMTP.eu-west-1.amazonses.com.")
    assert (await checker.check(record, DOMAIN)).status is CheckStatus.OK
    dns.clear()
    dns.publish("mail.example.com. 300 IN MX 20 feedback-smtp.eu-west-1.amazonses.com.")
    result = await checker.check(record, DOMAIN)
    assert result.status is CheckStatus.MISMATCH
    assert result.reason == (
        "MX at mail.example.com points to feedback-smtp.eu-west-1.amazonses.com (priority 20); "
        "expected feedback-smtp.eu-west-1.amazonses.com (priority 10)"
    )


# --- what DNS answers when it has nothing, or cannot answer --------------------------------


async def test_nxdomain_is_missing(dns: DnsServer, checker: DnsChecker) -> None:
    result = await checker.check(DMARC, DOMAIN)
    assert result.status is CheckStatus.MISSING
    assert result.reason == "No TXT record found: _dmarc.example.com does not exist"


async def test_a_name_without_a_record_of_the_type_is_missing(
    dns: DnsServer, checker: DnsChecker
) -> None:
    dns.publish("_dmarc.example.com. 300 IN A 192.0.2.1")
    result = await checker.check(DMARC, DOMAIN)
    assert result.status is CheckStatus.MISSING
    assert result.reason == "No TXT record found at _dmarc.example.com"


async def test_servfail_means_retry_later(dns: DnsServer, checker: DnsChecker) -> None:
    dns.servfail("_dmarc.example.com")
    result = await checker.check(DMARC, DOMAIN)
    assert result.status is CheckStatus.RETRY
    assert result.reason == (
        "Could not look up TXT at _dmarc.example.com (the DNS server answered SERVFAIL); "
        "it will be checked again"
    )
    assert not result.status.is_failure


async def test_no_answer_in_time_means_retry_later(dns: DnsServer) -> None:
    dns.drop("_dmarc.example.com")
    checker = DnsChecker(["127.0.0.1"], port=dns.port, timeout=0.3)
    result = await checker.check(DMARC, DOMAIN)
    assert result.status is CheckStatus.RETRY
    assert "no DNS server answered in time" in result.reason


async def test_check_all_returns_one_result_per_record_in_order(
    dns: DnsServer, checker: DnsChecker
) -> None:
    dns.publish(txt("_dmarc.example.com", DMARC.value))
    dns.servfail("example.com")
    results = await checker.check_all([SES_SPF, DMARC], DOMAIN)
    assert [(r.key, r.status) for r in results] == [
        ("spf", CheckStatus.RETRY),
        ("dmarc", CheckStatus.OK),
    ]
    assert results[0].to_json(1_000) == {
        "verified": False,
        "status": "retry",
        "lastChecked": 1_000,
        "error": results[0].reason,
    }
    assert results[1].to_json(1_000) == {
        "verified": True,
        "status": "ok",
        "lastChecked": 1_000,
        "foundValue": DMARC.value,
    }
