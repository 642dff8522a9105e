"""Tracked links: the open pixel and signed click redirects (reference §4.1, §8.3).

    open   <base>/t/o/<sendId>
    click  <base>/t/c/<sendId>/<target>/<sig>
           target = base64url (no padding) of the UTF-8 destination URL
           sig    = base64url (no padding) of HMAC-SHA256(key, sendId + "." + target)

`<base>` is the organization's verified tracking domain (same scheme as the site), else the
site's URL. The key is derived (HMAC) from the instance secret kept in the data folder, so
it survives restarts and differs between instances: a link minted by another Owlat, or one
whose send id, target or signature was changed, does not verify and is refused, so the
redirect can never be pointed anywhere Owlat did not write into a mail. A destination must
be an http(s) URL with a host, without user info, of printable ASCII (a `Location` header
carries nothing else; other links stay as written) (`destination_problem`), checked when
the link is made and again when it is followed.

`tracked_html` rewrites every `<a href>` of a message to a click link, except links that
must keep working untouched or carry no destination (upstream's list, plus Owlat's own
subscription links): `mailto:`, `tel:`, `sms:`, `#anchors`, `javascript:`, `data:`, any
other non-http(s) scheme, links already tracked, links marked `data-no-track`, and the
unsubscribe, preferences and confirmation links of this site (`/unsubscribe`, `/unsub/`,
`/preferences`, `/prefs/`, `/confirm`): a one-click unsubscribe must not depend on the
tracker, nor be logged as a click. Then the 1×1 pixel goes before `</body>` (or at the end).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import html
import re
from collections.abc import Mapping
from functools import cache, lru_cache
from typing import Any
from urllib.parse import urlsplit

from owlat.app.lib import instance

MAX_TARGET = 2000  # characters of a destination URL (reference §0: URL 2000)
_ANCHOR = re.compile(r"<a\b[^>]*>", re.IGNORECASE)
_HREF = re.compile(r"""((?<![\w-])href\s*=\s*)(?:"([^"]*)"|'([^']*)'|([^\s>"']+))""", re.IGNORECASE)
_NO_TRACK = re.compile(r"\bdata-no-track\b", re.IGNORECASE)
_BODY_END = re.compile(r"</body\s*>", re.IGNORECASE)
_SUBSCRIPTION_PATHS = ("/unsubscribe", "/unsub/", "/preferences", "/prefs/", "/confirm")


@cache
def _key(secret: bytes) -> bytes:
    return hmac.new(secret, b"owlat click tracking", hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def signature(send_id: str, encoded_target: str) -> str:
    message = f"{send_id}.{encoded_target}".encode()
    # `hmac.digest`: the one-shot C path, a third of `hmac.new(...).digest()`'s CPU
    return _b64(hmac.digest(_key(instance.current().secret), message, "sha256"))


def destination_problem(url: str) -> str | None:
    """Why `url` may not be a click destination, or None."""
    if len(url) > MAX_TARGET:
        return f"longer than {MAX_TARGET} characters"
    try:
        parts = urlsplit(url)
    except ValueError:
        return "not a URL"
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return "not an http(s) URL with a host"
    if "@" in parts.netloc:
        return "carries user info"
    if not url.isascii() or any(ord(c) < 0x21 or c == "\\" for c in url):
        return "contains spaces, control or non-ASCII characters, or backslashes"
    return None


def open_url(base_url: str, send_id: str) -> str:
    return f"{base_url.rstrip('/')}/t/o/{send_id}"


def click_url(base_url: str, send_id: str, target: str) -> str:
    encoded = _b64(target.encode("utf-8"))
    return f"{base_url.rstrip('/')}/t/c/{send_id}/{encoded}/{signature(send_id, encoded)}"


def verified_target(send_id: str, encoded_target: str, sig: str) -> str | None:
    """The destination of a click link whose signature is ours, else None."""
    if not hmac.compare_digest(signature(send_id, encoded_target), sig):
        return None
    try:
        target = base64.urlsafe_b64decode(encoded_target + "=" * (-len(encoded_target) % 4))
        url = target.decode("utf-8")
    except (binascii.Error, ValueError):
        return None
    return None if _followed_problem(url) else url


@lru_cache(maxsize=1024)
def _followed_problem(url: str) -> str | None:
    """`destination_problem` of a followed link's destination, remembered: the links of
    one mail lead to the same few destinations, clicked by all its recipients. Only URLs
    whose signature verified get here (at most 1,024 of them, each ≤ MAX_TARGET long)."""
    return destination_problem(url)


def base_url_for(tracking_host: str | None) -> str:
    """Where tracked links point: the tracking domain (the site's scheme), else the site."""
    site = instance.current().base_url
    if tracking_host is None:
        return site
    return f"{site.split('://', 1)[0]}://{tracking_host}"


def _tracked(url: str, base_url: str) -> bool:
    """Whether a link should become a click link (module docstring). Owlat's own links
    are told first: the footer's subscription links, in every campaign message, then
    skip parsing the URL."""
    site = instance.current().base_url
    for own in {base_url.rstrip("/"), site}:
        if url.startswith(own + "/t/"):
            return False
        if any(url.startswith(own + path) for path in _SUBSCRIPTION_PATHS):
            return False
    # mailto:, tel:, #anchors, javascript:, placeholders, ... stay as written
    return destination_problem(url) is None


def tracked_html(
    html_text: str, send_id: str, base_url: str, *, opens: bool = True, clicks: bool = True
) -> str:
    """`html_text` with its links made click links and an open pixel added (module
    docstring); `opens`/`clicks` off leave that part out."""
    if clicks:

        def rewrite_anchor(anchor: re.Match[str]) -> str:
            tag = anchor.group(0)
            if _NO_TRACK.search(tag):
                return tag

            def rewrite_href(match: re.Match[str]) -> str:
                raw = next(g for g in match.groups()[1:] if g is not None)
                url = html.unescape(raw).strip()
                if not _tracked(url, base_url):
                    return match.group(0)
                return f'{match.group(1)}"{click_url(base_url, send_id, url)}"'

            return _HREF.sub(rewrite_href, tag, count=1)

        html_text = _ANCHOR.sub(rewrite_anchor, html_text)
    if opens:
        pixel = (
            f'<img src="{open_url(base_url, send_id)}" width="1" height="1" alt="" '
            'style="display:block;width:1px;height:1px;border:0" />'
        )
        ends = list(_BODY_END.finditer(html_text))
        if ends:
            at = ends[-1].start()
            html_text = html_text[:at] + pixel + html_text[at:]
        else:
            html_text += pixel
    return html_text


def tracked(claimed: Mapping[str, Any]) -> str | None:
    """The HTML of a claimed send (`sends.claim`) as it goes out: with its links and pixel
    when the claim carries `tracking` (`policy.tracking_for`)."""
    html_text, tracking = claimed.get("html"), claimed.get("tracking")
    if html_text is None or tracking is None:
        return html_text
    return tracked_html(html_text, str(claimed["sendId"]), tracking["baseUrl"])
