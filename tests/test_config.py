"""Settings from the environment: OWLAT_DNS_NAMESERVERS and the provider endpoints."""

from __future__ import annotations

import pytest

from owlat.config import Settings


def test_dns_nameservers_take_addresses_with_an_optional_port(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OWLAT_DNS_NAMESERVERS", " 127.0.0.1:5353, [::1]:5353 ")
    monkeypatch.setenv("OWLAT_RESEND_API_URL", "http://127.0.0.1:9000")
    settings = Settings.from_env()
    assert settings.dns_nameservers == (("127.0.0.1", 5353), ("::1", 5353))
    assert settings.resend_api_url == "http://127.0.0.1:9000"
    monkeypatch.setenv("OWLAT_DNS_NAMESERVERS", "10.0.0.2")
    assert Settings.from_env().dns_nameservers == (("10.0.0.2", 53),)
    monkeypatch.delenv("OWLAT_DNS_NAMESERVERS")
    assert Settings.from_env().dns_nameservers == ()


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("dns.example.com", "must list DNS server addresses"),
        ("127.0.0.1:0", "must list DNS server addresses"),
        ("127.0.0.1:53,10.0.0.2:5353", "every DNS server must use the same port"),
    ],
)
def test_bad_dns_nameservers_stop_the_start(
    monkeypatch: pytest.MonkeyPatch, value: str, message: str
) -> None:
    monkeypatch.setenv("OWLAT_DNS_NAMESERVERS", value)
    with pytest.raises(SystemExit, match=message):
        Settings.from_env()
