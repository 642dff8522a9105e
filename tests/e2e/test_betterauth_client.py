"""Owlat's auth driven by real clients and real processes, from a fresh start (the issue's
"done means"): `owlat admin create` makes a platform admin, `owlat dev` serves → BetterAuth's
own npm client (better-auth 1.7.25 with the organization and JWT plugins) signs up a second
user, the admin creates an organization and invites them, the invitation is accepted
through the outbox link (whose token verifies the unverified address; without it the
invitation is out of reach) → the PyPI `convex` client, authenticated with the user's JWT,
calls a session-scoped function and gets that organization; after sign-out, the admin's
JWT stops working."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.npm_packages import installed
from tests.e2e.processes import ENV, ROOT, started_with_site

JS_DIR = Path(__file__).parent / "js-auth"
PY_CLIENT = Path(__file__).parent / "clients" / "convex_owlat_client.py"


@pytest.fixture(scope="module")
def better_auth_dir() -> Path:
    return installed(JS_DIR, "better-auth")


async def _run(*command: str, cwd: Path = ROOT) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        *command,
        cwd=cwd,
        env={**ENV, "OWLAT_APP": "owlat.app"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


@contextlib.asynccontextmanager
async def _owlat_dev(data_dir: Path) -> AsyncIterator[tuple[str, str]]:
    """`owlat dev` serving owlat.app on free ports: (client URL, site URL)."""
    process, url, site = await started_with_site("dev", data_dir, env={"OWLAT_APP": "owlat.app"})
    try:
        yield url, site
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), 30)


async def _convex_client(url: str, token: str) -> dict[str, Any]:
    code, stdout, stderr = await _run(sys.executable, str(PY_CLIENT), url, token)
    assert code == 0, stderr
    result: dict[str, Any] = json.loads(stdout)
    return result


@pytest.mark.timeout(240)
async def test_done_means_flow(tmp_path: Path, better_auth_dir: Path) -> None:
    code, stdout, stderr = await _run(
        sys.executable, "-m", "owlat.cli", "admin", "create", "--data-dir", str(tmp_path),
        "--email", "Admin@Example.com", "--name", "Admin", "--password", "admin-password",
    )  # fmt: skip
    assert code == 0, stderr
    assert "Platform admin admin@example.com" in stdout

    async with _owlat_dev(tmp_path) as (url, site_url):
        code, stdout, stderr = await _run(
            "node", "flow.mjs", site_url, str(tmp_path / "outbox"),
            "admin@example.com", "admin-password",
            cwd=better_auth_dir,
        )  # fmt: skip
        assert code == 0, stderr
        out = json.loads(stdout)

        # no enumeration: wrong password and unknown email answer the same
        refusal = {"code": "INVALID_EMAIL_OR_PASSWORD", "message": "Invalid email or password"}
        for step in ("wrongPassword", "unknownEmail"):
            assert out[step]["data"] is None
            assert {k: out[step]["error"][k] for k in ("code", "message")} == refusal
            assert out[step]["error"]["status"] == 401
        assert out["noSession"] == {"data": None, "error": None}
        assert out["noToken"]["error"]["code"] == "UNAUTHORIZED"
        assert out["noToken"]["error"]["status"] == 401

        assert out["adminSignIn"]["data"]["redirect"] is False
        assert out["adminSignIn"]["data"]["user"]["email"] == "admin@example.com"
        assert out["adminSession"]["data"]["user"]["emailVerified"] is True
        assert out["headerJwt"].count(".") == 2

        organization = out["created"]["data"]
        assert organization["slug"] == "acme-mail"
        assert organization["members"][0]["role"] == "owner"
        assert out["duplicate"]["error"]["code"] == "ORGANIZATION_ALREADY_EXISTS"
        assert out["tooShort"]["error"]["code"] == "PASSWORD_TOO_SHORT"
        assert out["signUp"]["data"]["user"]["email"] == "second@example.com"
        assert out["signUp"]["data"]["token"]
        taken = out["takenSignUp"]["data"]
        assert taken["token"] and taken["user"]["name"] == "Eve"
        assert taken["user"]["id"] != out["signUp"]["data"]["user"]["id"]
        assert out["takenSession"] == {"data": None, "error": None}
        assert out["tooCommon"]["error"]["code"] == "PASSWORD_TOO_COMMON"

        assert out["invited"]["data"]["role"] == "editor"
        assert out["invitationId"] == out["invited"]["data"]["id"], out.get("outboxSeen")
        verification = "EMAIL_VERIFICATION_REQUIRED"
        for step, status, code in (
            ("unverifiedList", 403, f"{verification}_FOR_INVITATION"),
            ("unverifiedAccept", 403, f"{verification}_BEFORE_ACCEPTING_OR_REJECTING_INVITATION"),
            ("phishingCallback", 400, "INVALID_CALLBACK_URL"),
        ):
            assert out[step]["data"] is None
            assert (out[step]["error"]["status"], out[step]["error"]["code"]) == (status, code)
        assert out["invitation"]["data"]["organizationName"] == "Acme Mail"
        accepted = out["accepted"]["data"]
        assert accepted["invitation"]["status"] == "accepted"
        assert accepted["member"]["role"] == "editor"
        assert [o["id"] for o in out["userOrganizations"]["data"]] == [organization["id"]]
        full = out["full"]["data"]
        assert sorted(m["user"]["email"] for m in full["members"]) == [
            "admin@example.com",
            "second@example.com",
        ]
        session = out["userSession"]["data"]["session"]
        assert session["activeOrganizationId"] == organization["id"]
        assert out["jwks"]["data"]["keys"][0]["kty"] == "OKP"
        assert "d" not in out["jwks"]["data"]["keys"][0]  # public parts only
        assert out["adminSignOut"]["data"] == {"success": True}
        assert out["afterSignOut"] == {"data": None, "error": None}

        # the PyPI convex client with the user's JWT: the right organization and role
        active = await _convex_client(url, out["token"]["data"]["token"])
        assert active["value"]["_id"] == organization["id"]
        assert active["value"]["name"] == "Acme Mail"
        assert active["value"]["role"] == "editor"

        # the admin signed out: its (unexpired) JWT no longer authenticates
        revoked = await _convex_client(url, out["headerJwt"])
        assert revoked == {"convexError": "Not authenticated", "data": "Not authenticated"}
