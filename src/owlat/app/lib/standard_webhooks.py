"""Standard Webhooks (Svix) signatures: what Resend signs its webhooks with and what
Owlat signs its own outgoing webhooks with (standardwebhooks.com).

A secret is `whsec_` + base64 of the key. A message's signature is
base64(HMAC-SHA256(key, `<webhook-id>.<webhook-timestamp>.<body>`)), sent as `v1,<sig>`;
a header may carry several space-separated signatures (key rotation), any one matching
passes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

PREFIX = "whsec_"


def secret_key(secret: str) -> bytes:
    try:
        return base64.b64decode(secret.removeprefix(PREFIX), validate=True)
    except binascii.Error:
        raise ValueError("a signing secret is whsec_ followed by base64") from None


def sign(secret: str, message_id: str, timestamp: str, body: bytes) -> str:
    """The base64 signature of one message (without the `v1,` prefix)."""
    content = f"{message_id}.{timestamp}.".encode() + body
    return base64.b64encode(hmac.new(secret_key(secret), content, hashlib.sha256).digest()).decode()


def matches(header: str, expected: str) -> bool:
    """Whether a `v1,<sig> v1,<sig>...` header holds `expected` (constant-time compares)."""
    found = False
    for entry in header.split():
        version, _, value = entry.partition(",")
        found |= version == "v1" and hmac.compare_digest(value, expected)
    return found
