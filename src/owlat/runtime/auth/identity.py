"""Caller identity: verifying credentials, and `ctx.auth.get_user_identity()`.

Transports (HTTP API, sync sockets) turn a caller's credentials into a `Caller` with the
`Authenticator`, then hand `caller.identity` to the runtime; functions only ever see the
result, through `ctx.auth`. Credentials are of two kinds:

- a **user token**: a JWT signed by a `TrustedIssuer` (RS256, ES256 or EdDSA), with the
  claims `sub`, `iss`, `exp` and `iat`. Its claims become the `UserIdentity` (reference
  §4.7; the mapping is in `claims.py`). A token that fails any check raises
  `AuthenticationError` saying which check; it never degrades to an anonymous call.
- the **admin key** of the deployment (`owlat admin-key` prints it): admin callers may run
  internal functions, optionally acting as a user identity they supply.

Issuers are configured with `OWLAT_AUTH_ISSUERS` (see `owlat.config`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import hmac
import secrets
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Final

import jwt

from owlat.runtime.auth.claims import (
    acting_identity,
    decode_acting_identity,
    identity_from_claims,
)
from owlat.runtime.auth.jwks import KeySet
from owlat.runtime.errors import AuthenticationError
from owlat.runtime.secret_files import load_or_create_secret, read_secret

UserIdentity = dict[str, Any]

SUPPORTED_ALGORITHMS: Final = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA"}
)
REQUIRED_CLAIMS: Final = ("sub", "iss", "exp", "iat")
ADMIN_KEY_FILE: Final = "admin_key"
ADMIN_KEY_PREFIX: Final = "owlat-admin|"


class Auth:
    """The `ctx.auth` of a function call."""

    __slots__ = ("_identity",)

    def __init__(self, identity: UserIdentity | None = None) -> None:
        self._identity = identity

    async def get_user_identity(self) -> UserIdentity | None:
        """The caller's identity, or None when the call carries no user token."""
        return None if self._identity is None else dict(self._identity)

    @property
    def identity(self) -> UserIdentity | None:
        return self._identity


ANONYMOUS = Auth(None)


@dataclasses.dataclass(frozen=True, slots=True)
class Caller:
    """Who is calling: a user identity (or None), and whether with admin rights."""

    identity: UserIdentity | None = None
    admin: bool = False


ANONYMOUS_CALLER: Final = Caller()


@dataclasses.dataclass(frozen=True)
class TrustedIssuer:
    """An issuer whose user tokens are accepted.

    `issuer` must equal the token's `iss` (trailing slashes aside); when `audience` is set,
    the token's `aud` must contain it. Keys come from exactly one of `jwks` (a JWKS
    object), `jwks_url` (fetched and cached) or `public_key_pem`.
    """

    issuer: str
    audience: str | None = None
    jwks: Mapping[str, Any] | None = None
    jwks_url: str | None = None
    public_key_pem: str | None = None
    algorithms: tuple[str, ...] = ("RS256", "ES256", "EdDSA")

    def __post_init__(self) -> None:
        sources = [s for s in (self.jwks, self.jwks_url, self.public_key_pem) if s is not None]
        if len(sources) != 1:
            raise ValueError(
                f"Trusted issuer {self.issuer!r} needs exactly one of jwks, jwks_url and "
                f"public_key_pem (got {len(sources)})"
            )
        object.__setattr__(self, "algorithms", tuple(self.algorithms))
        unsupported = set(self.algorithms) - SUPPORTED_ALGORITHMS
        if unsupported or not self.algorithms:
            raise ValueError(
                f"Trusted issuer {self.issuer!r}: algorithms must be a non-empty subset of "
                f"{sorted(SUPPORTED_ALGORITHMS)}, got {list(self.algorithms)}"
            )

    @classmethod
    def from_config(cls, entry: object) -> TrustedIssuer:
        """An issuer from one JSON object of `OWLAT_AUTH_ISSUERS` (field names as above)."""
        if not isinstance(entry, Mapping):
            raise ValueError(f"each trusted issuer must be a JSON object, got {entry!r}")
        fields = {field.name for field in dataclasses.fields(cls)}
        unknown = set(entry) - fields
        if unknown:
            raise ValueError(
                f"unknown trusted-issuer fields {sorted(unknown)}; use {sorted(fields)}"
            )
        if not isinstance(entry.get("issuer"), str):
            raise ValueError(f"a trusted issuer needs an `issuer` string, got {dict(entry)!r}")
        for name, expected in _CONFIG_TYPES.items():
            value = entry.get(name)
            if value is not None and not isinstance(value, expected):
                raise ValueError(
                    f"trusted issuer {entry['issuer']!r}: `{name}` must be a "
                    f"{expected.__name__}, got {value!r}"
                )
        return cls(**entry)


