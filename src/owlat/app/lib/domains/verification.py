"""Checking the issued records in DNS (§12.3), one result per record with a reason.

Each record is looked up at its name with dnspython's async resolver (system resolvers, or
the nameservers and port given — tests point it at a loopback server) and compared:

- TXT: the strings of a record are joined (long values arrive split in 255-byte strings).
  SPF (`v=spf1…`): exactly one SPF record must be published there, and it must contain every
  mechanism of ours before its `all`; otherwise the reason gives the one merged record to
  publish. DKIM/DMARC (`v=DKIM1`/`v=DMARC1`): every tag of ours must be present with the same
  value, in any order and spacing (DKIM's `p=` compared byte for byte after unfolding); one
  DMARC record only. Anything else: exact match after collapsing whitespace.
- CNAME: target compared without case and trailing dot. MX: exchange (same rule) + priority.
- NXDOMAIN / no record of the type → `missing`; a record of the family with another value →
  `mismatch`; SERVFAIL, REFUSED, timeouts → `retry` (decides nothing; the domain stays as it
  is and is checked again, see `states.decide`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
from collections.abc import Sequence
from typing import Any

import dns.asyncresolver
import dns.exception
import dns.resolver

from owlat.app.lib.domains.records import DnsRecord
from owlat.app.lib.domains.txt import is_spf, merge_spf, missing_spf_terms, parse_tags, tag_family


class CheckStatus(enum.StrEnum):
    OK = "ok"
    MISSING = "missing"  # nothing published there (NXDOMAIN / no record of the type)
    MISMATCH = "mismatch"  # published, with another value
    FAILED = "failed"  # the provider refused the identity
    RETRY = "retry"  # no answer (SERVFAIL, timeout, provider still checking): ask again later

    @property
    def is_failure(self) -> bool:
        """A definite "no", as opposed to OK or not known yet."""
        return self in (CheckStatus.MISSING, CheckStatus.MISMATCH, CheckStatus.FAILED)


@dataclasses.dataclass(frozen=True)
class CheckResult:
    key: str  # the record's key, or "provider"
    name: str  # where it was looked for
    status: CheckStatus
    reason: str
    found: tuple[str, ...] = ()

    def to_json(self, now_ms: int) -> dict[str, Any]:
        """An entry of the domain's `verificationResults` document."""
        document: dict[str, Any] = {
            "verified": self.status is CheckStatus.OK,
            "status": str(self.status),
            "lastChecked": now_ms,
        }
        if self.status is not CheckStatus.OK:
            document["error"] = self.reason
        if self.found:
            document["foundValue"] = " | ".join(self.found)
        return document


@dataclasses.dataclass(frozen=True)
class _Lookup:
    values: tuple[str, ...] = ()
    status: CheckStatus = CheckStatus.OK
    reason: str = ""


class DnsChecker:
    """Looks records up and compares them. Without nameservers it uses the system's."""

    def __init__(
        self, nameservers: Sequence[str] | None = None, *, port: int = 53, timeout: float = 5.0
    ) -> None:
        resolver = dns.asyncresolver.Resolver(configure=not nameservers)
        if nameservers:
            resolver.nameservers = list(nameservers)
        resolver.port = port
        resolver.lifetime = timeout
        resolver.timeout = timeout
        self._resolver = resolver

    async def check_all(self, records: Sequence[DnsRecord], domain: str) -> list[CheckResult]:
        return list(await asyncio.gather(*(self.check(record, domain) for record in records)))

    async def check(self, record: DnsRecord, domain: str) -> CheckResult:
        name = record.name(domain)
        found = await self._lookup(name, record.type)
        if found.status is not CheckStatus.OK:
            return CheckResult(record.key, name, found.status, found.reason)
        if record.type == "TXT":
            status, reason, shown = _compare_txt(record.value, name, found.values)
        elif record.type == "CNAME":
            status, reason, shown = _compare_cname(record.value, name, found.values)
        else:
            status, reason, shown = _compare_mx(record, name, found.values)
        return CheckResult(record.key, name, status, reason, shown)

    async def _lookup(self, name: str, rdtype: str) -> _Lookup:
        try:
            answer = await self._resolver.resolve(name + ".", rdtype, search=False)
        except dns.resolver.NXDOMAIN:
            reason = f"No {rdtype} record found: {name} does not exist"
            return _Lookup((), CheckStatus.MISSING, reason)
        except dns.resolver.NoAnswer:
            return _Lookup((), CheckStatus.MISSING, f"No {rdtype} record found at {name}")
        except dns.exception.Timeout:
            return _retry(rdtype, name, "no DNS server answered in time")
        except dns.resolver.NoNameservers as error:
            text = str(error)
            rcode = next((c for c in ("SERVFAIL", "REFUSED") if c in text), None)
            return _retry(rdtype, name, f"the DNS server answered {rcode}" if rcode else text)
        except dns.exception.DNSException as error:
            return _retry(rdtype, name, str(error))
        values = []
        for rdata in answer:
            if rdtype == "TXT":
                values.append(b"".join(rdata.strings).decode("utf-8", "replace"))
            elif rdtype == "MX":
                values.append(f"{rdata.preference} {rdata.exchange}")
            else:
                values.append(str(rdata.target))
        return _Lookup(tuple(values))


