"""Settings from the environment: OWLAT_DNS_NAMESERVERS, the provider endpoints, the
campaign delivery rates."""

from __future__ import annotations

from pathlib import Path

import pytest

from owlat.app.lib.campaigns.throttle import Rates
from owlat.app.lib.instance import configure_from_settings
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


def test_backup_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings.from_env().backup_schedule == ""
    monkeypatch.setenv("OWLAT_BACKUP_SCHEDULE", "daily@03:30")
    monkeypatch.setenv("OWLAT_BACKUP_KEEP", "14")
    settings = Settings.from_env()
    assert (settings.backup_schedule, settings.backup_keep, settings.backup_to) == (
        "daily@03:30",
        14,
        "folder",
    )


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"OWLAT_BACKUP_SCHEDULE": "daily@25:00"}, "OWLAT_BACKUP_SCHEDULE: expected daily@HH:MM"),
        ({"OWLAT_BACKUP_SCHEDULE": "every 0m"}, "or every N followed by s, m, h or d"),
        ({"OWLAT_BACKUP_KEEP": "0"}, "OWLAT_BACKUP_KEEP must be between 1 and 100000, got 0"),
        ({"OWLAT_BACKUP_TO": "ftp"}, "OWLAT_BACKUP_TO must be folder or s3, got 'ftp'"),
        ({"OWLAT_BACKUP_TO": "s3"}, "OWLAT_BACKUP_TO=s3 needs a bucket: set OWLAT_STORAGE_BUCKET"),
    ],
)
def test_bad_backup_settings_stop_the_start(
    monkeypatch: pytest.MonkeyPatch, variables: dict[str, str], message: str
) -> None:
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit, match=message):
        Settings.from_env()


def test_the_scheduler_parallelism_may_be_zero(monkeypatch: pytest.MonkeyPatch) -> None:
    """0: the process runs no scheduled functions (`owlat serve` starts no scheduler)."""
    monkeypatch.setenv("OWLAT_SCHEDULER_PARALLELISM", "0")
    assert Settings.from_env().scheduler_parallelism == 0
    monkeypatch.setenv("OWLAT_SCHEDULER_PARALLELISM", "-1")
    with pytest.raises(SystemExit, match="OWLAT_SCHEDULER_PARALLELISM must be between 0 and"):
        Settings.from_env()


def test_delivery_rates_reach_the_instance_and_bad_ones_stop_the_start(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("OWLAT_PROVIDER_RATES", "ses=14")
    monkeypatch.setenv("OWLAT_DOMAIN_RATE", "20")
    monkeypatch.setenv("OWLAT_DOMAIN_RATES", "Gmail.com=50, yahoo.com=2.5")
    configured = configure_from_settings(Settings.from_env(), tmp_path, "http://localhost")
    assert configured.delivery_rates == Rates(
        providers={"ses": 14.0}, domain=20.0, domains={"gmail.com": 50.0, "yahoo.com": 2.5}
    )
    assert configured.delivery_rates.for_domain("example.org") == 20.0
    monkeypatch.setenv("OWLAT_DOMAIN_RATES", "gmail.com=fast")
    with pytest.raises(SystemExit, match="OWLAT_DOMAIN_RATES: expected name=messages per"):
        Settings.from_env()
