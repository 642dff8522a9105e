"""transactionalEmails translations (reference §2.3 `translations`, §3.9 language choice):
added, changed and removed by editors with the email template's checks (language codes,
errors naming the path), and used by POST /api/v1/transactional: the request's language,
else the contact's, when the email has it, else the default language."""

from __future__ import annotations

import json
from typing import Any

import pytest

from owlat.runtime import ConvexError
from tests.app import test_transactional_api as api_tests
from tests.app.conftest import Site
from tests.app.mail_setup import settled
from tests.app.test_rest_api import organization
from tests.app.test_transactional_api import Setup, mails_to, send

# the fixtures of the transactional API's tests: a published `order-receipt` and an API key
site, setup = api_tests.site, api_tests.setup

GERMAN = {
    "language": "de",
    "subject": "Bestellung {{orderId}}",
    "blocks": {"t1": {"html": "<p>Bestellung {{orderId}} für {{name|'dich'}}</p>"}},
}


def _id(setup: Setup) -> dict[str, Any]:
    return {"transactionalEmailId": setup.email_id, "forceWhilePublished": True}


async def _german(setup: Setup) -> dict[str, Any]:
    await setup.owner.mutation(
        "transactionalEmails:addTranslation", {**_id(setup), "language": "de"}
    )
    saved: dict[str, Any] = await setup.owner.mutation(
        "transactionalEmails:updateTranslation", {**_id(setup), **GERMAN}
    )
    return saved


async def test_translations_are_checked_and_need_the_right_role(site: Site, setup: Setup) -> None:
    ids = {"transactionalEmailId": setup.email_id}
    with pytest.raises(ConvexError, match="^The transactional email is published: unpublish it"):
        await setup.owner.mutation("transactionalEmails:addTranslation", {**ids, "language": "de"})
    saved = await _german(setup)
    assert saved["supportedLanguages"] == ["en", "de"]
    assert json.loads(saved["htmlTranslations"])["de"]["subject"] == "Bestellung {{orderId}}"
    with pytest.raises(ConvexError, match="^language: 'deutsch!' is not a language code"):
        await setup.owner.mutation(
            "transactionalEmails:addTranslation", {**_id(setup), "language": "deutsch!"}
        )
    with pytest.raises(ConvexError, match="^The transactional email already has the language de"):
        await setup.owner.mutation(
            "transactionalEmails:addTranslation", {**_id(setup), "language": "de"}
        )
    broken = {**GERMAN, "blocks": {"t1": {"html": "<p>{{kaputt name}}</p>"}}}
    with pytest.raises(ConvexError, match=r"^translations\.de\.content\[0\]\.html: malformed"):
        await setup.owner.mutation(
            "transactionalEmails:updateTranslation", {**_id(setup), **broken}
        )
    with pytest.raises(ConvexError, match=r"^translations\.de\.blocks\.nope: no such block"):
        await setup.owner.mutation(
            "transactionalEmails:updateTranslation",
            {**_id(setup), **GERMAN, "blocks": {"nope": {"html": "x"}}},
        )
    with pytest.raises(ConvexError, match="^Translation not found"):
        await setup.owner.mutation(
            "transactionalEmails:removeTranslation", {**_id(setup), "language": "fr"}
        )
    unchanged = await setup.owner.query(
        "transactionalEmails:get", {"transactionalEmailId": setup.email_id}
    )
    assert json.loads(unchanged["translations"])["de"]["subject"] == GERMAN["subject"]
    # another organization's member finds nothing
    stranger, _ = await organization(site, "globex")
    with pytest.raises(ConvexError, match="^Transactional email not found"):
        await stranger.mutation(
            "transactionalEmails:removeTranslation", {**_id(setup), "language": "de"}
        )


async def test_a_send_uses_the_requested_or_contacts_language_else_the_default(
    site: Site, setup: Setup
) -> None:
    await _german(setup)
    variables = {"orderId": "A-1", "total": 1}
    cases = [
        ("de@example.com", {"language": "DE"}, "de", "Bestellung A-1", "Bestellung A-1 für dich"),
        ("fr@example.com", {"language": "fr"}, "en", "Order A-1", "Order A-1: 1 for"),
        ("none@example.com", {}, "en", "Order A-1", "Order A-1: 1 for"),
    ]
    for address, extra, language, subject, body in cases:
        response = await send(setup, email=address, dataVariables=variables, **extra)
        assert response.status_code == 202, response.text
        answer = response.json()["data"]
        assert answer["language"] == language
        sent = await settled(setup.owner, answer["transactionalEmailId"])
        assert (sent["status"], sent["language"]) == ("sent", language)
        (mail,) = mails_to(site, address)
        assert mail["Subject"] == subject
        assert body in mail.get_body(("html",)).get_content()
    # the contact's language counts when the request names none
    first = (await send(setup, email="ct@example.com", dataVariables=variables)).json()["data"]
    assert first["language"] == "en"  # the contact has no language yet
    await setup.owner.mutation(
        "contacts:update", {"contactId": first["contactId"], "language": "de"}
    )
    again = (await send(setup, email="ct@example.com", dataVariables=variables)).json()["data"]
    assert again["language"] == "de"
    await settled(setup.owner, again["transactionalEmailId"])
    assert mails_to(site, "ct@example.com")[-1]["Subject"] == "Bestellung A-1"
    # removed: the default language again, even when asked for
    await setup.owner.mutation(
        "transactionalEmails:removeTranslation", {**_id(setup), "language": "de"}
    )
    last = await send(setup, email="ct@example.com", dataVariables=variables, language="de")
    assert last.json()["data"]["language"] == "en"
    await settled(setup.owner, last.json()["data"]["transactionalEmailId"])
    assert mails_to(site, "ct@example.com")[-1]["Subject"] == "Order A-1"
