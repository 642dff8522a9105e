"""The records issued per provider (§12.2), SPF merging, DMARC, and DKIM keys."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from owlat.app.lib.domains.dkim_keys import generate_dkim_key, new_selector, public_key_from_private
from owlat.app.lib.domains.records import (
    DmarcPolicy,
    DnsRecord,
    mail_from_domain,
    records_document,
    records_from_document,
    ses_records,
    smtp_records,
    spf_record,
    tracking_record,
)
from owlat.app.lib.domains.txt import merge_spf, parse_tags
from owlat.app.lib.errors import AppError

TOKENS = ("tok1", "tok2", "tok3")


def test_ses_records_from_the_tokens_ses_returned() -> None:
    records = ses_records(
        "example.com",
        verification_token="VTOKEN=",
        dkim_tokens=TOKENS,
        mail_from="bounce.example.com",
        region="eu-west-1",
        dmarc=DmarcPolicy(),
    )
    assert [(r.key, r.type, r.host, r.value, r.priority) for r in records] == [
        ("verification", "TXT", "_amazonses", "VTOKEN=", None),
        ("spf", "TXT", "@", "v=spf1 include:amazonses.com -all", None),
        ("dkim", "CNAME", "tok1._domainkey", "tok1.dkim.amazonses.com", None),
        ("dkim", "CNAME", "tok2._domainkey", "tok2.dkim.amazonses.com", None),
        ("dkim", "CNAME", "tok3._domainkey", "tok3.dkim.amazonses.com", None),
        ("dmarc", "TXT", "_dmarc", "v=DMARC1; p=none", None),
        ("mailFrom", "MX", "bounce", "feedback-smtp.eu-west-1.amazonses.com", 10),
        ("mailFrom", "TXT", "bounce", "v=spf1 include:amazonses.com ~all", None),
    ]
    assert all(r.note is None for r in records)


def test_smtp_records_carry_owlats_dkim_key_and_spf_only_with_an_include() -> None:
    key = generate_dkim_key("owlat20260101")
    plain = smtp_records(
        "example.com", dkim_selector=key.selector, dkim_public_key=key.public_key,
        dmarc=DmarcPolicy(),
    )  # fmt: skip
    assert [(r.key, r.type, r.host) for r in plain] == [
        ("dkim", "TXT", "owlat20260101._domainkey"),
        ("dmarc", "TXT", "_dmarc"),
    ]
    assert plain[0].value == f"v=DKIM1; k=rsa; p={key.public_key}" == key.txt_value
    relayed = smtp_records(
        "example.com", dkim_selector=key.selector, dkim_public_key=key.public_key,
        dmarc=DmarcPolicy(), spf_include="_spf.relay.example.net",
    )  # fmt: skip
    assert relayed[0] == DnsRecord("spf", "TXT", "@", "v=spf1 include:_spf.relay.example.net -all")


def test_an_existing_spf_record_gets_a_merge_note_not_a_second_record() -> None:
    record = spf_record("@", "include:amazonses.com", ["v=spf1 include:_spf.google.com ~all"])
    assert record.value == "v=spf1 include:amazonses.com -all"
    assert record.note == (
        "A domain may publish only one SPF record. Replace your existing SPF record with: "
        "v=spf1 include:_spf.google.com include:amazonses.com ~all"
    )
    two = spf_record("@", "include:amazonses.com", ["v=spf1 a ~all", "v=spf1 mx -all"])
    assert two.note is not None and two.note.endswith(
        "Replace your existing SPF records with: v=spf1 a mx include:amazonses.com ~all"
    )
    done = spf_record("@", "include:amazonses.com", ["v=spf1 include:amazonses.com ~all"])
    assert done.note == "Your SPF record already includes this; keep it as it is."
    unrelated = spf_record("@", "include:amazonses.com", ["google-site-verification=x"])
    assert unrelated.note is None


@pytest.mark.parametrize(
    ("published", "merged"),
    [
        (["v=spf1 ip4:192.0.2.0/24 ?all"], "v=spf1 ip4:192.0.2.0/24 include:x.net ?all"),
        (["v=spf1 redirect=_spf.example.com"], "v=spf1 include:x.net redirect=_spf.example.com"),
        (["v=spf1 -all include:x.net"], "v=spf1 include:x.net -all"),
        (
            ["v=spf1 mx", "v=spf1 MX include:y.net ~all"],
            "v=spf1 mx include:y.net include:x.net ~all",
        ),
        (["v=spf1"], "v=spf1 include:x.net -all"),
    ],
)
def test_merge_spf_keeps_the_owners_all_and_puts_ours_before_it(
    published: list[str], merged: str
) -> None:
    assert merge_spf(published, "v=spf1 include:x.net -all") == merged


def test_dmarc_policy_tags_and_refusals() -> None:
    assert DmarcPolicy().value == "v=DMARC1; p=none"
    full = DmarcPolicy("quarantine", "reject", 50, " Reports@Example.com ")
    assert full.value == "v=DMARC1; p=quarantine; sp=reject; pct=50; rua=mailto:reports@example.com"
    assert DmarcPolicy(rua="mailto:a@example.com").rua == "mailto:a@example.com"
    for kwargs, message in [
        ({"policy": "block"}, "DMARC policy must be none, quarantine or reject"),
        ({"subdomain_policy": "x"}, "DMARC subdomain policy must be none, quarantine or reject"),
        ({"pct": 101}, "DMARC pct must be a whole number from 0 to 100"),
        ({"pct": -1}, "DMARC pct must be a whole number from 0 to 100"),
        ({"rua": "not an address"}, "DMARC report address 'not an address' is not an email"),
    ]:
        with pytest.raises(AppError, match=message) as error:
            DmarcPolicy(**kwargs)  # type: ignore[arg-type]
        assert error.value.error_code == "INVALID_DMARC_POLICY"


def test_the_mail_from_domain_is_a_subdomain() -> None:
    assert mail_from_domain("example.com") == "mail.example.com"
    assert mail_from_domain("example.com", "bounce") == "bounce.example.com"
    assert mail_from_domain("example.com", "Bounce.Example.com.") == "bounce.example.com"
    with pytest.raises(AppError, match="must be a subdomain of example.com, such as "
                       r"bounce\.example\.com \(got 'bounce\.other\.com'\)"):  # fmt: skip
        mail_from_domain("example.com", "bounce.other.com")
    with pytest.raises(AppError, match="must be a subdomain"):
        mail_from_domain("example.com", "example.com")
    with pytest.raises(AppError, match="starts or ends with a hyphen"):
        mail_from_domain("example.com", "-x")


def test_the_records_document_round_trips() -> None:
    records = ses_records(
        "example.com", verification_token="V", dkim_tokens=TOKENS, mail_from="mail.example.com",
        region="us-east-1", dmarc=DmarcPolicy(rua="d@example.com"),
        published_spf=["v=spf1 a -all"],
    )  # fmt: skip
    document = records_document(records)
    assert sorted(document) == ["dkim", "dmarc", "mailFrom", "spf", "verification"]
    assert len(document["dkim"]) == 3 and len(document["mailFrom"]) == 2
    assert document["mailFrom"][0] == {
        "type": "MX", "host": "mail", "value": "feedback-smtp.us-east-1.amazonses.com",
        "priority": 10,
    }  # fmt: skip
    assert document["spf"]["note"].endswith("v=spf1 a include:amazonses.com -all")
    assert sorted(records_from_document(document), key=repr) == sorted(records, key=repr)


def test_zone_lines_split_long_txt_values_and_end_names_with_a_dot() -> None:
    long = DnsRecord("dkim", "TXT", "s._domainkey", "x" * 300 + '"q"')
    assert long.zone_line("example.com") == (
        f's._domainkey.example.com. 3600 IN TXT "{"x" * 255}" "{"x" * 45}\\"q\\""'
    )
    mx = DnsRecord("mailFrom", "MX", "mail", "feedback.example.net", 10)
    assert mx.zone_line("example.com", ttl=300) == (
        "mail.example.com. 300 IN MX 10 feedback.example.net."
    )
    assert tracking_record("Owlat.Example.org.").zone_line("track.example.com") == (
        "track.example.com. 3600 IN CNAME owlat.example.org."
    )


def test_a_dkim_key_pair_signs_and_its_record_verifies() -> None:
    key = generate_dkim_key("s1")
    private = serialization.load_pem_private_key(key.private_key_pem.encode(), password=None)
    assert isinstance(private, rsa.RSAPrivateKey) and private.key_size == 2048
    assert key.private_key_pem.startswith("-----BEGIN RSA PRIVATE KEY-----")
    published = parse_tags(key.txt_value)
    assert published == {"v": "DKIM1", "k": "rsa", "p": key.public_key}
    public = serialization.load_der_public_key(base64.b64decode(published["p"]))
    assert isinstance(public, rsa.RSAPublicKey)
    signature = private.sign(b"headers", padding.PKCS1v15(), hashes.SHA256())
    public.verify(signature, b"headers", padding.PKCS1v15(), hashes.SHA256())
    assert public_key_from_private(key.private_key_pem) == key.public_key
    assert generate_dkim_key("s1").public_key != key.public_key


def test_selectors_are_dated_and_unique() -> None:
    now = 1_767_225_600_000  # 2026-01-01T00:00:00Z
    assert new_selector(now) == "owlat20260101"
    assert new_selector(now - 1) == "owlat20251231"
    assert new_selector(now, {"owlat20260101", "owlat20260101-2"}) == "owlat20260101-3"


def test_a_stored_priority_read_back_as_a_float_is_published_whole() -> None:
    document = {"type": "MX", "host": "mail", "value": "feedback.example.net", "priority": 10.0}
    record = DnsRecord.from_json("mailFrom", document)
    assert record.zone_line("example.com") == (
        "mail.example.com. 3600 IN MX 10 feedback.example.net."
    )
