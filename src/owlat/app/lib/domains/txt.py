"""The grammar of the TXT records Owlat issues and checks: SPF terms and tag=value lists.

SPF (RFC 7208): `v=spf1` then terms separated by spaces; mechanisms (`include:x`, `ip4:…`,
`mx`, `-all`, ...) are evaluated left to right, so a mechanism placed after `all` never
counts; modifiers (`redirect=`, `exp=`) hold an `=`. A name may publish only one SPF record:
two make every receiver answer "permerror", so a provider's include is merged into the one
record the domain already has, before its `all`.

DKIM (RFC 6376) and DMARC (RFC 7489) records are `tag=value` lists separated by `;`, in any
order, with optional whitespace around tags, values and separators; inside a DKIM `p=` value
whitespace is folding and is dropped.
"""

from __future__ import annotations

from collections.abc import Sequence

SPF_VERSION = "v=spf1"


def is_spf(txt: str) -> bool:
    head = txt.strip()[:7].lower()
    return head == SPF_VERSION or head == SPF_VERSION + " "


def spf_terms(txt: str) -> list[str]:
    """The terms after `v=spf1`."""
    return txt.split()[1:]


def _is_all(term: str) -> bool:
    return term.lstrip("+-~?").lower() == "all"


def _is_modifier(term: str) -> bool:
    return "=" in term


def required_spf_terms(expected: str) -> list[str]:
    """The mechanisms of an issued SPF record a published one must contain (its `all`
    qualifier is the domain owner's policy, not a requirement)."""
    return [t for t in spf_terms(expected) if not _is_all(t) and not _is_modifier(t)]


def missing_spf_terms(published: str, expected: str) -> list[str]:
    """Required terms of `expected` not in effect in `published` (absent, or after `all`)."""
    effective: set[str] = set()
    for term in spf_terms(published):
        if _is_all(term):
            break
        effective.add(term.lower().lstrip("+"))
    return [t for t in required_spf_terms(expected) if t.lower().lstrip("+") not in effective]


def merge_spf(published: Sequence[str], expected: str) -> str:
    """One SPF record holding every mechanism of the `published` records plus the required
    ones of `expected`, ending with the first published `all` (else redirect, else ours)."""
    mechanisms: list[str] = []
    ending: list[str] = []
    for record in published:
        for term in spf_terms(record):
            if _is_all(term) or term.lower().startswith("redirect="):
                ending = ending or [term]
            elif term.lower() not in (m.lower() for m in mechanisms):
                mechanisms.append(term)
    for term in required_spf_terms(expected):
        if term.lower() not in (m.lower() for m in mechanisms):
            mechanisms.append(term)
    ending = ending or [t for t in spf_terms(expected) if _is_all(t)]
    return " ".join([SPF_VERSION, *mechanisms, *ending])


def parse_tags(txt: str) -> dict[str, str]:
    """`tag=value; ...` → {tag: value}; the first of a repeated tag wins, folding in `p=`
    is removed."""
    tags: dict[str, str] = {}
    for part in txt.split(";"):
        name, sep, value = part.partition("=")
        name = name.strip()
        if not sep or not name:
            continue
        value = "".join(value.split()) if name == "p" else value.strip()
        tags.setdefault(name, value)
    return tags


def tag_family(txt: str) -> str | None:
    """`DKIM1` / `DMARC1` for a record whose first tag is `v=…`, else None."""
    tags = parse_tags(txt)
    version = tags.get("v") if txt.strip().startswith("v") else None
    return version.upper() if version else None
