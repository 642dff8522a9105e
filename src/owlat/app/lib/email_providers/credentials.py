"""Provider credentials at rest: AES-256-GCM, bound to where they are stored.

`seal(key, credentials, context)` gives `v1.<base64url(nonce ‖ ciphertext ‖ tag)>` of the
JSON credentials; `context` (e.g. "<organizationId>/<provider>") is authenticated data,
so a sealed value copied to another organization or provider does not open. `open_sealed`
raises `CredentialsError` for a wrong key, a wrong context or altered bytes alike.

The key: `OWLAT_SECRET_KEY` when set (any string of 32+ characters, run through
HKDF-SHA256), else the random secret in `<data_dir>/secret_key`, created owner-readable
on first use. Nodes sharing a database must share the key; losing it loses the stored
credentials (they must be entered again), never anything else.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
from collections.abc import Mapping
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

ENV_KEY = "OWLAT_SECRET_KEY"
KEY_FILE = "secret_key"
_VERSION = "v1."
_NONCE = 12


class CredentialsError(Exception):
    """Stored credentials cannot be opened or the key is unusable."""


def load_key(data_dir: Path, configured: str | None = None) -> bytes:
    """The 32-byte key: `configured` (default: the environment's OWLAT_SECRET_KEY), else
    the data folder's key file (created when missing)."""
    secret = os.environ.get(ENV_KEY, "") if configured is None else configured
    if secret:
        if len(secret) < 32:
            raise CredentialsError(f"{ENV_KEY} must be at least 32 characters")
        return _derive(secret.encode())
    path = Path(data_dir) / KEY_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        text = path.read_text().strip()
        if len(text) < 32:
            raise CredentialsError(f"{path} holds no usable key") from None
        return _derive(text.encode())
    value = secrets.token_hex(32)
    with os.fdopen(fd, "w") as file:
        file.write(value + "\n")
    return _derive(value.encode())


def seal(key: bytes, credentials: Mapping[str, str], context: str) -> str:
    nonce = secrets.token_bytes(_NONCE)
    plain = json.dumps(dict(credentials), separators=(",", ":"), sort_keys=True).encode()
    sealed = nonce + AESGCM(key).encrypt(nonce, plain, context.encode())
    return _VERSION + base64.urlsafe_b64encode(sealed).decode().rstrip("=")


def open_sealed(key: bytes, value: str, context: str) -> dict[str, str]:
    if not value.startswith(_VERSION):
        raise CredentialsError("not sealed credentials (unknown format)")
    try:
        data = base64.urlsafe_b64decode(value[len(_VERSION) :] + "==")
        plain = AESGCM(key).decrypt(data[:_NONCE], data[_NONCE:], context.encode())
    except (ValueError, InvalidTag):
        raise CredentialsError(
            "credentials do not open: another key, another organization/provider, or altered"
        ) from None
    credentials = json.loads(plain)
    return {str(name): str(secret) for name, secret in credentials.items()}


def _derive(material: bytes) -> bytes:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"owlat credentials")
    return hkdf.derive(material)
