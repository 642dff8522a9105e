"""Credentials on the HTTP API: user JWTs (RS256, ES256, EdDSA) become the identity
functions see; bad tokens are refused with 401, never run anonymously; the admin key
unlocks internal functions and acting as a user."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import RunningServer
from tests.tokens import TokenIssuer

pytestmark = pytest.mark.timeout(30)


async def whoami(client: httpx.AsyncClient, authorization: str | None, route: str = "query") -> Any:
    headers = {} if authorization is None else {"Authorization": authorization}
    path = "probes:whoami" if route == "query" else "probes:whoamiFromAction"
    return await client.post(f"/api/{route}", json={"path": path, "args": {}}, headers=headers)


def refused(response: httpx.Response) -> str:
    assert response.status_code == 401, response.text
    body = response.json()
    assert body["code"] == "Unauthenticated"
    message: str = body["message"]
    return message


async def test_identity_of_each_algorithm(client: httpx.AsyncClient, server: RunningServer) -> None:
    assert (await whoami(client, None)).json()["value"] is None
    issuers = server.issuers
    for issuer in (issuers.rs256, issuers.es256, issuers.eddsa):
        token = issuer.token("user-42")
        identity = (await whoami(client, f"Bearer {token}")).json()["value"]
        assert identity == {
            "tokenIdentifier": f"{issuer.issuer}|user-42",
            "subject": "user-42",
            "issuer": issuer.issuer,
        }, issuer.algorithm
    token = issuers.rs256.token("user-7")
    from_action = (await whoami(client, f"Bearer {token}", route="action")).json()["value"]
    assert from_action["subject"] == "user-7"


async def test_claims_become_the_identity(client: httpx.AsyncClient, server: RunningServer) -> None:
    token = server.issuers.es256.token(
        "user-1",
        name="Ada Lovelace",
        given_name="Ada",
        email="ada@example.com",
        email_verified=True,
        picture="https://example.com/ada.png",
        locale="en",
        address={"formatted": "1 Analytical St", "country": "UK"},
        updated_at=1_700_000_000,
        jti="drop-me",
        nbf=1,
        fva=[1, 2],
        org={"id": "org_1", "role": "admin"},
        roles=["editor"],
    )
    identity = (await whoami(client, f"Bearer {token}")).json()["value"]
    assert identity == {
        "tokenIdentifier": f"{server.issuers.es256.issuer}|user-1",
        "subject": "user-1",
        "issuer": server.issuers.es256.issuer,
        "name": "Ada Lovelace",
        "givenName": "Ada",
        "email": "ada@example.com",
        "emailVerified": True,
        "pictureUrl": "https://example.com/ada.png",
        "language": "en",
        "address": "1 Analytical St",
        "updatedAt": "2023-11-14T22:13:20+00:00",
        "org.id": "org_1",
        "org.role": "admin",
        "roles": ["editor"],
    }


async def test_invalid_tokens_are_refused(client: httpx.AsyncClient, server: RunningServer) -> None:
    rs256 = server.issuers.rs256
    expired = rs256.token(expires_in=-60)
    assert "expired" in refused(await whoami(client, f"Bearer {expired}"))
    impostor = TokenIssuer.generate(rs256.issuer, "RS256")  # same issuer and kid, other key
    forged = impostor.token()
    assert "signature is not valid" in refused(await whoami(client, f"Bearer {forged}"))
    stranger = TokenIssuer.generate("https://stranger.test", "ES256").token()
    assert "not trusted" in refused(await whoami(client, f"Bearer {stranger}"))
    wrong_audience = rs256.token(aud="someone-else")
    assert "audience" in refused(await whoami(client, f"Bearer {wrong_audience}"))
    no_iat = rs256.token(omit=("iat",))
    assert "required claim 'iat'" in refused(await whoami(client, f"Bearer {no_iat}"))
    unknown_kid = rs256.token(headers={"kid": "rotated-away"})
    assert "'rotated-away'" in refused(await whoami(client, f"Bearer {unknown_kid}"))
    assert "decode" in refused(await whoami(client, "Bearer not-a-jwt"))
    assert "must be `Bearer" in refused(await whoami(client, "Basic dXNlcjpwYXNz"))


async def test_admin_key(client: httpx.AsyncClient, server: RunningServer) -> None:
    admin = f"Convex {server.admin_key}"
    secret = {"path": "probes:secret", "args": {}}
    response = await client.post("/api/query", json=secret, headers={"Authorization": admin})
    assert response.json()["value"] == "for admins"
    assert (await whoami(client, admin)).json()["value"] is None
    acting: dict[str, Any] = {"subject": "acting-1", "issuer": "https://admin.test", "name": "Ada"}
    encoded = base64.b64encode(json.dumps(acting).encode()).decode()
    identity = (await whoami(client, f"{admin}:{encoded}")).json()["value"]
    assert identity == {"tokenIdentifier": "https://admin.test|acting-1", **acting}
    assert "not valid" in refused(await whoami(client, "Convex owlat-admin|nope"))
    assert "base64 JSON" in refused(await whoami(client, f"{admin}:%%%"))
