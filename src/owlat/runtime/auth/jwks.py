"""The verification keys of one trusted token issuer.

A key set comes from an inline JWKS, a PEM public key, or a JWKS URL. A URL's keys are
fetched on first use and cached: they are fetched again when older than `max_age`, or
when a token names a `kid` the cache lacks (issuers rotate keys), at most once every
`refetch_interval` so that tokens with made-up `kid`s cannot make us hammer the issuer.

Fetching blocks (stdlib `urllib`); `needs_fetch` lets async callers run `fetch` in a
thread first, after which `key_for` answers from the cache.
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Mapping
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from owlat.runtime.errors import AuthenticationError

FETCH_TIMEOUT_SECONDS = 5.0


class KeySet:
    """Keys of one issuer, by `kid`."""

    def __init__(
        self,
        issuer: str,
        *,
        jwks: Mapping[str, Any] | None = None,
        jwks_url: str | None = None,
        public_key_pem: str | None = None,
        max_age: float = 3600.0,
        refetch_interval: float = 60.0,
    ) -> None:
        self.issuer = issuer
        self.jwks_url = jwks_url
        self.max_age = max_age
        self.refetch_interval = refetch_interval
        self._keys: list[jwt.PyJWK] = []
        self._fetched_at: float | None = None
        if jwks is not None:
            self._keys = _parse_jwks(jwks, issuer)
        elif public_key_pem is not None:
            self._keys = [_jwk_from_pem(public_key_pem, issuer)]

    def needs_fetch(self, kid: str | None) -> bool:
        """Whether `key_for(kid)` should first `fetch` (only for JWKS URLs)."""
        if self.jwks_url is None:
            return False
        if self._fetched_at is None:
            return True
        age = time.monotonic() - self._fetched_at
        if age > self.max_age:
            return True
        return self._find(kid) is None and age > self.refetch_interval

    def fetch(self) -> None:
        """Download the JWKS from `jwks_url` (blocking)."""
        if self.jwks_url is None:
            return
        request = urllib.request.Request(self.jwks_url, headers={"Accept": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=FETCH_TIMEOUT_SECONDS) as response:
                document = json.loads(response.read())
        except (OSError, ValueError) as error:  # URLError and timeouts are OSErrors
            raise AuthenticationError(
                f"Could not fetch the signing keys of issuer {self.issuer!r} "
                f"from {self.jwks_url}: {error}"
            ) from None
        if not isinstance(document, Mapping):
            raise AuthenticationError(f"{self.jwks_url} is not a JWKS (a JSON object)")
        self._keys = _parse_jwks(document, self.issuer)
        self._fetched_at = time.monotonic()

    def key_for(self, kid: str | None) -> jwt.PyJWK:
        """The key that must have signed a token whose header names `kid`."""
        key = self._find(kid)
        if key is not None:
            return key
        if kid is None:
            raise AuthenticationError(
                f"The token has no `kid` header, and issuer {self.issuer!r} has "
                f"{len(self._keys)} signing keys: the token must name its key"
            )
        raise AuthenticationError(
            f"The token's `kid` {kid!r} matches no signing key of issuer {self.issuer!r}"
        )

    def _find(self, kid: str | None) -> jwt.PyJWK | None:
        if kid is None:
            return self._keys[0] if len(self._keys) == 1 else None
        for key in self._keys:
            if key.key_id == kid or (key.key_id is None and len(self._keys) == 1):
                return key
        return None


def _parse_jwks(document: Mapping[str, Any], issuer: str) -> list[jwt.PyJWK]:
    """The signature keys of a JWKS; keys for encryption or of unknown types are skipped."""
    entries = document.get("keys")
    if not isinstance(entries, list):
        raise AuthenticationError(f"The JWKS of issuer {issuer!r} has no `keys` list")
    keys: list[jwt.PyJWK] = []
    for entry in entries:
        if not isinstance(entry, dict) or entry.get("use", "sig") != "sig":
            continue
        try:
            keys.append(jwt.PyJWK(entry))
        except jwt.PyJWTError:
            continue
    if not keys:
        raise AuthenticationError(f"The JWKS of issuer {issuer!r} has no usable signing key")
    return keys


def _jwk_from_pem(pem: str, issuer: str) -> jwt.PyJWK:
    """A PEM public key as a JWK (RSA → RS256, P-256 → ES256, Ed25519 → EdDSA)."""
    try:
        key = serialization.load_pem_public_key(pem.encode())
    except ValueError as error:
        raise ValueError(f"public_key_pem of issuer {issuer!r} is not a PEM key: {error}") from None
    data: dict[str, Any]
    if isinstance(key, rsa.RSAPublicKey):
        data = RSAAlgorithm.to_jwk(key, as_dict=True)
    elif isinstance(key, ec.EllipticCurvePublicKey):
        data = ECAlgorithm.to_jwk(key, as_dict=True)
    elif isinstance(key, ed25519.Ed25519PublicKey):
        data = OKPAlgorithm.to_jwk(key, as_dict=True)
    else:
        raise ValueError(
            f"public_key_pem of issuer {issuer!r} must be an RSA, EC or Ed25519 public key"
        )
    return jwt.PyJWK(data)