def _retry(rdtype: str, name: str, detail: str) -> _Lookup:
    reason = f"Could not look up {rdtype} at {name} ({detail}); it will be checked again"
    return _Lookup((), CheckStatus.RETRY, reason)


_Compared = tuple[CheckStatus, str, tuple[str, ...]]


def _compare_txt(expected: str, name: str, values: Sequence[str]) -> _Compared:
    if is_spf(expected):
        return _compare_spf(expected, name, [v for v in values if is_spf(v)])
    family = tag_family(expected)
    if family == "DMARC1":
        dmarc = [value for value in values if tag_family(value) == family]
        return _compare_tags(expected, name, "DMARC", dmarc)
    if family == "DKIM1":  # a DKIM name holds the key record only; v= is optional there
        return _compare_tags(expected, name, "DKIM", list(values))
    wanted = " ".join(expected.split())
    if any(" ".join(value.split()) == wanted for value in values):
        return CheckStatus.OK, f"TXT record at {name} matches", (wanted,)
    reason = f"TXT record found at {name} but its value does not match; expected {wanted}"
    return CheckStatus.MISMATCH, reason, tuple(values)


def _compare_spf(expected: str, name: str, spf: list[str]) -> _Compared:
    if not spf:
        return CheckStatus.MISSING, f"No SPF record (v=spf1 …) found at {name}", ()
    merged = merge_spf(spf, expected)
    if len(spf) > 1:
        reason = (
            f"{name} publishes {len(spf)} SPF records; receivers treat more than one as an "
            f"error. Merge them into one: {merged}"
        )
        return CheckStatus.MISMATCH, reason, tuple(spf)
    missing = missing_spf_terms(spf[0], expected)
    if missing:
        reason = (
            f"SPF record found at {name} but {' '.join(missing)} is missing (or after its "
            f"all). Change it to: {merged}"
        )
        return CheckStatus.MISMATCH, reason, tuple(spf)
    return CheckStatus.OK, f"SPF record at {name} includes what is needed", tuple(spf)


def _compare_tags(expected: str, name: str, family: str, candidates: list[str]) -> _Compared:
    if not candidates:
        return CheckStatus.MISSING, f"No {family} record found at {name}", ()
    if family == "DMARC" and len(candidates) > 1:
        reason = (
            f"{name} publishes {len(candidates)} DMARC records; receivers ignore DMARC when "
            "there is more than one. Keep one."
        )
        return CheckStatus.MISMATCH, reason, tuple(candidates)
    wanted = parse_tags(expected)
    differences: list[str] = []
    for candidate in candidates:
        tags = parse_tags(candidate)
        differences = [
            f"{tag}={_short(tags[tag])} (expected {tag}={_short(value)})"
            if tag in tags
            else f"no {tag}={_short(value)}"
            for tag, value in wanted.items()
            if tags.get(tag) != value
        ]
        if not differences:
            return CheckStatus.OK, f"{family} record at {name} matches", (candidate,)
    reason = f"{family} record found at {name} but it has {', '.join(differences)}"
    return CheckStatus.MISMATCH, reason, tuple(candidates)


def _short(value: str, limit: int = 40) -> str:
    """A tag value for a sentence: DKIM keys are hundreds of characters long."""
    return value if len(value) <= limit else value[: limit - 1] + "…"


def _host(name: str) -> str:
    return name.lower().rstrip(".")


def _compare_cname(expected: str, name: str, values: Sequence[str]) -> _Compared:
    targets = tuple(_host(value) for value in values)
    if _host(expected) in targets:
        return CheckStatus.OK, f"CNAME at {name} points to {_host(expected)}", targets
    reason = f"CNAME at {name} points to {', '.join(targets)}; expected {_host(expected)}"
    return CheckStatus.MISMATCH, reason, targets


def _compare_mx(record: DnsRecord, name: str, values: Sequence[str]) -> _Compared:
    found = []
    for value in values:
        number, _, exchange = value.partition(" ")
        found.append((int(number), _host(exchange)))
    shown = tuple(f"{exchange} (priority {preference})" for preference, exchange in found)
    for preference, exchange in found:
        if exchange == _host(record.value) and record.priority in (None, preference):
            return CheckStatus.OK, f"MX at {name} points to {exchange}", shown
    expected = _host(record.value)
    if record.priority is not None:
        expected += f" (priority {record.priority})"
    reason = f"MX at {name} points to {', '.join(shown)}; expected {expected}"
    return CheckStatus.MISMATCH, reason, shown
