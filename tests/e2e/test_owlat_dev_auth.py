"""`owlat dev` serving owlat.app trusts Owlat as its own issuer: a JWT from /api/auth/token
on the site port authenticates calls on the client port, with no OWLAT_AUTH_ISSUERS."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from tests.e2e.processes import started_with_site


async def test_owlat_dev_issues_and_trusts_its_own_tokens(tmp_path: Path) -> None:
    # No configured issuer at all: Owlat's own tokens must still be trusted.
    process, url, site = await started_with_site(
        "dev", tmp_path, env={"OWLAT_APP": "owlat.app", "OWLAT_AUTH_ISSUERS": ""}
    )
    try:
        async with httpx.AsyncClient(base_url=site, headers={"origin": site}) as browser:
            signed_up = await browser.post(
                "/api/auth/sign-up/email",
                json={"email": "dev@example.com", "password": "dev-password", "name": "Dev"},
            )
            assert signed_up.status_code == 200, signed_up.text
            token = (await browser.get("/api/auth/token")).json()["token"]
            jwks = (await browser.get("/api/auth/jwks")).json()
        async with httpx.AsyncClient(base_url=url) as api:
            reply = await api.post(
                "/api/query",
                json={"path": "auth:getCurrentUser", "args": {}, "format": "json"},
                headers={"authorization": f"Bearer {token}"},
            )
        assert reply.json()["value"]["email"] == "dev@example.com", reply.text
        assert jwks["keys"][0]["crv"] == "Ed25519"
        assert (tmp_path / "auth_secret").exists()
        assert oct((tmp_path / "auth_signing_key.pem").stat().st_mode)[-3:] == "600"
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), 30)
