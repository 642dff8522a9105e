"""DKIM keys Owlat generates for domains it signs itself (SMTP relay or own MTA).

A key is RSA 2048 (RFC 8301 requires ≥1024, recommends 2048: large enough, and its record
still fits one TXT record as two strings). The private key is kept as PKCS#1 PEM, the form
every DKIM signer reads; the record publishes the public key as base64 DER
SubjectPublicKeyInfo: `v=DKIM1; k=rsa; p=<base64>` at `<selector>._domainkey.<domain>`.
Selectors are `owlat<yyyymmdd>` so a rotated key gets a new name beside the old one.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
from collections.abc import Collection

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

KEY_BITS = 2048


@dataclasses.dataclass(frozen=True)
class DkimKey:
    selector: str
    private_key_pem: str
    public_key: str  # base64 DER SubjectPublicKeyInfo, the record's p= value

    @property
    def txt_value(self) -> str:
        return dkim_txt_value(self.public_key)


def generate_dkim_key(selector: str) -> DkimKey:
    """A new RSA 2048 key pair under `selector`."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()
    return DkimKey(selector, pem, public_key_from_private(pem))


def public_key_from_private(private_key_pem: str) -> str:
    """The record's p= value for a stored private key."""
    private = serialization.load_pem_private_key(private_key_pem.encode(), password=None)
    der = private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(der).decode()


def dkim_txt_value(public_key: str) -> str:
    return f"v=DKIM1; k=rsa; p={public_key}"


def new_selector(now_ms: int, taken: Collection[str] = ()) -> str:
    """`owlat<yyyymmdd>` of `now_ms` (UTC), with `-2`, `-3`, ... when already taken."""
    base = f"owlat{dt.datetime.fromtimestamp(now_ms / 1000, dt.UTC):%Y%m%d}"
    selector, n = base, 1
    while selector in taken:
        n += 1
        selector = f"{base}-{n}"
    return selector
