"""The DNS records a domain owner publishes for Owlat, per provider kind (§12.2).

Every record has a key (what it proves), a type, a host relative to the domain (`@` is the
domain itself) and the value to publish:

| key          | SES                                       | SMTP relay / own MTA             |
|--------------|-------------------------------------------|----------------------------------|
| verification | TXT `_amazonses`: SES verification token  | —                                |
| dkim         | 3 × CNAME `<t>._domainkey`                | TXT `<selector>._domainkey`      |
|              |   → `<t>.dkim.amazonses.com`              |   `v=DKIM1; k=rsa; p=<key>`      |
| spf          | TXT `@` `v=spf1 include:amazonses.com -all` | TXT `@` only with an include   |
| dmarc        | TXT `_dmarc` `v=DMARC1; p=none` (+ sp, pct, rua) for both                    |
| mailFrom     | MX `mail` → `feedback-smtp.<region>.amazonses.com` (10); TXT `mail` SPF ~all |

A domain may have only one SPF record: when it already publishes one, the issued SPF record
carries a note with the merged record to publish instead (see `txt.merge_spf`). Stored as
the `dnsRecords` document `{verification?, spf?, dkim[], dmarc?, mailFrom[]}`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from typing import Any, Literal

from owlat.app.lib.domains.dkim_keys import dkim_txt_value
from owlat.app.lib.domains.names import normalize_domain
from owlat.app.lib.domains.txt import is_spf, merge_spf, missing_spf_terms
from owlat.app.lib.emails import normalize_email
from owlat.app.lib.errors import AppError, invalid

RecordType = Literal["TXT", "CNAME", "MX"]
DmarcMode = Literal["none", "quarantine", "reject"]
DMARC_MODES: tuple[DmarcMode, ...] = ("none", "quarantine", "reject")
LIST_KEYS = ("dkim", "mailFrom")
SES_SPF_INCLUDE = "include:amazonses.com"
TXT_STRING_MAX = 255  # one character-string of a TXT record (RFC 1035 §3.3)


@dataclasses.dataclass(frozen=True)
class DnsRecord:
    key: str  # verification | spf | dkim | dmarc | mailFrom | tracking
    type: RecordType
    host: str  # relative to the domain; "@" is the domain itself
    value: str
    priority: int | None = None  # MX only
    note: str | None = None  # what to do instead, e.g. the merged SPF record

    def name(self, domain: str) -> str:
        """The absolute name (no trailing dot) the record is published at."""
        return domain if self.host == "@" else f"{self.host}.{domain}"

    def zone_line(self, domain: str, ttl: int = 3600) -> str:
        """The record as one line of a zone file, TXT values split in 255-character strings."""
        if self.type == "TXT":
            chunks = range(0, max(len(self.value), 1), TXT_STRING_MAX)
            data = " ".join(_quoted(self.value[i : i + TXT_STRING_MAX]) for i in chunks)
        elif self.type == "MX":
            data = f"{self.priority} {self.value}."
        else:
            data = f"{self.value}."
        return f"{self.name(domain)}. {ttl} IN {self.type} {data}"

    def to_json(self) -> dict[str, Any]:
        document: dict[str, Any] = {"type": self.type, "host": self.host, "value": self.value}
        if self.priority is not None:
            document["priority"] = self.priority
        if self.note is not None:
            document["note"] = self.note
        return document

    @classmethod
    def from_json(cls, key: str, document: dict[str, Any]) -> DnsRecord:
        priority = document.get("priority")  # a stored number may come back as a float
        return cls(
            key, document["type"], document["host"], document["value"],
            None if priority is None else int(priority), document.get("note"),
        )  # fmt: skip


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def records_document(records: Iterable[DnsRecord]) -> dict[str, Any]:
    """The `dnsRecords` document: one record per key, lists for dkim and mailFrom."""
    document: dict[str, Any] = {}
    for record in records:
        if record.key in LIST_KEYS:
            document.setdefault(record.key, []).append(record.to_json())
        else:
            document[record.key] = record.to_json()
    return document


def records_from_document(document: dict[str, Any]) -> list[DnsRecord]:
    records = []
    for key, value in document.items():
        for item in value if key in LIST_KEYS else [value]:
            records.append(DnsRecord.from_json(key, item))
    return records


@dataclasses.dataclass(frozen=True)
class DmarcPolicy:
    """The DMARC record Owlat suggests: `p=none` (monitor only) unless the owner chose."""

    policy: DmarcMode = "none"
    subdomain_policy: DmarcMode | None = None
    pct: int | None = None
    rua: str | None = None  # an address for aggregate reports, with or without mailto:

    def __post_init__(self) -> None:
        for name, mode in (("policy", self.policy), ("subdomain policy", self.subdomain_policy)):
            if mode is not None and mode not in DMARC_MODES:
                raise _invalid_dmarc(f"DMARC {name} must be none, quarantine or reject")
        if self.pct is not None and not (isinstance(self.pct, int) and 0 <= self.pct <= 100):
            raise _invalid_dmarc("DMARC pct must be a whole number from 0 to 100")
        if self.rua is not None:
            address = self.rua.strip().removeprefix("mailto:")
            try:
                address = normalize_email(address)
            except AppError:
                raise _invalid_dmarc(f"DMARC report address {self.rua!r} is not an email") from None
            object.__setattr__(self, "rua", f"mailto:{address}")

    @property
    def value(self) -> str:
        tags = [("v", "DMARC1"), ("p", self.policy), ("sp", self.subdomain_policy)]
        tags += [("pct", None if self.pct is None else str(self.pct)), ("rua", self.rua)]
        return "; ".join(f"{tag}={value}" for tag, value in tags if value is not None)


def _invalid_dmarc(message: str) -> AppError:
    return invalid("INVALID_DMARC_POLICY", message)


def dmarc_record(dmarc: DmarcPolicy) -> DnsRecord:
    return DnsRecord("dmarc", "TXT", "_dmarc", dmarc.value)


def spf_record(
    host: str, include: str, published: Sequence[str] = (), *, key: str = "spf",
    ending: str = "-all",
) -> DnsRecord:  # fmt: skip
    """`v=spf1 <include> <ending>` at `host`; with a published SPF record there, a note
    gives the one merged record to publish instead (or says it already includes ours)."""
    value = f"v=spf1 {include} {ending}"
    spf = [txt for txt in published if is_spf(txt)]
    note = None
    if len(spf) == 1 and not missing_spf_terms(spf[0], value):
        note = "Your SPF record already includes this; keep it as it is."
    elif spf:
        note = (
            "A domain may publish only one SPF record. Replace your existing SPF record"
            f"{'s' if len(spf) > 1 else ''} with: {merge_spf(spf, value)}"
        )
    return DnsRecord(key, "TXT", host, value, note=note)


def mail_from_domain(domain: str, return_path_host: str | None = None) -> str:
    """The MAIL FROM (return-path) domain: `mail.<domain>` or the chosen host (a label or
    a full name), which must be a subdomain of `domain`."""
    if return_path_host is None or not return_path_host.strip():
        return f"mail.{domain}"
    raw = return_path_host.strip()
    host = normalize_domain(raw if "." in raw.strip(".") else f"{raw}.{domain}")
    if not host.endswith("." + domain):
        raise invalid(
            "INVALID_RETURN_PATH",
            f"The return-path host must be a subdomain of {domain}, such as bounce.{domain}"
            f" (got {raw!r})",
        )
    return host


def ses_records(
    domain: str, *, verification_token: str, dkim_tokens: Sequence[str],
    mail_from: str, region: str, dmarc: DmarcPolicy, published_spf: Sequence[str] = (),
) -> list[DnsRecord]:  # fmt: skip
    """What SES needs published, given the tokens it returned (see the module table)."""
    mail_from_host = mail_from.removesuffix("." + domain)
    return [
        DnsRecord("verification", "TXT", "_amazonses", verification_token),
        spf_record("@", SES_SPF_INCLUDE, published_spf),
        *(
            DnsRecord("dkim", "CNAME", f"{token}._domainkey", f"{token}.dkim.amazonses.com")
            for token in dkim_tokens
        ),
        dmarc_record(dmarc),
        DnsRecord("mailFrom", "MX", mail_from_host, f"feedback-smtp.{region}.amazonses.com", 10),
        spf_record(mail_from_host, SES_SPF_INCLUDE, key="mailFrom", ending="~all"),
    ]


def smtp_records(
    domain: str, *, dkim_selector: str, dkim_public_key: str, dmarc: DmarcPolicy,
    spf_include: str | None = None, published_spf: Sequence[str] = (),
) -> list[DnsRecord]:  # fmt: skip
    """What a domain Owlat signs itself needs (SMTP relay or own MTA): Owlat's DKIM key,
    DMARC, and SPF only when the relay has an include (`spf_include`, e.g. `_spf.relay.net`
    or `include:_spf.relay.net`)."""
    records = [
        DnsRecord("dkim", "TXT", f"{dkim_selector}._domainkey", dkim_txt_value(dkim_public_key))
    ]
    if spf_include:
        include = spf_include if ":" in spf_include else f"include:{spf_include}"
        records.insert(0, spf_record("@", include, published_spf))
    records.append(dmarc_record(dmarc))
    return records


def tracking_record(target_host: str) -> DnsRecord:
    """The CNAME that points a tracking domain (its own name, `@`) at Owlat's public host."""
    return DnsRecord("tracking", "CNAME", "@", target_host.lower().rstrip("."))
