"""Forms (reference §2.5, §7.7): management for admins with precise refusals, and
`POST /forms/<id>` through the real server: contacts and list subscriptions, duplicates,
the honeypot, field checks, value limits, double opt-in, the redirect (only the configured
URL), per-IP limits."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from owlat.runtime import ConvexError
from tests.app.conftest import Caller, Site, owner_and_editor


@pytest.fixture
async def site(site_on_both_engines: Site) -> Site:
    return site_on_both_engines


@pytest.fixture
async def team(site: Site) -> tuple[Caller, Caller, str]:
    return await owner_and_editor(site.application)


FIELDS = [
    {"key": "email", "label": "Email", "type": "email", "required": True},
    {"key": "first_name", "label": "First name", "type": "text", "required": False},
    {"key": "terms", "label": "Terms", "type": "checkbox", "required": True},
]


async def _post(site: Site, form_id: str, **kwargs: Any) -> httpx.Response:
    async with httpx.AsyncClient(base_url=site.site_url) as http:
        return await http.post(f"/forms/{form_id}", **kwargs)


async def _submissions(owner: Caller, form_id: str) -> list[dict[str, Any]]:
    page = await owner.query(
        "formEndpoints:getSubmissions",
        {"formId": form_id, "paginationOpts": {"numItems": 100, "cursor": None}},
    )
    return list(reversed(page["page"]))


async def test_management_is_for_admins_and_checked(team: tuple[Caller, Caller, str]) -> None:
    owner, editor, _ = team
    with pytest.raises(ConvexError, match="^Admin access required$"):
        await editor.mutation("formEndpoints:create", {"name": "Sign-up"})
    cases = [
        ({"fields": [{**FIELDS[1]}]}, "A form needs exactly one email field"),
        ({"redirectUrl": "javascript:alert(1)"}, "redirectUrl must be an http(s) URL"),
        ({"redirectUrl": "https://user:pw@example.com/"}, "redirectUrl must be an http(s) URL"),
        ({"doubleOptIn": True}, "Double opt-in needs a mailing list"),
        ({"listId": "nope"}, "Mailing list not found"),
        ({"honeypotFieldName": "email"}, "The honeypot field must not be a form field"),
    ]
    for args, message in cases:
        with pytest.raises(ConvexError) as refused:
            await owner.mutation("formEndpoints:create", {"name": "Sign-up", **args})
        assert str(refused.value).startswith(message), (args, str(refused.value))
    form_id = await owner.mutation("formEndpoints:create", {"name": "Sign-up"})
    (form,) = await owner.query("formEndpoints:list")
    assert (form["_id"], form["fields"], form["honeypotFieldName"]) == (
        form_id, [{"key": "email", "label": "Email", "type": "email", "required": True}],
        "_hp_field",
    )  # fmt: skip
    await owner.mutation("formEndpoints:remove", {"formId": form_id})
    assert await owner.query("formEndpoints:list") == []


async def test_submissions_create_subscribe_and_are_logged(
    site: Site, team: tuple[Caller, Caller, str]
) -> None:
    owner, _, _ = team
    list_id = await owner.mutation(
        "mailingLists:create", {"name": "News", "requireDoubleOptIn": False}
    )
    form_id = await owner.mutation(
        "formEndpoints:create", {"name": "Sign-up", "fields": FIELDS, "listId": list_id}
    )
    body = {"email": " Ann@Example.com ", "first_name": "Ann", "terms": True, "extra": "x" * 20_000}
    answer = await _post(site, form_id, json=body)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"ok": True, "data": {"message": "Form submitted successfully"}}
    assert answer.headers["access-control-allow-origin"] == "*"
    again = await _post(site, form_id, data={"email": "ann@example.com", "terms": "on"})
    assert again.status_code == 200
    spam = await _post(
        site, form_id, data={"email": "bot@example.com", "terms": "on", "_hp_field": "x"}
    )
    assert spam.status_code == 200
    bad = await _post(site, form_id, json={"email": "not-an-email"})
    assert bad.status_code == 400
    assert bad.json()["error"]["message"] == (
        "Email must be a valid email address; Terms is required"
    )
    contacts = await owner.query(
        "contacts:listFromSession", {"paginationOpts": {"numItems": 10, "cursor": None}}
    )
    (contact,) = [c for c in contacts["page"] if c["email"] != owner.email]
    assert (contact["email"], contact["firstName"], contact["source"]) == (
        "ann@example.com", "Ann", "form"
    )  # fmt: skip
    assert contact["mailingListIds"] == [list_id]
    logged = await _submissions(owner, form_id)
    assert [s["status"] for s in logged] == ["success", "duplicate", "spam", "invalid"]
    assert len(logged[0]["data"]["extra"]) == 10_000
    assert logged[0]["contactId"] == contact["_id"] and logged[0]["ipAddress"] == "127.0.0.1"
    (form,) = await owner.query("formEndpoints:list")
    assert (form["submissionCount"], form["successfulSubmissionCount"]) == (4, 1)


async def test_unknown_inactive_and_unsupported_bodies(
    site: Site, team: tuple[Caller, Caller, str]
) -> None:
    owner, _, _ = team
    form_id = await owner.mutation("formEndpoints:create", {"name": "Off", "isActive": False})
    inactive = await _post(site, form_id, json={"email": "a@example.com"})
    assert (inactive.status_code, inactive.json()["error"]["data"]["reason"]) == (
        403, "form_inactive"
    )  # fmt: skip
    missing = await _post(site, "nope", json={"email": "a@example.com"})
    assert missing.status_code == 404
    multipart = await _post(site, form_id, files={"email": (None, "a@example.com")})
    assert multipart.status_code == 415
    await owner.mutation("formEndpoints:update", {"formId": form_id, "isActive": True})
    many = await _post(site, form_id, json={f"k{n}": "x" for n in range(51)})
    assert many.json()["error"]["message"] == "At most 50 fields of ≤ 64 characters"
    huge = await _post(
        site,
        form_id,
        content=b"email=" + b"a" * 200_000,
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert (huge.status_code, huge.json()["error"]["message"]) == (400, "Request body too large")
    async with httpx.AsyncClient(base_url=site.site_url) as http:
        assert (await http.get(f"/forms/{form_id}")).status_code == 405
        assert (await http.options(f"/forms/{form_id}")).status_code == 204


async def test_redirect_goes_only_to_the_configured_url_and_double_opt_in(
    site: Site, team: tuple[Caller, Caller, str]
) -> None:
    owner, _, _ = team
    list_id = await owner.mutation(
        "mailingLists:create", {"name": "News", "requireDoubleOptIn": False}
    )
    form_id = await owner.mutation(
        "formEndpoints:create",
        {"name": "DOI", "listId": list_id, "doubleOptIn": True,
         "redirectUrl": "https://shop.example.com/thanks?from=form"},
    )  # fmt: skip
    answer = await _post(
        site, form_id, data={"email": "dee@example.com", "redirect": "https://evil.example/"}
    )
    assert answer.status_code == 302
    assert answer.headers["location"] == (
        "https://shop.example.com/thanks?from=form&confirmation=pending"
    )
    (logged,) = await _submissions(owner, form_id)
    assert logged["status"] == "pending_confirmation"
    contact = await owner.query("contacts:get", {"contactId": logged["contactId"]})
    assert contact["doiStatus"] == "pending" and contact.get("mailingListIds", []) == []


async def test_five_submissions_per_minute_per_address_and_form(
    site: Site, team: tuple[Caller, Caller, str]
) -> None:
    owner, _, _ = team
    form_id = await owner.mutation("formEndpoints:create", {"name": "Sign-up"})
    for number in range(5):
        answer = await _post(site, form_id, json={"email": f"p{number}@example.com"})
        assert answer.status_code == 200
    limited = await _post(site, form_id, json={"email": "p5@example.com"})
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
    assert len(await _submissions(owner, form_id)) == 5


async def test_a_form_sign_up_starts_contact_created_automations(
    site: Site, team: tuple[Caller, Caller, str]
) -> None:
    owner, _, _ = team
    week = {"type": "delay", "config": {"duration": 1, "unit": "weeks"}}
    automation_id = await owner.mutation(
        "automations:create",
        {"name": "Welcome", "triggerType": "contact_created", "steps": [week]},
    )
    await owner.mutation("automations:activate", {"automationId": automation_id})
    form_id = await owner.mutation("formEndpoints:create", {"name": "Sign-up"})
    assert (await _post(site, form_id, json={"email": "new@example.com"})).status_code == 200
    stats = await owner.query("automations:stats", {"automationId": automation_id})
    assert stats["entered"] == stats["active"] == 1
