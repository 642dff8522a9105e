"""The user identity a function sees, built from verified JWT claims (reference §4.7).

The rule, as Convex applies it:

- `tokenIdentifier` is `"{iss}|{sub}"`, `subject` is `sub`, `issuer` is `iss`;
- standard OIDC claims are renamed to camelCase (`given_name` → `givenName`, `picture` →
  `pictureUrl`, `locale` → `language`, ...; the table is `_STANDARD_CLAIMS`), `address`
  becomes the string `address.formatted`, `updated_at` (seconds) an RFC 3339 string;
- the registered claims that describe the token rather than the user (`aud`, `exp`, `iat`,
  `nbf`, `jti`) and Clerk's `fva` are dropped;
- every other claim is a custom claim, kept under its own name; a nested object is
  flattened into dotted keys (`{"org": {"id": 1}}` → `"org.id": 1.0`).

Values are Convex values (JSON numbers become floats); a custom claim that cannot be one
(a `$`-prefixed name, an integer too large for a float64, ...) is left out.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import json
import logging
from collections.abc import Iterator, Mapping
from typing import Any

from owlat.runtime.errors import AuthenticationError, InvalidValueError
from owlat.runtime.values import normalize_value

logger = logging.getLogger("owlat.runtime.auth")

_STANDARD_CLAIMS: dict[str, str] = {
    "name": "name",
    "given_name": "givenName",
    "family_name": "familyName",
    "nickname": "nickname",
    "preferred_username": "preferredUsername",
    "profile": "profileUrl",
    "picture": "pictureUrl",
    "email": "email",
    "email_verified": "emailVerified",
    "gender": "gender",
    "birthdate": "birthday",
    "zoneinfo": "timezone",
    "locale": "language",
    "phone_number": "phoneNumber",
    "phone_number_verified": "phoneNumberVerified",
}
_BOOLEAN_CLAIMS = frozenset({"email_verified", "phone_number_verified"})
_DROPPED_CLAIMS = frozenset({"sub", "iss", "aud", "exp", "iat", "nbf", "jti", "fva"})


def identity_from_claims(claims: Mapping[str, Any]) -> dict[str, Any]:
    """The `UserIdentity` of a verified token's claims (`sub` and `iss` must be strings)."""
    subject, issuer = claims["sub"], claims["iss"]
    identity: dict[str, Any] = {
        "tokenIdentifier": f"{issuer}|{subject}",
        "subject": subject,
        "issuer": issuer,
    }
    for claim, value in claims.items():
        if claim in _DROPPED_CLAIMS or value is None:
            continue
        if claim in _STANDARD_CLAIMS:
            if claim in _BOOLEAN_CLAIMS and isinstance(value, str):
                value = value.lower() == "true"  # some providers send "true"/"false"
            _put(identity, _STANDARD_CLAIMS[claim], value)
        elif claim == "address":
            formatted = value.get("formatted") if isinstance(value, Mapping) else value
            if isinstance(formatted, str):
                identity["address"] = formatted
        elif claim == "updated_at":
            identity["updatedAt"] = _rfc3339(value)
        else:
            for name, item in _flatten(claim, value):
                _put(identity, name, item)
    return identity


def acting_identity(attributes: object) -> dict[str, Any]:
    """The identity an admin acts as (`Convex <key>:<base64 JSON>` or the sync protocol's
    `impersonating`): the attributes as given, with `tokenIdentifier` derived from
    `issuer` and `subject` when it is missing (the npm client does not send it)."""
    if not isinstance(attributes, Mapping):
        raise AuthenticationError("The acting user identity must be a JSON object")
    try:
        identity: dict[str, Any] = normalize_value(dict(attributes))
    except InvalidValueError as error:
        raise AuthenticationError(f"The acting user identity is invalid: {error}") from None
    if "tokenIdentifier" not in identity:
        identity = {
            "tokenIdentifier": f"{identity.get('issuer', '')}|{identity.get('subject', '')}",
            **identity,
        }
    return identity


def decode_acting_identity(encoded: str) -> dict[str, Any]:
    """`acting_identity` of base64(JSON), as the npm client's `setAdminAuth` sends it."""
    try:
        attributes = json.loads(base64.b64decode(encoded, validate=True))
    except (binascii.Error, ValueError) as error:
        raise AuthenticationError(
            f"The acting user identity after the admin key is not base64 JSON: {error}"
        ) from None
    return acting_identity(attributes)


def _flatten(name: str, value: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(value, Mapping):
        for key, item in value.items():
            yield from _flatten(f"{name}.{key}", item)
    else:
        yield name, value


def _put(identity: dict[str, Any], name: str, value: Any) -> None:
    try:
        identity.update(normalize_value({name: value}))
    except InvalidValueError as error:
        logger.warning("JWT claim %r left out of the user identity: %s", name, error.message)


def _rfc3339(value: Any) -> Any:
    """OIDC `updated_at` is seconds since the epoch; Convex hands out an RFC 3339 string."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            return datetime.datetime.fromtimestamp(value, tz=datetime.UTC).isoformat()
        except (OverflowError, OSError, ValueError):
            return float(value)
    return value
