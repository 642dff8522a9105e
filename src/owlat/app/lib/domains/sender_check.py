"""May an organization send From this address? (§12.3, enforcement at send)

Only when the address's exact domain is one of the organization's sending domains and is
verified: a verified `example.com` does not cover `news.example.com` (the subdomain has its
own DKIM, SPF and DMARC records, and receivers check them there), nor the reverse.

Local sinks are exempt (`is_local_sink`): the outbox, which delivers nothing beyond the
data folder, and, under `owlat dev` only, an SMTP relay on a loopback host (127.0.0.0/8,
::1, `localhost`: aiosmtpd, Mailpit, MailHog on the developer's machine). `owlat serve`
never exempts an SMTP relay, whatever its host.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable, Mapping
from email.utils import parseaddr
from typing import Any

from owlat.app.lib.domains.names import normalize_domain
from owlat.app.lib.domains.states import DomainStatus, is_stale
from owlat.app.lib.errors import AppError, invalid

EXEMPT_PROVIDERS = frozenset({"outbox"})

LOOPBACK_NAMES = frozenset({"localhost"})

_ADVICE = {
    DomainStatus.REGISTERING: "it is still being registered; verify it once its records are shown",
    DomainStatus.PENDING: "publish its DNS records, then verify it",
    DomainStatus.FAILED: "its DNS records did not verify; fix them and verify it again",
}


def is_local_sink(kind: str, settings: Mapping[str, Any] | None, development: bool) -> bool:
    """Whether a provider (its kind and stored settings) delivers only on this machine and
    so is exempt from the verified-domain rule (module docstring)."""
    if kind in EXEMPT_PROVIDERS:
        return True
    if kind != "smtp" or not development or settings is None:
        return False
    return is_loopback_host(str(settings.get("host", "")))


def is_loopback_host(host: str) -> bool:
    """`localhost`, or an IP address of 127.0.0.0/8 or ::1 (as written, not resolved)."""
    host = host.strip().lower().rstrip(".").strip("[]")
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def ensure_sender_allowed(
    from_address: str, domains: Iterable[Mapping[str, Any]], provider_kind: str
) -> None:
    """Nothing, or a `SENDER_DOMAIN_NOT_VERIFIED` / `INVALID_SENDER` error saying why and
    what to do. `domains` are the organization's `domains` rows (`domain`, `status`)."""
    if provider_kind in EXEMPT_PROVIDERS:
        return
    address, domain = _sender_domain(from_address)
    statuses = {row["domain"]: DomainStatus(row["status"]) for row in domains}
    status = statuses.get(domain)
    if status is DomainStatus.VERIFIED:
        return
    if status is not None:
        reason = f"the sending domain {domain} is {status}, not verified: {_ADVICE[status]}"
    else:
        parents = sorted(
            name
            for name, other in statuses.items()
            if other is DomainStatus.VERIFIED and domain.endswith("." + name)
        )
        reason = f"{domain} is not a sending domain of this organization"
        if parents:
            reason += f" ({parents[-1]} is verified, but each subdomain is verified on its own)"
        reason += "; add it under Domains and publish its DNS records"
    raise invalid("SENDER_DOMAIN_NOT_VERIFIED", f"Cannot send from {address}: {reason}")


def stale_warning(
    from_address: str, domains: Iterable[Mapping[str, Any]], now: float
) -> str | None:
    """A warning when the From address's domain is verified but its verification is stale
    (over 24 h old, §12.1); sending from it stays allowed. None for a From without a
    usable domain (a local sink accepts it: the warning never turns into a refusal)."""
    try:
        address, domain = _sender_domain(from_address)
    except AppError:
        return None
    for row in domains:
        if row["domain"] == domain and is_stale(row, now):
            return (
                f"The verification of {domain} is over 24 hours old; sending from {address} "
                "goes on, and the next automatic check (or Verify now) refreshes it"
            )
    return None


@functools.lru_cache(maxsize=256)  # an organization's few senders, parsed once per process
def _sender_domain(from_address: str) -> tuple[str, str]:
    """(address, its normalized domain) of a From value, or an `INVALID_SENDER` error."""
    address = parseaddr(from_address)[1]
    local, at, domain_part = address.rpartition("@")
    if not at or not local:
        raise invalid("INVALID_SENDER", f"The From address {from_address!r} has no domain")
    try:
        return address, normalize_domain(domain_part)
    except AppError as error:
        raise invalid("INVALID_SENDER", f"Cannot send from {address}: {error}") from None
