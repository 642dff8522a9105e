"""JWT issuers for tests: a private key that signs tokens, and the `TrustedIssuer` that
makes an `Authenticator` accept them."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from owlat.runtime.auth import TrustedIssuer

AUDIENCE = "owlat-tests"


@dataclasses.dataclass(frozen=True)
class TokenIssuer:
    """Signs tokens as `issuer` with `algorithm` (RS256, ES256 or EdDSA)."""

    issuer: str
    algorithm: str
    private_key: Any
    kid: str

    @classmethod
    def generate(cls, issuer: str, algorithm: str) -> TokenIssuer:
        key: Any
        if algorithm == "RS256":
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        elif algorithm == "ES256":
            key = ec.generate_private_key(ec.SECP256R1())
        else:
            key = ed25519.Ed25519PrivateKey.generate()
        return cls(issuer, algorithm, key, kid=f"{algorithm.lower()}-key-1")

    @property
    def public_jwk(self) -> dict[str, Any]:
        algorithm: dict[str, Any] = {
            "RS256": RSAAlgorithm,
            "ES256": ECAlgorithm,
            "EdDSA": OKPAlgorithm,
        }
        jwk: dict[str, Any] = algorithm[self.algorithm].to_jwk(
            self.private_key.public_key(), as_dict=True
        )
        return {**jwk, "kid": self.kid, "alg": self.algorithm, "use": "sig"}

    def trusted(self, **overrides: Any) -> TrustedIssuer:
        """The `TrustedIssuer` for this issuer's keys (inline JWKS, audience `AUDIENCE`)."""
        fields: dict[str, Any] = {
            "issuer": self.issuer,
            "audience": AUDIENCE,
            "jwks": {"keys": [self.public_jwk]},
        }
        return TrustedIssuer(**{**fields, **overrides})

    def token(
        self,
        subject: str = "user-1",
        *,
        expires_in: float = 3600,
        headers: dict[str, Any] | None = None,
        omit: tuple[str, ...] = (),
        **claims: Any,
    ) -> str:
        """A signed token for `subject`; `claims` add to (or replace) the defaults."""
        now = int(time.time())
        payload: dict[str, Any] = {
            "sub": subject,
            "iss": self.issuer,
            "aud": AUDIENCE,
            "iat": now,
            "exp": int(now + expires_in),
            **claims,
        }
        for claim in omit:
            payload.pop(claim, None)
        return jwt.encode(
            payload,
            self.private_key,
            algorithm=self.algorithm,
            headers={"kid": self.kid, **(headers or {})},
        )
