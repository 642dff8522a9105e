"""Owlat as its own token issuer: one Ed25519 key in the data folder, JWKS, JWTs.

The key is created on first start (`<data_dir>/auth_signing_key.pem`, owner-readable only);
its `kid` is the RFC 7638 thumbprint of the public key. Tokens follow BetterAuth's JWT
plugin: header `{alg: EdDSA, kid}`, payload = the user's fields + `iat`, `exp` (iat + 900 s),
`sub` (user id), `iss` = `aud` = the instance base URL, plus `sid`, the session id, which
the session helpers check against the sessions table (revoking a session revokes its
tokens).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
from functools import cache
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

KEY_FILE = "auth_signing_key.pem"
TOKEN_LIFETIME_SECONDS = 900


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@cache
def _load(data_dir: Path) -> Ed25519PrivateKey:
    path = data_dir / KEY_FILE
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise RuntimeError(f"{path} is not an Ed25519 private key") from None
        return key
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    with os.fdopen(fd, "wb") as file:
        file.write(pem)
    return key


def public_jwk(data_dir: Path) -> dict[str, str]:
    """The public key as a JWK (with `kid` and `alg`)."""
    raw = (
        _load(Path(data_dir))
        .public_key()
        .public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    )
    x = _b64(raw)
    thumbprint = json.dumps({"crv": "Ed25519", "kty": "OKP", "x": x}, separators=(",", ":"))
    kid = _b64(hashlib.sha256(thumbprint.encode()).digest())
    return {"kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "x": x, "kid": kid}


def jwks(data_dir: Path) -> dict[str, Any]:
    return {"keys": [public_jwk(data_dir)]}


def issue_token(
    data_dir: Path, issuer: str, subject: str, session_id: str, user: dict[str, Any]
) -> str:
    now = int(time.time())
    claims = {
        **user,
        "iat": now,
        "exp": now + TOKEN_LIFETIME_SECONDS,
        "sub": subject,
        "iss": issuer,
        "aud": issuer,
        "sid": session_id,
    }
    key = _load(Path(data_dir))
    return jwt.encode(claims, key, algorithm="EdDSA", headers={"kid": public_jwk(data_dir)["kid"]})