@dataclasses.dataclass(frozen=True, slots=True)
class _Unverified:
    """A token's `kid` and `alg`, and the trusted issuer it names (not yet verified)."""

    kid: str | None
    algorithm: str | None
    trusted: TrustedIssuer
    key_set: KeySet


_CONFIG_TYPES: dict[str, type] = {
    "audience": str,
    "jwks": dict,
    "jwks_url": str,
    "public_key_pem": str,
    "algorithms": list,
}


class Authenticator:
    """Verifies user tokens against trusted issuers, and the deployment's admin key."""

    def __init__(
        self,
        issuers: Iterable[TrustedIssuer] = (),
        *,
        admin_key: str | None = None,
        clock_skew_seconds: float = 10.0,
        jwks_max_age_seconds: float = 3600.0,
    ) -> None:
        self._issuers: dict[str, TrustedIssuer] = {}
        self._key_sets: dict[str, KeySet] = {}
        for trusted in issuers:
            name = trusted.issuer.rstrip("/")
            if name in self._issuers:
                raise ValueError(f"Issuer {trusted.issuer!r} is configured twice")
            self._issuers[name] = trusted
            self._key_sets[name] = KeySet(
                trusted.issuer,
                jwks=trusted.jwks,
                jwks_url=trusted.jwks_url,
                public_key_pem=trusted.public_key_pem,
                max_age=jwks_max_age_seconds,
            )
        self._admin_key = admin_key
        self.clock_skew_seconds = clock_skew_seconds

    @property
    def issuers(self) -> tuple[TrustedIssuer, ...]:
        return tuple(self._issuers.values())

    # -- user tokens ---------------------------------------------------------------------

    def verify_user_token(self, token: str) -> UserIdentity:
        """The identity of a valid user token; raises `AuthenticationError` otherwise.

        Blocks while fetching a JWKS URL's keys when they are due; async code should call
        `verify_user_token_async`.
        """
        unverified = self._unverified(token)
        if unverified.key_set.needs_fetch(unverified.kid):
            unverified.key_set.fetch()
        return self._verify(token, unverified)

    async def verify_user_token_async(self, token: str) -> UserIdentity:
        """`verify_user_token` that fetches JWKS URLs in a worker thread."""
        unverified = self._unverified(token)
        if unverified.key_set.needs_fetch(unverified.kid):
            await asyncio.to_thread(unverified.key_set.fetch)
        return self._verify(token, unverified)

    def _unverified(self, token: str) -> _Unverified:
        """What the token claims about its signer, read before verifying it."""
        try:
            header = jwt.get_unverified_header(token)
            claims = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError as error:
            raise AuthenticationError(f"Could not decode the token as a JWT: {error}") from None
        issuer = claims.get("iss")
        if not isinstance(issuer, str):
            raise AuthenticationError("The token is missing the required claim 'iss'")
        name = issuer.rstrip("/")
        if name not in self._issuers:
            raise AuthenticationError(
                f"No auth provider found matching the given token: issuer {issuer!r} is not "
                "trusted (configure it in OWLAT_AUTH_ISSUERS)"
            )
        kid, algorithm = header.get("kid"), header.get("alg")
        return _Unverified(
            kid if isinstance(kid, str) else None,
            algorithm if isinstance(algorithm, str) else None,
            self._issuers[name],
            self._key_sets[name],
        )

    def _verify(self, token: str, unverified: _Unverified) -> UserIdentity:
        trusted, algorithm = unverified.trusted, unverified.algorithm
        if algorithm is None or algorithm not in trusted.algorithms:
            raise AuthenticationError(
                f"The token is signed with {algorithm!r}, which issuer {trusted.issuer!r} "
                f"is not trusted for (allowed: {', '.join(trusted.algorithms)})"
            )
        key = unverified.key_set.key_for(unverified.kid)
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                audience=trusted.audience,
                options={
                    "require": list(REQUIRED_CLAIMS),
                    "verify_aud": trusted.audience is not None,
                },
                leeway=self.clock_skew_seconds,
            )
        except jwt.PyJWTError as error:
            raise AuthenticationError(_explain(error, token, trusted)) from None
        if not isinstance(claims.get("sub"), str):
            raise AuthenticationError("The token's `sub` claim must be a string")
        return identity_from_claims(claims)

    # -- admin key -----------------------------------------------------------------------

    def check_admin_key(self, key: str) -> bool:
        """Whether `key` is the deployment's admin key (compared in constant time)."""
        if not self._admin_key:
            return False
        return hmac.compare_digest(key.encode(), self._admin_key.encode())

    def admin_caller(self, key: str, acting_as: object = None) -> Caller:
        """An admin `Caller`, acting as the identity `acting_as` when given."""
        if not self.check_admin_key(key):
            raise AuthenticationError("The admin key is not valid for this deployment")
        identity = None if acting_as is None else acting_identity(acting_as)
        return Caller(identity, admin=True)

    # -- HTTP ----------------------------------------------------------------------------

    async def authenticate_header(self, header: str | None) -> Caller:
        """The caller of an HTTP `Authorization` header: none (anonymous),
        `Bearer <jwt>`, `Convex <admin key>` or `Convex <admin key>:<base64 identity>`."""
        if header is None or not header.strip():
            return ANONYMOUS_CALLER
        scheme, _, credentials = header.strip().partition(" ")
        credentials = credentials.strip()
        if scheme.lower() == "bearer":
            return Caller(await self.verify_user_token_async(credentials))
        if scheme.lower() == "convex":
            key, sep, acting = credentials.partition(":")
            caller = self.admin_caller(key)
            return Caller(decode_acting_identity(acting), admin=True) if sep else caller
        raise AuthenticationError(
            "The Authorization header must be `Bearer <token>` or `Convex <admin key>`"
        )


