"""Unsubscribe and preferences tokens (reference §4.1) and the links that carry them.

Token: `<contactId>:<issuedAtMs>:<sig>`, `sig` = base64url (no padding) of
HMAC-SHA256(secret, prefix + contactId + ":" + issuedAtMs), prefix "" for unsubscribe
and "pref:" for preferences, so one kind cannot be used as the other. Valid 90 days.
Refusals (`TokenError.reason`): `invalid_format` (not 3 parts), `missing_parts`,
`parse_error`, `expired`, `invalid_signature`.

Secret: env `OWLAT_UNSUBSCRIBE_SECRET` when set; otherwise derived (HMAC) from the
instance secret that `instance.load_or_create_secret` persists in the data folder, so it
survives restarts without a second secret file.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import os
from typing import Literal
from urllib.parse import quote

from owlat.app.lib.instance import current
from owlat.app.lib.session_organization import now_ms

ENV_SECRET = "OWLAT_UNSUBSCRIBE_SECRET"
TOKEN_TTL_MS = 90 * 24 * 60 * 60 * 1000
Kind = Literal["unsubscribe", "preferences"]
_PREFIX: dict[str, str] = {"unsubscribe": "", "preferences": "pref:"}


class TokenError(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def secret() -> bytes:
    configured = os.environ.get(ENV_SECRET)
    if configured:
        return configured.encode()
    return _derived(current().secret)


@functools.cache
def _derived(instance_secret: bytes) -> bytes:
    """The token secret derived from an instance secret (computed once per secret: three
    tokens go into every campaign message)."""
    return hmac.new(instance_secret, b"owlat unsubscribe tokens", hashlib.sha256).digest()


def _signature(kind: Kind, contact_id: str, issued_at: int) -> str:
    message = f"{_PREFIX[kind]}{contact_id}:{issued_at}".encode()
    digest = hmac.new(secret(), message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def make_token(kind: Kind, contact_id: str, issued_at: int | None = None) -> str:
    issued = int(now_ms()) if issued_at is None else issued_at
    return f"{contact_id}:{issued}:{_signature(kind, contact_id, issued)}"


def verify_token(kind: Kind, token: str) -> str:
    """The contact id of a valid `kind` token, else `TokenError(reason)`."""
    parts = token.split(":")
    if len(parts) != 3:
        raise TokenError("invalid_format")
    contact_id, issued_text, signature = parts
    if not contact_id or not issued_text or not signature:
        raise TokenError("missing_parts")
    if not issued_text.isdigit():
        raise TokenError("parse_error")
    issued_at = int(issued_text)
    if not hmac.compare_digest(_signature(kind, contact_id, issued_at), signature):
        raise TokenError("invalid_signature")
    if now_ms() - issued_at > TOKEN_TTL_MS:
        raise TokenError("expired")
    return contact_id


def unsubscribe_link(contact_id: str, base_url: str | None = None) -> str:
    """The unsubscribe page (a button POSTs; opening it changes nothing)."""
    base = (base_url or current().base_url).rstrip("/")
    return f"{base}/unsubscribe?token={quote(make_token('unsubscribe', contact_id), safe='')}"


def preferences_link(contact_id: str, base_url: str | None = None) -> str:
    base = (base_url or current().base_url).rstrip("/")
    return f"{base}/preferences?token={quote(make_token('preferences', contact_id), safe='')}"


def confirm_link(token: str, base_url: str | None = None) -> str:
    """The double opt-in confirmation page of a DOI token."""
    base = (base_url or current().base_url).rstrip("/")
    return f"{base}/confirm?token={quote(token, safe='')}"


def list_unsubscribe_headers(contact_id: str, base_url: str) -> dict[str, str]:
    """RFC 8058 one-click unsubscribe headers for a marketing mail to `contact_id`."""
    token = quote(make_token("unsubscribe", contact_id), safe="")
    return {
        "List-Unsubscribe": f"<{base_url.rstrip('/')}/unsub/{token}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }
