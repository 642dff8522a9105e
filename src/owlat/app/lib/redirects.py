"""Where Owlat may send a browser: the one check of every callback and redirect URL.

A callback URL comes from the caller (BetterAuth's `callbackURL`, `redirectTo`) and goes
back out in a mail or a `Location` header under Owlat's own name, so a foreign one would
make Owlat an open redirect: a phishing link that starts with the real domain. A target
is accepted when it is

- a path on the web app: "/" followed by anything but "/" (to a browser "//host/x" is
  another host), or
- an absolute http(s) URL whose origin (scheme://host[:port]) is the site's, the web
  app's or one of OWLAT_TRUSTED_ORIGINS, without user info.

Browsers forgive a lot, so whatever one might read differently is refused outright: any
character but printable ASCII (tabs and newlines are dropped, "/\\t/evil" is "//evil"),
backslashes (read as "/", "/\\evil" is "//evil"), and a path that breaks the rule once
percent-decoded ("/%2F%2Fevil"), as the page receiving it may decode it before navigating.
The query and fragment of a path are data and are not decoded.
"""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit

from owlat.app.lib.errors import AuthFailure
from owlat.app.lib.instance import current

MAX_LENGTH = 2048
# Anything but printable ASCII, and the backslash.
_UNSAFE = re.compile(r"[^\x21-\x7e]|\\")
# Decoded paths may hold any text but control characters, whitespace and backslashes.
_UNSAFE_DECODED = re.compile(r"[\x00-\x20\x7f-\x9f\\]|\s")
# BetterAuth's error code for each field that carries a target.
_CODES = {"callbackURL": "INVALID_CALLBACK_URL", "redirectTo": "INVALID_REDIRECT_URL"}


def checked_redirect(value: str | None, field: str = "callbackURL") -> str | None:
    """`value` when it is a safe target (see the module docstring), None when absent;
    else an `AuthFailure` (400) named after `field` ("callbackURL" or "redirectTo")."""
    if not value:
        return None
    if not is_safe_redirect(value):
        raise AuthFailure(
            _CODES[field],
            f"Invalid {field}: give a path on this site (/...) or a URL on a trusted origin",
        )
    return value


def is_safe_redirect(value: str) -> bool:
    if len(value) > MAX_LENGTH or _UNSAFE.search(value):
        return False
    if value.startswith("/"):
        return _is_local_path(value)
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 -- raises ValueError on a malformed port
    except ValueError:
        return False
    if parts.scheme not in ("http", "https") or not parts.hostname or "@" in parts.netloc:
        return False
    return f"{parts.scheme}://{parts.netloc.lower()}" in current().redirect_origins()


def _is_local_path(value: str) -> bool:
    path = re.split(r"[?#]", value, maxsplit=1)[0]
    while True:
        if not path.startswith("/") or path.startswith("//") or _UNSAFE_DECODED.search(path):
            return False
        decoded = unquote(path)
        if decoded == path:
            return True
        path = decoded


def absolute_url(target: str) -> str:
    """A checked target as an absolute URL: a path is one on the web app (OWLAT_APP_URL)."""
    return current().app_url + target if target.startswith("/") else target