def _explain(error: jwt.PyJWTError, token: str, trusted: TrustedIssuer) -> str:
    """A precise sentence for a failed verification."""
    if isinstance(error, jwt.ExpiredSignatureError):
        exp = jwt.decode(token, options={"verify_signature": False}).get("exp")
        when = (
            datetime.datetime.fromtimestamp(exp, tz=datetime.UTC).isoformat()
            if isinstance(exp, (int, float))
            else exp
        )
        return f"The token expired at {when}"
    if isinstance(error, jwt.InvalidSignatureError):
        return f"The token's signature is not valid for issuer {trusted.issuer!r}"
    if isinstance(error, jwt.MissingRequiredClaimError):
        return f"The token is missing the required claim '{error.claim}'"
    if isinstance(error, jwt.InvalidAudienceError):
        aud = jwt.decode(token, options={"verify_signature": False}).get("aud")
        return f"The token's audience {aud!r} does not include {trusted.audience!r} ({error})"
    if isinstance(error, jwt.ImmatureSignatureError):
        return f"The token is not valid yet: {error}"
    return f"The token is not valid: {error}"


# -- admin key storage ---------------------------------------------------------------------


def generate_admin_key() -> str:
    """A new random admin key: `owlat-admin|` and 64 hex digits."""
    return ADMIN_KEY_PREFIX + secrets.token_hex(32)


def read_admin_key(data_dir: Path) -> str | None:
    """The admin key stored in `data_dir`, or None when there is none yet."""
    return read_secret(Path(data_dir) / ADMIN_KEY_FILE)


def load_or_create_admin_key(data_dir: Path) -> str:
    """The admin key of `data_dir`, created (readable by its owner only) if missing."""
    return load_or_create_secret(Path(data_dir) / ADMIN_KEY_FILE, generate_admin_key)
