"""/api/auth on the site port: BetterAuth's shapes, cookies and errors; brute force,
enumeration, password reset and email verification through the outbox."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import httpx
import jwt
import pytest

from owlat.app.lib.signing_key import jwks
from owlat.runtime import QueryCtx
from owlat.runtime.testing import in_query
from tests.app.conftest import Site, mail_text, start_site


@pytest.fixture
async def site(site_on_both_engines: Site) -> Site:
    """These tests run on SQLite and PostgreSQL."""
    return site_on_both_engines


PASSWORD = "correct-horse-1"


async def _sign_up(browser: httpx.AsyncClient, email: str = "ann@example.com") -> dict:  # type: ignore[type-arg]
    response = await browser.post(
        "/sign-up/email", json={"email": email, "password": PASSWORD, "name": "Ann"}
    )
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def test_sign_up_sign_in_session_and_sign_out(site: Site) -> None:
    async with site.browser() as browser:
        body = await _sign_up(browser, " Ann@Example.com ")
        assert body["user"]["email"] == "ann@example.com"
        assert body["user"]["emailVerified"] is False
        cookie = browser.cookies.get("better-auth.session_token")
        assert cookie and cookie.startswith(body["token"] + ".")
        session = await browser.get("/get-session")
        assert session.headers["cache-control"] == "no-store"
        assert session.json()["session"]["token"] == body["token"]
        assert session.json()["session"]["activeOrganizationId"] is None
        claims = jwt.decode(
            session.headers["set-auth-jwt"],
            jwt.PyJWK(jwks(site.data_dir)["keys"][0]).key,
            algorithms=["EdDSA"],
            audience=site.site_url,
        )
        assert claims["sub"] == body["user"]["id"] and claims["iss"] == site.site_url
        assert claims["exp"] - claims["iat"] == 900
        assert claims["sid"] == session.json()["session"]["id"]
        assert (await browser.post("/sign-out", json={})).json() == {"success": True}
        assert (await browser.get("/get-session")).text == "null"
        assert (await browser.get("/token")).status_code == 401
        signed_in = await browser.post(
            "/sign-in/email", json={"email": "ANN@example.com", "password": PASSWORD}
        )
        assert signed_in.json()["redirect"] is False
        assert "Max-Age=604800" in signed_in.headers["set-cookie"]


async def test_signed_out_cookie_replayed_gets_null(site: Site) -> None:
    async with site.browser() as browser:
        await _sign_up(browser)
        stolen = dict(browser.cookies)
        await browser.post("/sign-out", json={})
    async with site.browser() as replay:
        replay.cookies.update(stolen)
        assert (await replay.get("/get-session")).text == "null"


async def test_tampered_cookie_is_ignored(site: Site) -> None:
    async with site.browser() as browser:
        body = await _sign_up(browser)
    async with site.browser() as forger:
        forger.cookies.set("better-auth.session_token", body["token"] + ".AAAA")
        assert (await forger.get("/get-session")).text == "null"
        forger.cookies.set("better-auth.session_token", body["token"])
        assert (await forger.get("/get-session")).text == "null"


async def test_no_enumeration(site: Site) -> None:
    async with site.browser() as browser:
        await _sign_up(browser)
    async with site.browser() as browser:
        wrong = await browser.post(
            "/sign-in/email", json={"email": "ann@example.com", "password": "x" * 12}
        )
        unknown = await browser.post(
            "/sign-in/email", json={"email": "zed@example.com", "password": "x" * 12}
        )
        assert wrong.status_code == unknown.status_code == 401
        assert (
            wrong.json()
            == unknown.json()
            == {
                "code": "INVALID_EMAIL_OR_PASSWORD",
                "message": "Invalid email or password",
            }
        )
        reset_known = await browser.post(
            "/request-password-reset", json={"email": "ann@example.com"}
        )
        reset_unknown = await browser.post(
            "/request-password-reset", json={"email": "zed@example.com"}
        )
        assert reset_known.json() == reset_unknown.json()
    assert [m["Subject"] for m in site.outbox()] == ["Reset your password"]


def _shape(response: httpx.Response) -> tuple[object, ...]:
    """What a sign-up answer shows besides its values: status, body and user keys, the
    cookies it sets (names and attributes, not values)."""
    body = response.json()
    cookies = sorted(
        (line.split("=", 1)[0], line.split(";", 1)[1])
        for line in response.headers.get_list("set-cookie")
    )
    return response.status_code, sorted(body), sorted(body["user"]), cookies


async def _user_count(site: Site) -> int:
    async def users(ctx: QueryCtx) -> int:
        return len(await ctx.db.query("users").collect())

    return int(await in_query(site.application, users))


async def test_sign_up_with_a_taken_address_answers_as_a_new_one(site: Site) -> None:
    async with site.browser() as browser:
        ann = await _sign_up(browser)
    async with site.browser() as newcomer, site.browser() as eve:
        fresh = await newcomer.post(
            "/sign-up/email", json={"email": "bob@example.com", "password": PASSWORD, "name": "Bob"}
        )
        again = await eve.post(
            "/sign-up/email",
            json={"email": " ANN@example.com", "password": "other-password", "name": " Eve "},
        )
        assert _shape(again) == _shape(fresh)
        assert set(again.headers) == set(fresh.headers)
        token, user = again.json()["token"], again.json()["user"]
        assert len(token) == len(fresh.json()["token"])
        assert {k: user[k] for k in ("name", "email", "emailVerified", "image")} == {
            "name": "Eve",
            "email": "ann@example.com",
            "emailVerified": False,
            "image": None,
        }
        # nothing of Ann's: a fresh id of the users table, this moment's timestamps
        assert user["id"] != ann["user"]["id"]
        assert site.application.catalog.table_name_of_id(user["id"]) == "users"
        assert user["createdAt"] > ann["user"]["createdAt"]
        assert user["createdAt"] == user["updatedAt"]
        # the cookie signs nobody in, and Ann's account is as it was
        assert (await eve.get("/get-session")).text == "null"
        assert (await newcomer.get("/get-session")).json()["user"]["email"] == "bob@example.com"
    assert await _user_count(site) == 2
    async with site.browser() as browser:
        signed_in = await browser.post(
            "/sign-in/email", json={"email": "ann@example.com", "password": PASSWORD}
        )
        assert signed_in.json()["user"]["name"] == "Ann"
    (notice,) = site.outbox()
    assert notice["To"] == "ann@example.com"
    assert notice["Subject"] == "Someone tried to sign up with your address"


async def test_sign_up_notices_to_the_owner_are_limited(site: Site) -> None:
    async with site.browser() as browser:
        await _sign_up(browser)
        for _ in range(5):
            await _sign_up(browser)
    assert len(site.outbox()) == 3


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"email": "a@example.com", "password": "short", "name": "A"}, 400, "PASSWORD_TOO_SHORT"),
        ({"email": "a@example.com", "password": "x" * 129, "name": "A"}, 400, "PASSWORD_TOO_LONG"),
        (
            {"email": "a@example.com", "password": "\0" * 10, "name": "A"},
            400,
            "PASSWORD_INVALID_CHARACTERS",
        ),
        ({"email": "a@example.com", "password": "a" * 10, "name": "A"}, 400, "PASSWORD_TOO_COMMON"),
        (
            {"email": "jo.smith@example.com", "password": "Jo.Smith-1", "name": "A"},
            400,
            "PASSWORD_TOO_SIMILAR_TO_EMAIL",
        ),
        ({"email": "not-an-email", "password": PASSWORD, "name": "A"}, 400, "INVALID_EMAIL"),
        ({"email": "a@example.com", "password": PASSWORD, "name": " "}, 400, "INVALID_NAME"),
        ({"email": "a@example.com", "password": PASSWORD}, 400, "BAD_REQUEST"),
        ({"email": 5, "password": PASSWORD, "name": "A"}, 400, "BAD_REQUEST"),
    ],
)
async def test_sign_up_refusals_create_nothing(
    site: Site, body: dict, status: int, code: str
) -> None:  # type: ignore[type-arg]
    async with site.browser() as browser:
        response = await browser.post("/sign-up/email", json=body)
        assert (response.status_code, response.json()["code"]) == (status, code)
        assert set(response.json()) == {"code", "message"}

    async def users(ctx: QueryCtx) -> int:
        return len(await ctx.db.query("users").collect())

    assert await in_query(site.application, users) == 0


async def test_bad_json_body(site: Site) -> None:
    async with site.browser() as browser:
        response = await browser.post(
            "/sign-in/email", content=b"{nope", headers={"content-type": "application/json"}
        )
        assert response.status_code == 400
        assert response.json() == {"code": "BAD_REQUEST", "message": "Invalid JSON body"}


async def test_origin_check(site: Site) -> None:
    async with site.browser() as browser:
        await _sign_up(browser)
        bad = await browser.post("/sign-out", json={}, headers={"origin": "https://evil.test"})
        assert (bad.status_code, bad.json()["code"]) == (403, "INVALID_ORIGIN")
        browser.headers.pop("origin")
        missing = await browser.post("/sign-out", json={})
        assert (missing.status_code, missing.json()["code"]) == (403, "MISSING_OR_NULL_ORIGIN")
        browser.headers["origin"] = site.site_url
        assert (await browser.get("/get-session")).json() is not None  # nothing was revoked


async def _sign_in_from(
    browser: httpx.AsyncClient, address: str, password: str, email: str = "ann@example.com"
) -> httpx.Response:
    """A sign-in as if from `address` (uvicorn trusts X-Forwarded-For from 127.0.0.1)."""
    return await browser.post(
        "/sign-in/email",
        json={"email": email, "password": password},
        headers={"x-forwarded-for": address},
    )


async def test_strangers_cannot_lock_the_owner_out(site: Site) -> None:
    """Defaults: 5 failures per (account, address); 20 per account slow it down."""
    async with site.browser() as owner, site.browser() as attacker, site.browser() as stranger:
        await _sign_up(owner)  # this device signed in: it is known to Ann's account
        for address in ("198.51.100.1", "198.51.100.2", "198.51.100.3", "198.51.100.4"):
            for _ in range(5):
                assert (await _sign_in_from(attacker, address, "x" * 12)).status_code == 401
        # each attacking address is stopped for Ann's account only
        locked = await _sign_in_from(attacker, "198.51.100.1", PASSWORD)
        assert locked.status_code == 429
        assert locked.json() == {
            "code": "TOO_MANY_REQUESTS",
            "message": "Too many requests. Please try again later.",
        }
        assert 800 < int(locked.headers["x-retry-after"]) <= 900
        other = await _sign_in_from(attacker, "198.51.100.1", "x" * 12, "zed@example.com")
        assert other.status_code == 401
        # 20 failures: the account is slowed for unknown devices, one attempt per 10 s
        first = await _sign_in_from(attacker, "198.51.100.5", "x" * 12)
        assert first.status_code == 401
        slowed = await _sign_in_from(stranger, "203.0.113.9", PASSWORD)
        assert slowed.status_code == 429
        assert 0 < int(slowed.headers["x-retry-after"]) <= 10
        # the owner's known device, from anywhere, is not slowed and never locked
        for address in ("203.0.113.7", "192.0.2.1"):
            signed_in = await _sign_in_from(owner, address, PASSWORD)
            assert signed_in.status_code == 200, signed_in.text


async def test_a_slowed_account_lets_one_attempt_through_per_interval(
    tmp_path: Path, database_url: str
) -> None:
    # 3 s: the attempts before the slowed one must fit in the interval even on a busy machine
    limits = {"sign_in_failures_per_account": 2, "sign_in_slow_seconds": 3}
    async with (
        start_site(tmp_path, database_url=database_url, **limits) as site,
        site.browser() as owner,
        site.browser() as stranger,
    ):
        await _sign_up(owner)
        for address in ("198.51.100.1", "198.51.100.2"):
            await _sign_in_from(stranger, address, "x" * 12)
        assert (await _sign_in_from(stranger, "203.0.113.9", "x" * 12)).status_code == 401
        slowed = await _sign_in_from(stranger, "203.0.113.9", PASSWORD)
        assert (slowed.status_code, slowed.headers.get("x-retry-after")) == (429, "3")
        await asyncio.sleep(3.05)
        assert (await _sign_in_from(stranger, "203.0.113.9", PASSWORD)).status_code == 200


async def test_sign_in_attempts_per_address(tmp_path: Path, database_url: str) -> None:
    async with (
        start_site(tmp_path, database_url=database_url, sign_in_attempts_per_ip=3) as site,
        site.browser() as browser,
    ):
        for email in ("a@example.com", "b@example.com", "c@example.com"):
            wrong = await _sign_in_from(browser, "198.51.100.1", "x" * 12, email)
            assert wrong.status_code == 401
        by_ip = await _sign_in_from(browser, "198.51.100.1", "x" * 12, "d@example.com")
        assert by_ip.status_code == 429  # the 4th attempt from this address
        assert (await _sign_in_from(browser, "198.51.100.2", "x" * 12)).status_code == 401


async def test_a_crafted_email_cannot_count_against_another_address(site: Site) -> None:
    """Rate-limit keys are built from normalized emails, which hold no `:`."""
    async with site.browser() as owner, site.browser() as attacker:
        await _sign_up(owner)
        for _ in range(6):
            crafted = "ann@example.com:ip:203.0.113.7"
            await _sign_in_from(attacker, "198.51.100.1", "x" * 12, crafted)
        assert (await _sign_in_from(owner, "203.0.113.7", PASSWORD)).status_code == 200


async def test_password_reset_through_the_outbox(site: Site) -> None:
    async with site.browser() as browser:
        await _sign_up(browser)
        await browser.post("/request-password-reset", json={"email": "ann@example.com"})
        (mail,) = site.outbox()
        token = re.search(r"reset-password\?token=(\w+)", mail_text(mail)).group(1)  # type: ignore[union-attr]
        short = await browser.post("/reset-password", json={"token": token, "newPassword": "short"})
        assert short.json()["code"] == "PASSWORD_TOO_SHORT"
        like_email = await browser.post(
            "/reset-password", json={"token": token, "newPassword": "ann@example.com"}
        )
        assert like_email.json()["code"] == "PASSWORD_TOO_SIMILAR_TO_EMAIL"
        done = await browser.post(
            "/reset-password", json={"token": token, "newPassword": "brand-new-pass"}
        )
        assert done.json() == {"status": True}
        reused = await browser.post(
            "/reset-password", json={"token": token, "newPassword": "brand-new-pass"}
        )
        assert (reused.status_code, reused.json()["code"]) == (400, "INVALID_TOKEN")
        assert (await browser.get("/get-session")).text == "null"  # sessions revoked
        old = await browser.post(
            "/sign-in/email", json={"email": "ann@example.com", "password": PASSWORD}
        )
        assert old.status_code == 401
        new = await browser.post(
            "/sign-in/email", json={"email": "ann@example.com", "password": "brand-new-pass"}
        )
        assert new.status_code == 200


async def test_email_verification(site: Site) -> None:
    async with site.browser() as browser:
        await _sign_up(browser)
        assert (
            await browser.post("/send-verification-email", json={"email": "ann@example.com"})
        ).json() == {"status": True}
        (mail,) = site.outbox()
        token = re.search(r"verify-email\?token=(\w+)", mail_text(mail)).group(1)  # type: ignore[union-attr]
        assert (await browser.get("/verify-email", params={"token": "wrong"})).json()[
            "code"
        ] == "INVALID_TOKEN"
        assert (await browser.get("/verify-email", params={"token": token})).json()[
            "status"
        ] is True
        assert (await browser.get("/get-session")).json()["user"]["emailVerified"] is True


async def test_require_email_verification(tmp_path: Path, database_url: str) -> None:
    async with (
        start_site(tmp_path, database_url=database_url, require_email_verification=True) as site,
        site.browser() as browser,
    ):
        body = await _sign_up(browser)
        assert body["token"] is None and "better-auth.session_token" not in browser.cookies
        refused = await browser.post(
            "/sign-in/email", json={"email": "ann@example.com", "password": PASSWORD}
        )
        assert (refused.status_code, refused.json()["code"]) == (403, "EMAIL_NOT_VERIFIED")
        # a taken address answers as a new one: token null, no cookie, a decoy user
        fresh = await browser.post(
            "/sign-up/email", json={"email": "bob@example.com", "password": PASSWORD, "name": "Bob"}
        )
        again = await browser.post(
            "/sign-up/email", json={"email": "ann@example.com", "password": PASSWORD, "name": "Ann"}
        )
        assert _shape(again) == _shape(fresh)
        assert again.json()["token"] is None and "set-cookie" not in again.headers
        assert again.json()["user"]["id"] != body["user"]["id"]
        assert again.json()["user"]["createdAt"] != body["user"]["createdAt"]
    assert [(m["To"], m["Subject"]) for m in site.outbox()] == [
        ("ann@example.com", "Verify your email address"),
        ("ann@example.com", "Verify your email address"),
        ("bob@example.com", "Verify your email address"),
        ("ann@example.com", "Someone tried to sign up with your address"),
    ]


async def test_change_password_and_sessions(site: Site) -> None:
    async with site.browser() as first, site.browser() as second:
        await _sign_up(first)
        await second.post("/sign-in/email", json={"email": "ann@example.com", "password": PASSWORD})
        sessions = (await first.get("/list-sessions")).json()
        assert len(sessions) == 2
        wrong = await first.post(
            "/change-password",
            json={"currentPassword": "not-it-at-all", "newPassword": "another-pass-1"},
        )
        assert (wrong.status_code, wrong.json()["code"]) == (400, "INVALID_PASSWORD")
        common = await first.post(
            "/change-password", json={"currentPassword": PASSWORD, "newPassword": "1234567890"}
        )
        assert (common.status_code, common.json()["code"]) == (400, "PASSWORD_TOO_COMMON")
        changed = await first.post(
            "/change-password",
            json={
                "currentPassword": PASSWORD,
                "newPassword": "another-pass-1",
                "revokeOtherSessions": True,
            },
        )
        assert changed.status_code == 200
        assert (await second.get("/get-session")).text == "null"
        assert len((await first.get("/list-sessions")).json()) == 1
        await second.post(
            "/sign-in/email", json={"email": "ann@example.com", "password": "another-pass-1"}
        )
        other = [
            s
            for s in (await first.get("/list-sessions")).json()
            if s["token"] != first.cookies["better-auth.session_token"].split(".")[0]
        ]
        assert (await first.post("/revoke-session", json={"token": other[0]["token"]})).json() == {
            "status": True
        }
        assert (await second.get("/get-session")).text == "null"
        assert (await first.get("/get-session")).json() is not None


async def test_jwt_stops_working_when_its_session_is_revoked(site: Site) -> None:
    async with site.browser() as browser, httpx.AsyncClient(base_url=site.url) as api:
        await _sign_up(browser)
        token = (await browser.get("/token")).json()["token"]
        call = {"path": "auth:getCurrentUser", "args": {}, "format": "json"}
        headers = {"authorization": f"Bearer {token}"}
        ok = (await api.post("/api/query", json=call, headers=headers)).json()
        assert ok["value"]["email"] == "ann@example.com"
        await browser.post("/revoke-sessions", json={})
        refused = (await api.post("/api/query", json=call, headers=headers)).json()
        assert refused["status"] == "error" and refused["errorData"] == "Not authenticated"


async def test_jwks_and_preflight(site: Site) -> None:
    async with site.browser() as browser:
        keys = (await browser.get("/jwks")).json()["keys"]
        assert [set(k) for k in keys] == [{"kty", "crv", "alg", "x", "kid"}]
        preflight = await browser.options("/sign-in/email")
        assert preflight.status_code == 204
        assert preflight.headers["access-control-allow-origin"] == site.site_url
        other = await browser.options("/sign-in/email", headers={"origin": "https://evil.test"})
        assert "access-control-allow-origin" not in other.headers


async def _users(site: Site) -> int:
    async def count(ctx: QueryCtx) -> int:
        return len(await ctx.db.query("users").collect())

    return await in_query(site.application, count)


@pytest.mark.parametrize(
    "target", ["//evil.example/phish", "/\\evil.example", "https://evil.example", "/%2F%2Fevil"]
)
async def test_foreign_callback_urls_are_refused_everywhere(site: Site, target: str) -> None:
    """No endpoint mails or redirects to a foreign URL: each refuses it with 400 and
    changes nothing (no user, no mail, the verification token still unused)."""
    refusal = {
        "code": "INVALID_CALLBACK_URL",
        "message": "Invalid callbackURL: give a path on this site (/...) or a URL on a "
        "trusted origin",
    }
    async with site.browser() as browser:
        signed_up = await browser.post(
            "/sign-up/email",
            json={
                "email": "ann@example.com",
                "password": PASSWORD,
                "name": "A",
                "callbackURL": target,
            },
        )
        assert (signed_up.status_code, signed_up.json()) == (400, refusal)
        assert await _users(site) == 0
        await _sign_up(browser)
        signed_in = await browser.post(
            "/sign-in/email",
            json={"email": "ann@example.com", "password": PASSWORD, "callbackURL": target},
        )
        assert (signed_in.status_code, signed_in.json()) == (400, refusal)
        mailed = await browser.post(
            "/send-verification-email", json={"email": "ann@example.com", "callbackURL": target}
        )
        assert (mailed.status_code, mailed.json()) == (400, refusal)
        reset = await browser.post(
            "/request-password-reset", json={"email": "ann@example.com", "redirectTo": target}
        )
        assert (reset.status_code, reset.json()["code"]) == (400, "INVALID_REDIRECT_URL")
        assert site.outbox() == []
        await browser.post("/send-verification-email", json={"email": "ann@example.com"})
        (mail,) = site.outbox()
        token = re.search(r"verify-email\?token=(\w+)", mail_text(mail)).group(1)  # type: ignore[union-attr]
        crafted = await browser.get("/verify-email", params={"token": token, "callbackURL": target})
        assert (crafted.status_code, crafted.json()) == (400, refusal)
        assert (await browser.get("/get-session")).json()["user"]["emailVerified"] is False
        assert (await browser.get("/verify-email", params={"token": token})).status_code == 200


async def test_callback_urls_lead_to_the_web_app_or_a_trusted_origin(
    tmp_path: Path, database_url: str
) -> None:
    """A path leads to the web app (OWLAT_APP_URL), an absolute URL only to a trusted
    origin; the verification link redirects there, the reset link goes there."""
    options = {"app_url": "https://app.example.com", "trusted_origins": ("https://partner.test",)}
    async with start_site(tmp_path, database_url=database_url, **options) as site:
        for email, callback, location in (
            ("ann@example.com", "/dashboard?x=1", "https://app.example.com/dashboard?x=1"),
            ("bob@example.com", "https://partner.test/welcome", "https://partner.test/welcome"),
        ):
            async with site.browser() as browser:
                await _sign_up(browser, email)
                await browser.post(
                    "/send-verification-email", json={"email": email, "callbackURL": callback}
                )
                text = mail_text(site.outbox()[-1])
                link = re.search(r"http\S*/verify-email\?\S+", text).group(0)  # type: ignore[union-attr]
                followed = await browser.get(link)
                assert (followed.status_code, followed.headers["location"]) == (302, location)
                assert (await browser.get("/get-session")).json()["user"]["emailVerified"]
        async with site.browser() as browser:
            await browser.post(
                "/request-password-reset",
                json={"email": "ann@example.com", "redirectTo": "/reset#form"},
            )
        assert re.search(
            r"https://app\.example\.com/reset\?token=\w+#form", mail_text(site.outbox()[-1])
        )
