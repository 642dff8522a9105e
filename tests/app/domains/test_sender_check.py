"""Sending From an address needs its exact domain verified (§12.3); the outbox is exempt."""

from __future__ import annotations

import pytest

from owlat.app.lib.domains.sender_check import ensure_sender_allowed, is_local_sink, stale_warning
from owlat.app.lib.errors import AppError

DOMAINS = [
    {"domain": "example.com", "status": "verified"},
    {"domain": "pending.example.org", "status": "pending"},
    {"domain": "broken.example.org", "status": "failed"},
    {"domain": "new.example.org", "status": "registering"},
    {"domain": "xn--bcher-kva.de", "status": "verified"},
]


@pytest.mark.parametrize(
    "sender",
    ["news@example.com", '"Shop" <News@EXAMPLE.com>', "Owlat <hi@example.com.>", "a@Bücher.de"],
)
def test_a_verified_exact_domain_may_send(sender: str) -> None:
    ensure_sender_allowed(sender, DOMAINS, "ses")


@pytest.mark.parametrize(
    ("sender", "message"),
    [
        (
            "news@mail.example.com",
            "Cannot send from news@mail.example.com: mail.example.com is not a sending domain "
            "of this organization (example.com is verified, but each subdomain is verified on "
            "its own); add it under Domains and publish its DNS records",
        ),
        (
            "a@other.com",
            "Cannot send from a@other.com: other.com is not a sending domain of this "
            "organization; add it under Domains and publish its DNS records",
        ),
        (
            "a@pending.example.org",
            "Cannot send from a@pending.example.org: the sending domain pending.example.org is "
            "pending, not verified: publish its DNS records, then verify it",
        ),
        (
            "a@broken.example.org",
            "the sending domain broken.example.org is failed, not verified: its DNS records "
            "did not verify; fix them and verify it again",
        ),
        ("a@new.example.org", "is registering, not verified: it is still being registered"),
        # The parent of a verified subdomain is not covered either.
        ("a@example.org", "example.org is not a sending domain of this organization;"),
    ],
)
def test_anything_else_is_refused_with_the_reason(sender: str, message: str) -> None:
    with pytest.raises(AppError) as error:
        ensure_sender_allowed(sender, DOMAINS, "smtp")
    assert error.value.error_code == "SENDER_DOMAIN_NOT_VERIFIED"
    assert message in str(error.value)


@pytest.mark.parametrize(
    ("sender", "message"),
    [
        ("nobody", "The From address 'nobody' has no domain"),
        ("Owlat <>", "The From address 'Owlat <>' has no domain"),
        ("a@localhost", "Cannot send from a@localhost: Invalid domain 'localhost': .localhost"),
    ],
)
def test_a_from_address_without_a_usable_domain_is_invalid(sender: str, message: str) -> None:
    with pytest.raises(AppError) as error:
        ensure_sender_allowed(sender, DOMAINS, "ses")
    assert error.value.error_code == "INVALID_SENDER"
    assert message in str(error.value)


def test_each_check_decides_on_the_domains_it_is_given() -> None:
    """The parsed From is kept between checks; the decision never is."""
    sender = "Shop <news@example.com>"
    lapsed = [{"domain": "example.com", "status": "failed"}]
    ensure_sender_allowed(sender, DOMAINS, "smtp")
    for domains in (lapsed, []):
        with pytest.raises(AppError, match="SENDER_DOMAIN_NOT_VERIFIED|not verified|not a send"):
            ensure_sender_allowed(sender, domains, "smtp")
    ensure_sender_allowed(sender, DOMAINS, "smtp")
    for _ in range(2):
        with pytest.raises(AppError, match="has no domain"):
            ensure_sender_allowed("nobody", DOMAINS, "smtp")


def test_a_stale_verification_is_a_warning_and_a_from_without_a_domain_gets_none() -> None:
    """`domains:checkSenderAddress` asks for the warning after the outbox (or a local sink)
    allowed the From, whatever it is: it must not raise then."""
    day = 24 * 3600 * 1000
    now = 10 * day
    fresh = [{"domain": "example.com", "status": "verified", "lastVerifiedAt": now - day}]
    stale = [{"domain": "example.com", "status": "verified", "lastVerifiedAt": now - day - 1}]
    assert stale_warning("news@example.com", fresh, now) is None
    warning = stale_warning("Shop <news@example.com>", stale, now)
    assert warning is not None and warning.startswith("The verification of example.com is over")
    assert stale_warning("nobody", stale, now) is None


def test_the_outbox_delivers_nowhere_and_is_exempt() -> None:
    ensure_sender_allowed("noreply@owlat.local", [], "outbox")
    ensure_sender_allowed("a@other.com", DOMAINS, "outbox")
    with pytest.raises(AppError):
        ensure_sender_allowed("a@other.com", DOMAINS, "resend")


@pytest.mark.parametrize(
    ("kind", "host", "development", "local"),
    [
        ("outbox", None, False, True),
        ("smtp", "127.0.0.1", True, True),
        ("smtp", "127.8.9.10", True, True),
        ("smtp", "::1", True, True),
        ("smtp", "LocalHost.", True, True),
        # `owlat serve` never exempts an SMTP relay.
        ("smtp", "127.0.0.1", False, False),
        ("smtp", "localhost", False, False),
        # Elsewhere is a real relay, under `owlat dev` too.
        ("smtp", "10.0.0.5", True, False),
        ("smtp", "smtp.example.net", True, False),
        ("smtp", "localhost.example.net", True, False),
        ("ses", None, True, False),
        ("resend", None, True, False),
    ],
)
def test_local_sinks_are_the_outbox_and_under_dev_a_loopback_smtp_relay(
    kind: str, host: str | None, development: bool, local: bool
) -> None:
    settings = None if host is None else {"host": host, "port": 25}
    assert is_local_sink(kind, settings, development) is local
