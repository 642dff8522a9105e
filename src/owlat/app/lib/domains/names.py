"""Domain names as users type them → the one lowercase ASCII (A-label) form Owlat stores.

A sending domain must be a name its owner can publish DNS records under: labels of letters,
digits and inner hyphens (internationalized labels become `xn--…`), at most 63
characters per label and 253 in all, under a top-level domain of the Public Suffix List and
not a public suffix itself (`com`, `co.uk`, `github.io`). IP addresses, `localhost` and the
names reserved for private use (`.local`, `.internal`, `.test`, ...) are refused. Every
refusal is an `INVALID_DOMAIN` error naming the input and the rule it breaks.
"""

from __future__ import annotations

import functools
import ipaddress
import re

import idna
from publicsuffixlist import PublicSuffixList

from owlat.app.lib.errors import AppError, invalid

MAX_NAME = 253
MAX_LABEL = 63
# Names that never resolve on the public DNS (RFC 2606, 6761, 6762, 7686, 8375, ICANN 2024).
RESERVED_SUFFIXES = (
    "localhost", "local", "localdomain", "test", "example", "invalid", "internal", "lan",
    "home", "corp", "onion", "alt", "arpa",
)  # fmt: skip
_LDH = re.compile(r"^[a-z0-9-]+$")
_suffixes = PublicSuffixList(accept_unknown=False)


def invalid_domain(raw: str, reason: str) -> AppError:
    shown = raw.strip()[:80]
    return invalid("INVALID_DOMAIN", f"Invalid domain {shown!r}: {reason}")


# A pure function of its argument (the suffix list is loaded once), called for the From
# domain of every send: its answers are kept (a refusal is raised anew each time).
@functools.lru_cache(maxsize=1024)
def normalize_domain(raw: str) -> str:
    """The stored form of a domain the user typed, or an `INVALID_DOMAIN` error."""
    name = raw.strip()
    if not name:
        raise invalid_domain(raw, "enter a domain name such as example.com")
    if "@" in name:
        raise invalid_domain(raw, "this is an email address; enter only the part after the @")
    if "/" in name:
        raise invalid_domain(raw, "enter only the domain name, without http:// or a path")
    if _is_ip_address(name):
        raise invalid_domain(raw, "an IP address cannot be a sending domain; enter a domain name")
    name = name.removesuffix(".")
    labels = [_ascii_label(raw, label) for label in name.split(".")]
    ascii_name = ".".join(labels)
    if len(ascii_name) > MAX_NAME:
        raise invalid_domain(raw, f"longer than {MAX_NAME} characters")
    if labels[-1] in RESERVED_SUFFIXES:
        raise invalid_domain(
            raw, f".{labels[-1]} is reserved for local or private use and never resolves "
            "on the public DNS",
        )  # fmt: skip
    if labels[-1].isdigit():
        raise invalid_domain(raw, "the top-level domain cannot be a number")
    if _suffixes.publicsuffix(ascii_name) is None:
        raise invalid_domain(raw, f".{labels[-1]} is not a public top-level domain")
    if _suffixes.is_public(ascii_name):
        raise invalid_domain(
            raw, f"{ascii_name} is a public suffix (like com or co.uk); enter a domain "
            f"registered under it, such as yourcompany.{ascii_name}",
        )  # fmt: skip
    return ascii_name


def normalize_tracking_domain(raw: str) -> str:
    """A tracking domain: a valid domain below a registered one, since it is published as a
    CNAME and a CNAME cannot sit at the top of a zone beside its SOA and NS records."""
    name = normalize_domain(raw)
    if _suffixes.privatesuffix(name) == name:
        raise invalid_domain(
            raw, f"a tracking domain must be a subdomain, such as track.{name} (a CNAME "
            f"cannot be published at {name} itself)",
        )  # fmt: skip
    return name


def _is_ip_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        return False
    return True


def _ascii_label(raw: str, label: str) -> str:
    if not label:
        raise invalid_domain(raw, "empty label (two dots in a row, or a dot at the start)")
    if not label.isascii():
        try:
            label = idna.alabel(idna.uts46_remap(label, std3_rules=True)).decode()
        except idna.IDNAError as error:
            reason = f"{label!r} is not a valid international label ({error})"
            raise invalid_domain(raw, reason) from None
    label = label.lower()
    if len(label) > MAX_LABEL:
        raise invalid_domain(raw, f"label {label[:20]}… is longer than {MAX_LABEL} characters")
    if not _LDH.match(label):
        raise invalid_domain(raw, f"label {label!r} may hold only letters, digits and hyphens")
    if label.startswith("-") or label.endswith("-"):
        raise invalid_domain(raw, f"label {label!r} starts or ends with a hyphen")
    if label[2:4] == "--" and not label.startswith("xn--"):
        raise invalid_domain(raw, f"label {label!r} has hyphens in the 3rd and 4th position")
    if label.startswith("xn--"):
        try:
            idna.ulabel(label)
        except idna.IDNAError as error:
            reason = f"{label!r} is not a valid punycode label ({error})"
            raise invalid_domain(raw, reason) from None
    return label
