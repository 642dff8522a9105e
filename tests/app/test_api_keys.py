"""apiKeys:* and the API-key helper of REST HTTP actions (reference §3.1–3.2)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from owlat.app.lib.api_key_auth import ApiKeyCaller, authenticate_api_key
from owlat.runtime import ActionCtx, Auth, ConvexError
from owlat.runtime.application import Application
from owlat.runtime.testing import in_mutation, in_query
from tests.app.conftest import Caller, signed_in, with_organization


@pytest.fixture
async def owlat(owlat_on_both_engines: Application) -> Application:
    """These tests run on SQLite and PostgreSQL."""
    return owlat_on_both_engines


MISSING = "Missing or invalid Authorization header. Use: Authorization: Bearer <api_key>"


def _request(authorization: str | None) -> Request:
    headers = [] if authorization is None else [(b"authorization", authorization.encode())]
    return Request(
        {"type": "http", "method": "GET", "path": "/api/v1/contacts", "headers": headers}
    )


async def _auth(owlat: Application, authorization: str | None) -> ApiKeyCaller | Response:
    return await authenticate_api_key(ActionCtx(owlat, Auth(None)), _request(authorization))


def _body(response: Response) -> Any:
    import json

    return json.loads(bytes(response.body))


async def _admin(owlat: Application) -> tuple[Caller, str]:
    owner = await signed_in(owlat, "owner@example.com")
    return owner, await with_organization(owner, "acme")


async def test_create_list_revoke(owlat: Application) -> None:
    owner, organization_id = await _admin(owlat)
    created = await owner.mutation(
        "apiKeys:create", {"name": " CI ", "scopes": ["contacts:read", "contacts:read"]}
    )
    assert re.fullmatch(r"lm_live_[A-Za-z0-9]{32}", created["apiKey"])
    assert created["keyPrefix"] == created["apiKey"][:16] and created["name"] == "CI"
    (listed,) = await owner.query("apiKeys:listByTeam")
    assert listed["scopes"] == ["contacts:read"]
    assert created["apiKey"] not in str(listed) and "keyHash" not in listed
    assert listed["maskedKey"].startswith(created["keyPrefix"]) and listed["lastUsedAt"] is None

    caller = await _auth(owlat, f"Bearer {created['apiKey']}")
    assert caller == ApiKeyCaller(organization_id, created["keyId"], ("contacts:read",))
    (listed,) = await owner.query("apiKeys:listByTeam")
    assert listed["lastUsedAt"] is not None

    renamed = await owner.mutation(
        "apiKeys:updateName", {"keyId": created["keyId"], "name": "Deploy"}
    )
    assert renamed["name"] == "Deploy"
    revoked = await owner.mutation("apiKeys:revoke", {"keyId": created["keyId"]})
    assert revoked["isActive"] is False and revoked["revokedAt"] is not None
    with pytest.raises(ConvexError, match="^API key is already revoked$"):
        await owner.mutation("apiKeys:revoke", {"keyId": created["keyId"]})
    refused = await _auth(owlat, f"Bearer {created['apiKey']}")
    assert isinstance(refused, Response) and refused.status_code == 401
    assert _body(refused) == {
        "error": {"category": "unauthenticated", "message": "Invalid API key"}
    }


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"name": "K", "scopes": []}, "^An API key needs at least one scope$"),
        ({"name": "K", "scopes": ["contacts:read", "root"]}, "^Unknown scopes: root"),
        ({"name": "  ", "scopes": ["contacts:read"]}, "^Name must be 1 to 200 characters$"),
        (
            {"name": "K", "scopes": ["contacts:read"], "expiresAt": 1.0},
            "^expiresAt must be in the future$",
        ),
    ],
)
async def test_create_refusals(owlat: Application, args: dict[str, Any], message: str) -> None:
    owner, _ = await _admin(owlat)
    with pytest.raises(ConvexError, match=message):
        await owner.mutation("apiKeys:create", args)
    assert await owner.query("apiKeys:listByTeam") == []


async def test_editors_cannot_manage_keys(owlat: Application) -> None:
    owner, _ = await _admin(owlat)
    editor = await signed_in(owlat, "editor@example.com")
    invitation = await owner.mutation(
        "invitations:invite", {"email": editor.email, "role": "editor"}
    )
    await editor.mutation("invitations:accept", {"invitationId": invitation["_id"]})
    with pytest.raises(ConvexError, match="^Admin access required$"):
        await editor.mutation("apiKeys:create", {"name": "K", "scopes": ["contacts:read"]})
    with pytest.raises(ConvexError, match="^Admin access required$"):
        await editor.query("apiKeys:listByTeam")


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (None, MISSING),
        ("", MISSING),
        ("Basic abc def", MISSING),
        ("Bearer a b", MISSING),
        ("Bearer sk_live_" + "a" * 32, "Invalid API key format"),
        ("Bearer lm_live_short", "Invalid API key format"),
        ("Bearer lm_live_" + "a" * 31 + "!", "Invalid API key format"),
        ("Bearer lm_live_" + "a" * 32, "Invalid API key"),
        ("lm_live_" + "b" * 32, "Invalid API key"),
    ],
)
async def test_refusals_have_exact_bodies_and_no_rate_headers(
    owlat: Application, header: str | None, message: str
) -> None:
    response = await _auth(owlat, header)
    assert isinstance(response, Response) and response.status_code == 401
    assert _body(response) == {"error": {"category": "unauthenticated", "message": message}}
    assert not any(h.lower().startswith("x-ratelimit") for h in response.headers)


async def test_expired_key(owlat: Application) -> None:
    owner, _ = await _admin(owlat)
    import time

    created = await owner.mutation(
        "apiKeys:create",
        {"name": "K", "scopes": ["contacts:read"], "expiresAt": time.time() * 1000 + 60_000},
    )

    async def expire(ctx: Any) -> None:
        await ctx.db.patch(created["keyId"], {"expiresAt": 1.0})

    await in_mutation(owlat, expire)
    response = await _auth(owlat, "Bearer " + created["apiKey"])
    assert (
        isinstance(response, Response) and _body(response)["error"]["message"] == "Invalid API key"
    )


async def test_scopes_and_the_token_bucket(owlat: Application) -> None:
    owner, _ = await _admin(owlat)
    created = await owner.mutation("apiKeys:create", {"name": "K", "scopes": ["events:write"]})
    caller = await _auth(owlat, "Bearer " + created["apiKey"])
    assert isinstance(caller, ApiKeyCaller)
    forbidden = caller.require_scope("contacts:read")
    assert forbidden is not None and forbidden.status_code == 403
    assert _body(forbidden) == {
        "error": {
            "category": "forbidden",
            "message": "This API key is missing the required scope: contacts:read",
        }
    }
    assert forbidden.headers["x-ratelimit-limit"] == "10"
    assert caller.require_scope("events:write") is None
    answered = caller.respond(JSONResponse({"ok": True}))
    assert answered.headers["x-ratelimit-remaining"] == "9"
    results = [await _auth(owlat, "Bearer " + created["apiKey"]) for _ in range(16)]
    limited = [r for r in results if isinstance(r, Response)]
    assert limited, "a burst beyond the bucket's capacity (15) is refused"
    refusal = limited[0]
    assert refusal.status_code == 429
    assert _body(refusal) == {
        "error": {
            "category": "rate_limited",
            "message": "Rate limit exceeded. Maximum 10 requests per second.",
        }
    }
    assert refusal.headers["x-ratelimit-remaining"] == "0"
    assert int(refusal.headers["retry-after"]) >= 1
    assert int(refusal.headers["x-ratelimit-reset"]) > 0

    async def buckets(ctx: Any) -> int:
        return len(await ctx.db.query("rateLimits").collect())

    assert await in_query(owlat, buckets) == 1
