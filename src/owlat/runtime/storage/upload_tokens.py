"""Upload tokens: what makes an upload URL (`/api/storage/upload?token=...`) valid.

    signed = expiry (8 bytes, big-endian Unix seconds) ++ nonce (16 bytes)
             ++ max_bytes (8 bytes, big-endian; 0: no limit) ++ owner (UTF-8, the rest)
    token  = base64url(signed ++ HMAC-SHA256(key, "owlat-upload\\0" ++ signed))

A token is valid until its expiry, `TOKEN_TTL` (1 hour) after it was issued, and may be used
**several times** until then, as Convex's: checking one needs no shared state, so every
node holding the key accepts it; each upload creates a new file. The function that generated
the URL chose the grant signed into it (`UploadGrant`): the most bytes an upload may have,
and an owner, an opaque string (at most `MAX_OWNER_BYTES`) recorded on the stored file for
the app to compare when a function is handed the file's id. The key is the setting
`OWLAT_STORAGE_SIGNING_KEY` (several nodes must share one) or else 32 random bytes kept in
`<data_dir>/storage_key`, created on first use, readable by its owner only.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime
import hashlib
import hmac
import secrets
import time
from pathlib import Path
from typing import Final

from owlat.runtime.errors import AuthenticationError, DeveloperError, OperatorError
from owlat.runtime.secret_files import load_or_create_secret

TOKEN_TTL: Final = 3600.0
KEY_FILE: Final = "storage_key"
MAX_OWNER_BYTES: Final = 256
_CONTEXT: Final = b"owlat-upload\0"
_EXPIRY_BYTES, _NONCE_BYTES, _LIMIT_BYTES, _MAC_BYTES = 8, 16, 8, 32
_FIXED_BYTES: Final = _EXPIRY_BYTES + _NONCE_BYTES + _LIMIT_BYTES


class UploadTokenError(AuthenticationError):
    """The upload URL is not valid."""


@dataclasses.dataclass(frozen=True, slots=True)
class UploadGrant:
    """What a valid token allows: uploads of at most `max_bytes` (None: any size), stored
    with `owner` (None: no owner)."""

    max_bytes: int | None = None
    owner: str | None = None

    def __post_init__(self) -> None:
        limit = self.max_bytes
        if limit is not None and (
            isinstance(limit, bool) or not isinstance(limit, int) or not 0 < limit < 1 << 63
        ):
            raise DeveloperError(
                f"An upload's max_bytes must be a positive whole number of bytes, got {limit!r}"
            )
        if self.owner is not None and not 0 < _utf8_length(self.owner) <= MAX_OWNER_BYTES:
            raise DeveloperError(
                f"A file's owner must be a non-empty string of at most {MAX_OWNER_BYTES} "
                f"UTF-8 bytes, got {self.owner!r}"
            )


def _utf8_length(text: object) -> int:
    """The length of `text` in UTF-8 (0 if it is not a string that has one)."""
    try:
        return len(text.encode()) if isinstance(text, str) else 0
    except UnicodeEncodeError:
        return 0


class UploadTokens:
    """Issues and checks upload tokens with one key."""

    def __init__(self, key: bytes, ttl: float = TOKEN_TTL) -> None:
        if len(key) < 16:
            raise OperatorError("The storage signing key must be at least 16 bytes long")
        self._key = key
        self.ttl = ttl

    def _mac(self, signed: bytes) -> bytes:
        return hmac.new(self._key, _CONTEXT + signed, hashlib.sha256).digest()

    def issue(self, now: float | None = None, grant: UploadGrant | None = None) -> str:
        grant = grant or UploadGrant()
        expiry = int((time.time() if now is None else now) + self.ttl)
        signed = (
            expiry.to_bytes(_EXPIRY_BYTES, "big")
            + secrets.token_bytes(_NONCE_BYTES)
            + (grant.max_bytes or 0).to_bytes(_LIMIT_BYTES, "big")
            + (grant.owner or "").encode()
        )
        return base64.urlsafe_b64encode(signed + self._mac(signed)).rstrip(b"=").decode()

    def check(self, token: str | None, now: float | None = None) -> UploadGrant:
        """The grant of `token`; raises `UploadTokenError` with the reason unless it is
        valid now."""
        if not token:
            raise UploadTokenError(
                "The upload URL has no token: use the URL from ctx.storage.generate_upload_url()"
            )
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except (binascii.Error, ValueError):
            raw = b""
        signed, mac = raw[:-_MAC_BYTES], raw[-_MAC_BYTES:]
        if len(signed) < _FIXED_BYTES or not hmac.compare_digest(mac, self._mac(signed)):
            raise UploadTokenError(
                "The upload URL's token is not valid (malformed, or not signed by this "
                "deployment): generate a new URL with ctx.storage.generate_upload_url()"
            )
        expiry = int.from_bytes(signed[:_EXPIRY_BYTES], "big")
        if (time.time() if now is None else now) >= expiry:
            when = datetime.datetime.fromtimestamp(expiry, tz=datetime.UTC).isoformat()
            raise UploadTokenError(
                f"The upload URL expired at {when} (upload URLs are valid for "
                f"{self.ttl / 60:g} minutes): generate a new one"
            )
        limit = int.from_bytes(signed[_EXPIRY_BYTES + _NONCE_BYTES : _FIXED_BYTES], "big")
        owner = signed[_FIXED_BYTES:].decode()
        return UploadGrant(limit or None, owner or None)


def load_or_create_signing_key(data_dir: Path) -> bytes:
    """The signing key kept in `data_dir`, created (owner-only) if missing."""
    return load_or_create_secret(Path(data_dir) / KEY_FILE, lambda: secrets.token_hex(32)).encode()
