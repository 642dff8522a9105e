"""The content scanner (reference §7.4 `publish`, §11.2 step 4): pure and deterministic.

`scan(subject, html, text)` looks at a message's subject, rendered HTML (its visible text
and its links) and text part, and returns a `ScanResult`: each finding a `Flag` (`code`,
`severity`, a short `message`, `where`: subject, html or text), the `score` (the sum of
the findings' weights, high 20 / medium 10 / low 3, capped at 100) and the `level`:
`clean` below 15, `suspicious` from 15, `blocked` from 40. A finding counts once per
message, however often it occurs and in however many parts (the first part named).

Findings (word lists in `content_scan_words.py`):
    spam_phrase, prohibited_content   phrases of the lists, in any part
    link_text_mismatch (high)         a link's text shows one host, its href goes to another
    ip_host (high)                    a URL whose host is a raw IPv4 or IPv6 address
    userinfo_in_url (high)            `@` in a URL's authority (`https://bank.com@evil.net`)
    url_shortener (medium)            a public URL shortener's host
    homoglyph_host (high)             a host mixing Latin with Cyrillic or Greek letters
                                      (after punycode decoding), or drawn like a brand's
    idn_host (low)                    any other internationalized (punycode) host
    brand_homoglyph (high)            a word mixing scripts that reads as a brand name
    mixed_script_word (medium)        any other word mixing Latin with Cyrillic or Greek
    subject_caps (medium)             most of the subject's letters are capitals
    subject_exclamations (low)        `!!!` (or more) in the subject

Links whose href is a placeholder (`{{unsubscribeUrl}}`), `mailto:`, `tel:` or an anchor
are not checked. Upstream's optional Google Safe Browsing look-up is left out: scanning
makes no network call.
"""

from __future__ import annotations

import dataclasses
import html as html_lib
import ipaddress
import re
from collections.abc import Iterable, Iterator
from typing import Any, Final, Literal

from owlat.app.lib.content_scan_words import (
    BRANDS,
    CONFUSABLES,
    PROHIBITED,
    SHORTENERS,
    SPAM_PHRASES,
    Severity,
)

Where = Literal["subject", "html", "text"]
Level = Literal["clean", "suspicious", "blocked"]
WEIGHTS: Final[dict[Severity, int]] = {"high": 20, "medium": 10, "low": 3}
SUSPICIOUS: Final = 15
BLOCKED: Final = 40
MAX_SCORE: Final = 100
CAPS_RATIO: Final = 0.7  # capitals among the subject's letters, from this share
CAPS_MIN_LETTERS: Final = 8


@dataclasses.dataclass(frozen=True)
class Flag:
    code: str
    severity: Severity
    message: str
    where: Where

    def record(self) -> dict[str, str]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class ScanResult:
    score: int
    level: Level
    flags: tuple[Flag, ...]

    def record(self) -> dict[str, Any]:
        """The fields of a `contentScanResults` row."""
        return {
            "score": self.score,
            "level": self.level,
            "flags": [flag.record() for flag in self.flags],
        }

    def summary(self, count: int = 3) -> str:
        """The `count` heaviest findings' messages, for an error or a block reason."""
        heaviest = sorted(self.flags, key=lambda flag: -WEIGHTS[flag.severity])[:count]
        more = len(self.flags) - len(heaviest)
        return "; ".join(flag.message for flag in heaviest) + (f" (+{more} more)" if more else "")


def level_of(score: int) -> Level:
    return "blocked" if score >= BLOCKED else "suspicious" if score >= SUSPICIOUS else "clean"


def result_of(flags: Iterable[Flag]) -> ScanResult:
    """The result of `flags`, each (code, message) counted once."""
    first: dict[tuple[str, str], Flag] = {}
    for flag in flags:
        first.setdefault((flag.code, flag.message), flag)
    unique = tuple(first.values())
    score = min(MAX_SCORE, sum(WEIGHTS[flag.severity] for flag in unique))
    return ScanResult(score, level_of(score), unique)


def scan(subject: str, html: str, text: str = "") -> ScanResult:
    """Scan a message (module docstring)."""
    visible, links = _visible_text(html)
    parts: tuple[tuple[Where, str], ...] = (("subject", subject), ("html", visible), ("text", text))
    flags = [*_subject_flags(subject)]
    for where, part in parts:
        flags.extend(_phrase_flags(part, where))
        flags.extend(_word_flags(part, where))
    for href, label in links:
        flags.extend(_link_flags(href, label))
    for where, part in (parts[0], parts[2]):
        if "://" in part:
            for url in _URL.findall(part.lower()):
                flags.extend(_url_flags(url, where))
    return result_of(flags)


# -- parts -------------------------------------------------------------------------------------

_INVISIBLE = re.compile(r"<(style|script|title)\b.*?</\1\s*>|<!--.*?-->", re.I | re.S)
_ANCHOR = re.compile(r"<a\b([^>]*)>(.*?)</a\s*>", re.I | re.S)
_HREF = re.compile(r"""\bhref\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+))""", re.I)
_TAG = re.compile(r"<[^>]*>")
_PLACEHOLDER = re.compile(r"\{\{.*?\}\}")
_URL = re.compile(r"https?://[^\s<>\"'()]+")  # in lower-cased text (ten times faster)


def _visible_text(html: str) -> tuple[str, list[tuple[str, str]]]:
    """The HTML's text as a reader sees it, and its links as (href, text)."""
    html = _INVISIBLE.sub(" ", html)
    links = []
    for attributes, inner in _ANCHOR.findall(html):
        found = _HREF.search(attributes)
        if found is not None:
            href = html_lib.unescape(next(group for group in found.groups() if group is not None))
            links.append((href.strip(), html_lib.unescape(_TAG.sub(" ", inner)).strip()))
    return html_lib.unescape(_TAG.sub(" ", html)), links


# -- subject -----------------------------------------------------------------------------------


def _subject_flags(subject: str) -> Iterator[Flag]:
    letters = [ch for ch in _PLACEHOLDER.sub("", subject) if ch.isalpha()]
    capitals = sum(ch.isupper() for ch in letters)
    if len(letters) >= CAPS_MIN_LETTERS and capitals >= CAPS_RATIO * len(letters):
        yield Flag("subject_caps", "medium", "Subject is mostly capital letters", "subject")
    if "!!!" in subject:
        yield Flag("subject_exclamations", "low", 'Subject has "!!!"', "subject")


# -- phrases and words -------------------------------------------------------------------------


def _pattern(phrase: str) -> re.Pattern[str]:
    """`phrase` as whole words (any whitespace between them), in lower-cased text."""
    body = r"\s+".join(re.escape(word) for word in phrase.split())
    start = r"\b" if phrase[0].isalnum() else ""
    end = r"\b" if phrase[-1].isalnum() else ""
    return re.compile(start + body + end)


# phrase -> (code, severity); each phrase's longest word is a substring test before its
# pattern runs (one alternation of every phrase is ten times slower on a long text)
_PHRASES: Final = {
    **{phrase: ("spam_phrase", severity) for phrase, severity in SPAM_PHRASES.items()},
    **{phrase: ("prohibited_content", severity) for phrase, severity in PROHIBITED.items()},
}
_PATTERNS: Final = [(phrase, max(phrase.split(), key=len), _pattern(phrase)) for phrase in _PHRASES]
_NON_ASCII_LETTER = re.compile(r"[^\W\x00-\x7f]")
_NON_ASCII_WORD = re.compile(r"(?<!\w)\w*[^\W\x00-\x7f]\w*")


def _phrase_flags(part: str, where: Where) -> Iterator[Flag]:
    lowered = part.lower()
    for phrase, word, pattern in _PATTERNS:
        if word in lowered and pattern.search(lowered) is not None:
            code, severity = _PHRASES[phrase]
            label = "Prohibited content" if code == "prohibited_content" else "Spam phrase"
            yield Flag(code, severity, f'{label} "{phrase}"', where)


