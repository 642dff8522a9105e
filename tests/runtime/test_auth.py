"""The Authenticator without a server: token checks, claims → identity, key sources
(inline JWKS, PEM, JWKS URL), the admin key and its file, and `OWLAT_AUTH_ISSUERS`."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from owlat.config import Settings
from owlat.runtime.auth import (
    Authenticator,
    TrustedIssuer,
    generate_admin_key,
    load_or_create_admin_key,
    read_admin_key,
)
from owlat.runtime.errors import AuthenticationError, OperatorError
from tests.tokens import AUDIENCE, TokenIssuer


@pytest.fixture(scope="module")
def rs256() -> TokenIssuer:
    return TokenIssuer.generate("https://rs.test", "RS256")


@pytest.fixture(scope="module")
def eddsa() -> TokenIssuer:
    return TokenIssuer.generate("https://ed.test", "EdDSA")


def test_standard_and_custom_claims(rs256: TokenIssuer) -> None:
    authenticator = Authenticator([rs256.trusted()])
    custom: dict[str, Any] = {"https://ex.com/claims": {"team": {"id": 7}}, "$bad": 1, "n": 3}
    token = rs256.token(
        "u1",
        family_name="Lovelace",
        nickname="ada",
        preferred_username="ada.l",
        profile="https://ex.com/ada",
        email_verified="false",
        gender="f",
        birthdate="1815-12-10",
        zoneinfo="Europe/London",
        phone_number="+44",
        phone_number_verified=True,
        address="plain address",
        updated_at="2024-01-01T00:00:00Z",
        **custom,
    )
    assert authenticator.verify_user_token(token) == {
        "tokenIdentifier": "https://rs.test|u1",
        "subject": "u1",
        "issuer": "https://rs.test",
        "familyName": "Lovelace",
        "nickname": "ada",
        "preferredUsername": "ada.l",
        "profileUrl": "https://ex.com/ada",
        "emailVerified": False,
        "gender": "f",
        "birthday": "1815-12-10",
        "timezone": "Europe/London",
        "phoneNumber": "+44",
        "phoneNumberVerified": True,
        "address": "plain address",
        "updatedAt": "2024-01-01T00:00:00Z",
        "https://ex.com/claims.team.id": 7.0,
        "n": 3.0,
    }


async def test_every_failure_names_its_cause(rs256: TokenIssuer) -> None:
    authenticator = Authenticator([rs256.trusted()], clock_skew_seconds=0)
    cases = {
        rs256.token(expires_in=-1): "The token expired at ",
        rs256.token(omit=("sub",)): "required claim 'sub'",
        rs256.token(omit=("exp",)): "required claim 'exp'",
        rs256.token(omit=("iss",)): "required claim 'iss'",
        rs256.token(aud=["a", "b"]): "audience ['a', 'b'] does not include 'owlat-tests'",
        rs256.token(iat=2**40): "not valid yet",
        rs256.token(sub=12): "must be a string",
        jwt.encode({"iss": rs256.issuer}, "s" * 32, algorithm="HS256"): "'HS256'",
        "a.b.c": "Could not decode the token",
    }
    for token, message in cases.items():
        with pytest.raises(AuthenticationError) as raised:
            await authenticator.verify_user_token_async(token)
        assert message in raised.value.message, (message, raised.value.message)
        assert raised.value.code == "Unauthenticated"


def test_audience_is_optional_and_trailing_slashes_match(rs256: TokenIssuer) -> None:
    authenticator = Authenticator([rs256.trusted(issuer="https://rs.test/", audience=None)])
    identity = authenticator.verify_user_token(rs256.token(aud="anyone"))
    assert identity["issuer"] == "https://rs.test"  # as the token says


def test_kid_selects_the_key(rs256: TokenIssuer) -> None:
    other = TokenIssuer.generate(rs256.issuer, "RS256")
    other = TokenIssuer(other.issuer, "RS256", other.private_key, kid="second")
    jwks = {"keys": [rs256.public_jwk, other.public_jwk]}
    authenticator = Authenticator([rs256.trusted(jwks=jwks)])
    assert authenticator.verify_user_token(other.token("b"))["subject"] == "b"
    assert authenticator.verify_user_token(rs256.token("a"))["subject"] == "a"
    no_kid = jwt.encode(
        {"sub": "x", "iss": rs256.issuer, "aud": AUDIENCE, "iat": 0, "exp": 2**40},
        rs256.private_key,
        algorithm="RS256",
    )
    with pytest.raises(AuthenticationError, match="has no `kid` header"):
        authenticator.verify_user_token(no_kid)
    single = Authenticator([rs256.trusted()])  # one key: a token without kid may use it
    assert single.verify_user_token(no_kid)["subject"] == "x"


def test_pem_keys(rs256: TokenIssuer, eddsa: TokenIssuer) -> None:
    issuers = []
    for issuer in (rs256, eddsa, TokenIssuer.generate("https://es.test", "ES256")):
        pem = (
            issuer.private_key.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode()
        )
        issuers.append((issuer, issuer.trusted(jwks=None, public_key_pem=pem)))
    authenticator = Authenticator([trusted for _, trusted in issuers])
    for issuer, _ in issuers:
        assert authenticator.verify_user_token(issuer.token("p"))["issuer"] == issuer.issuer


def test_algorithms_are_enforced(rs256: TokenIssuer) -> None:
    authenticator = Authenticator([rs256.trusted(algorithms=("ES256",))])
    with pytest.raises(AuthenticationError, match="signed with 'RS256'"):
        authenticator.verify_user_token(rs256.token())


@pytest.fixture
def jwks_server(rs256: TokenIssuer) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A JWKS served over HTTP on loopback; the list is what it serves (mutable)."""
    keys: list[dict[str, Any]] = [rs256.public_jwk]
    hits: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(self.path)
            body = json.dumps({"keys": keys}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/jwks.json", keys
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
    assert hits, "the JWKS was never fetched"


async def test_jwks_url_is_fetched_cached_and_refetched_for_new_kids(
    rs256: TokenIssuer, jwks_server: tuple[str, list[dict[str, Any]]]
) -> None:
    url, served = jwks_server
    authenticator = Authenticator([rs256.trusted(jwks=None, jwks_url=url)])
    assert (await authenticator.verify_user_token_async(rs256.token("a")))["subject"] == "a"
    rotated = TokenIssuer(
        rs256.issuer, "RS256", TokenIssuer.generate("x", "RS256").private_key, "k2"
    )
    served.append(rotated.public_jwk)
    key_set = authenticator._key_sets[rs256.issuer]
    assert not key_set.needs_fetch(rs256.kid)
    assert not key_set.needs_fetch("k2")  # refetches are rate limited...
    key_set.refetch_interval = 0  # ...to once a minute; skip the wait
    assert authenticator.verify_user_token(rotated.token("b"))["subject"] == "b"
    down = Authenticator([rs256.trusted(jwks=None, jwks_url="http://127.0.0.1:9/nothing")])
    with pytest.raises(AuthenticationError, match="Could not fetch the signing keys"):
        await down.verify_user_token_async(rs256.token())


def test_trusted_issuer_configuration_is_checked() -> None:
    with pytest.raises(ValueError, match="exactly one of jwks, jwks_url and public_key_pem"):
        TrustedIssuer("https://x.test")
    with pytest.raises(ValueError, match="algorithms must be"):
        TrustedIssuer("https://x.test", jwks_url="https://x.test/jwks", algorithms=("HS256",))
    with pytest.raises(ValueError, match="unknown trusted-issuer fields"):
        TrustedIssuer.from_config({"issuer": "https://x.test", "domain": "x"})
    with pytest.raises(ValueError, match="`jwks_url` must be a str"):
        TrustedIssuer.from_config({"issuer": "https://x.test", "jwks_url": 3})
    trusted = TrustedIssuer("https://x.test", jwks_url="https://x.test/jwks")
    with pytest.raises(ValueError, match="configured twice"):
        Authenticator([trusted, trusted])


def test_settings_read_issuers_and_admin_key(monkeypatch: pytest.MonkeyPatch) -> None:
    issuers = [
        {"issuer": "https://a.test", "audience": "owlat", "jwks_url": "https://a.test/jwks"},
        {"issuer": "https://b.test", "public_key_pem": "...", "algorithms": ["EdDSA"]},
    ]
    monkeypatch.setenv("OWLAT_AUTH_ISSUERS", json.dumps(issuers))
    monkeypatch.setenv("OWLAT_ADMIN_KEY", "owlat-admin|shared")
    settings = Settings.from_env()
    assert [trusted.issuer for trusted in settings.auth_issuers] == [
        "https://a.test",
        "https://b.test",
    ]
    assert settings.auth_issuers[1].algorithms == ("EdDSA",)
    assert settings.admin_key == "owlat-admin|shared"
    monkeypatch.setenv("OWLAT_AUTH_ISSUERS", '{"issuer": "https://a.test"}')
    with pytest.raises(SystemExit, match="OWLAT_AUTH_ISSUERS is not valid: expected a JSON list"):
        Settings.from_env()


def test_admin_key_file(tmp_path: Path) -> None:
    assert read_admin_key(tmp_path) is None
    key = load_or_create_admin_key(tmp_path / "data")
    assert key.startswith("owlat-admin|") and len(key) == len("owlat-admin|") + 64
    assert (tmp_path / "data" / "admin_key").stat().st_mode & 0o777 == 0o600
    assert load_or_create_admin_key(tmp_path / "data") == key == read_admin_key(tmp_path / "data")
    assert generate_admin_key() != key
    authenticator = Authenticator(admin_key=key)
    assert authenticator.check_admin_key(key)
    assert not authenticator.check_admin_key(key[:-1] + "x")
    assert not Authenticator().check_admin_key("")
    (tmp_path / "admin_key").write_text("\n")
    with pytest.raises(OperatorError, match="is empty"):
        load_or_create_admin_key(tmp_path)
