"""A real owlat.app server process made ready for REST traffic, as a user would: signed up
over /api/auth, an organization, API keys, a published transactional email. Used by the
crash test and by bench/bench_transactional.py."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from typing import Any

import httpx

RECEIPT = [{"id": "t", "type": "text", "content": {"html": "<p>Order {{orderId}}</p>"}}]


@dataclasses.dataclass
class Account:
    """A signed-in owner of one organization, calling functions with its JWT."""

    client_url: str
    token: str

    async def call(self, kind: str, path: str, args: dict[str, Any]) -> Any:
        async with httpx.AsyncClient(base_url=self.client_url, timeout=60) as http:
            reply = await http.post(
                f"/api/{kind}",
                json={"path": path, "args": args, "format": "json"},
                headers={"authorization": f"Bearer {self.token}"},
            )
        body = reply.json()
        assert body.get("status") == "success", (reply.status_code, body)
        return body["value"]


PASSWORD = "a-long-password"


async def sign_up(client_url: str, site_url: str, slug: str = "shop") -> Account:
    """A new user who owns a new organization `slug`."""
    async with httpx.AsyncClient(base_url=site_url, headers={"origin": site_url}) as browser:
        signed_up = await browser.post(
            "/api/auth/sign-up/email",
            json={"email": f"owner@{slug}.example.com", "password": PASSWORD, "name": "Owner"},
        )
        assert signed_up.status_code == 200, signed_up.text
        created = await browser.post(
            "/api/auth/organization/create", json={"name": slug.title(), "slug": slug}
        )
        assert created.status_code == 200, created.text
        token = (await browser.get("/api/auth/token")).json()["token"]
    return Account(client_url, token)


async def sign_in(client_url: str, site_url: str, slug: str = "shop") -> Account:
    """The owner of `sign_up` again (after a restart on other ports: Owlat's JWTs name the
    site URL as their issuer)."""
    async with httpx.AsyncClient(base_url=site_url, headers={"origin": site_url}) as browser:
        signed_in = await browser.post(
            "/api/auth/sign-in/email",
            json={"email": f"owner@{slug}.example.com", "password": PASSWORD},
        )
        assert signed_in.status_code == 200, signed_in.text
        active = await browser.post(
            "/api/auth/organization/set-active", json={"organizationSlug": slug}
        )
        assert active.status_code == 200, active.text
        token = (await browser.get("/api/auth/token")).json()["token"]
    return Account(client_url, token)


async def api_keys(account: Account, count: int) -> list[str]:
    """`count` API keys allowed to send transactional email (each has its own bucket of
    10 requests a second, burst 15)."""
    keys: list[str] = []
    for start in range(0, count, 20):  # a few connections at a time
        created = await asyncio.gather(
            *(
                account.call(
                    "mutation",
                    "apiKeys:create",
                    {"name": f"k{i}", "scopes": ["transactional:send"]},
                )
                for i in range(start, min(count, start + 20))
            )
        )
        keys.extend(key["apiKey"] for key in created)
    return keys


async def published_receipt(
    account: Account, slug: str = "receipt", blocks: list[dict[str, Any]] | None = None
) -> str:
    """A published transactional email `slug` ("Order {{orderId}}", then `blocks`); its id."""
    content = json.dumps([*RECEIPT, *(blocks or [])])
    email_id = await account.call(
        "mutation",
        "transactionalEmails:create",
        {"name": "Receipt", "slug": slug, "subject": "Order {{orderId}}", "content": content,
         "dataVariablesSchema": {"orderId": "string"}},
    )  # fmt: skip
    await account.call(
        "mutation", "transactionalEmails:publish", {"transactionalEmailId": email_id}
    )
    return str(email_id)


def request_body(index: int, slug: str = "receipt") -> dict[str, Any]:
    """The body of transactional request `index` (its own recipient and order)."""
    return {
        "slug": slug,
        "email": f"buyer{index:05d}@example.com",
        "dataVariables": {"orderId": f"A-{index:05d}"},
    }