def _scripts(word: str) -> set[str]:
    """The scripts of `word`'s letters among Latin, Cyrillic, Greek (others ignored)."""
    found = set()
    for ch in word:
        if ch.isascii():
            if ch.isalpha():
                found.add("latin")
        elif "\u0400" <= ch <= "\u052f":
            found.add("cyrillic")
        elif "\u0370" <= ch <= "\u03ff":
            found.add("greek")
        elif ch.isalpha() and ch < "\u0250":
            found.add("latin")
    return found


def skeleton(word: str) -> str:
    """`word` lower-cased with look-alike letters replaced by the Latin ones."""
    return "".join(CONFUSABLES.get(ch, ch) for ch in word.lower())


def _mixed(word: str) -> bool:
    scripts = _scripts(word)
    return "latin" in scripts and len(scripts) > 1


def _word_flags(part: str, where: Where) -> Iterator[Flag]:
    if part.isascii() or _NON_ASCII_LETTER.search(part) is None:
        return  # no word to look at (a no-break space or a ✓ is not one)
    for word in _NON_ASCII_WORD.findall(part):
        brand = skeleton(word)
        if brand in BRANDS:
            yield Flag("brand_homoglyph", "high", f'"{word}" imitates {brand}', where)
        elif _mixed(word):
            yield Flag("mixed_script_word", "medium", f'"{word}" mixes alphabets', where)


# -- links -------------------------------------------------------------------------------------

_SKIPPED = ("mailto:", "tel:", "sms:", "#", "{{")
# a link text that reads as an address: a host whose last label is letters, maybe a path
_HOST_LIKE = re.compile(
    r"^(?:[a-z][a-z0-9+.-]*://)?((?:[^\s/:@.]+\.)+[^\W\d_]{2,})\.?(?:[:/?#]\S*)?$", re.I
)


def _link_flags(href: str, label: str) -> Iterator[Flag]:
    if not href or href.lower().startswith(_SKIPPED):
        return
    yield from _url_flags(href, "html")
    shown = _HOST_LIKE.match(label)
    target = _host(href)
    if shown is not None and target:
        shown_host = shown.group(1).lower().rstrip(".")
        if "{{" not in shown_host and not _same_site(shown_host, target):
            yield Flag(
                "link_text_mismatch", "high", f"Link shows {shown_host} but goes to {target}",
                "html",
            )  # fmt: skip


def _authority(url: str) -> str:
    rest = url.split("://", 1)[1] if "://" in url else url.removeprefix("//")
    return re.split(r"[/?#]", rest, maxsplit=1)[0]


def _host(url: str) -> str:
    """The host of `url`, lower-case, without userinfo, port and trailing dot."""
    host = _authority(url).rsplit("@", 1)[-1]
    if host.startswith("["):
        return host[1 : host.find("]")].lower()
    return host.split(":", 1)[0].lower().rstrip(".")


def _same_site(shown: str, target: str) -> bool:
    shown, target = shown.removeprefix("www."), target.removeprefix("www.")
    return shown == target or shown.endswith("." + target) or target.endswith("." + shown)


def _url_flags(url: str, where: Where) -> Iterator[Flag]:
    if "{{" in _authority(url):
        return
    host = _host(url)
    if "@" in _authority(url):
        yield Flag("userinfo_in_url", "high", f'"@" in the address of a link to {host}', where)
    try:
        ipaddress.ip_address(host)
        yield Flag("ip_host", "high", f"Link to a raw IP address {host}", where)
    except ValueError:
        pass
    if host in SHORTENERS:
        yield Flag("url_shortener", "medium", f"Link through the URL shortener {host}", where)
    yield from _host_script_flags(host, where)


def _host_script_flags(host: str, where: Where) -> Iterator[Flag]:
    if host.isascii() and "xn--" not in host:
        return
    labels = [_decoded(label) for label in host.split(".")]
    shown = ".".join(labels)
    if any(_mixed(label) or skeleton(label) in BRANDS for label in labels if not label.isascii()):
        yield Flag("homoglyph_host", "high", f"Look-alike letters in the host {shown}", where)
    else:
        yield Flag("idn_host", "low", f"Internationalized host {shown}", where)


def _decoded(label: str) -> str:
    if not label.startswith("xn--"):
        return label
    try:
        return label[4:].encode("ascii").decode("punycode")
    except (UnicodeError, ValueError):
        return label
