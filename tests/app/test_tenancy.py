"""Tenancy, for every public function of owlat.app (new modules are covered as they land).

A member of organization A (owner there, so every admin check passes) calls each public
query, mutation and action, once per document of organization B, passing that document's
id (and B's slug and member emails) in every string or id argument. Whatever the call
answers, B's documents must be unchanged, the answer must not contain any of them, and the
caller must not have become a member of, or active in, B.

The schema side: every table with an `organizationId` field is listed in `ORG_TABLES`
(deleted with its organization, walked here) and has a `by_org` index on it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest

from owlat.app.schema import ORG_TABLES, schema
from owlat.runtime.application import Application
from owlat.runtime.database.commits import Commit
from owlat.runtime.errors import OwlatError
from owlat.runtime.storage import store_file
from owlat.runtime.storage.upload_tokens import UploadGrant
from owlat.runtime.testing import in_mutation, in_query
from owlat.runtime.values import (
    ArrayValidator,
    BooleanValidator,
    FloatValidator,
    LiteralValidator,
    ObjectValidator,
    OptionalValidator,
    UnionValidator,
    Validator,
)
from tests.app.campaign_setup import finished, published_template
from tests.app.conftest import Caller, signed_in, uploaded, with_organization
from tests.app.mail_setup import settled
from tests.app.template_samples import png


@pytest.fixture
async def owlat(owlat_on_both_engines: Application) -> Application:
    """These tests run on SQLite and PostgreSQL."""
    return owlat_on_both_engines


FUTURE_MS = 4_000_000_000_000.0


def test_every_org_scoped_table_is_known_and_indexed() -> None:
    scoped = {
        name
        for name, table in schema.tables.items()
        if table.validator is not None and "organizationId" in table.validator.fields
    }
    assert scoped == set(ORG_TABLES)
    for name in ORG_TABLES:
        assert schema.tables[name].indexes.get("by_org") == ("organizationId",), name


def _values(validator: Validator, text: str) -> Any:
    """An argument value for `validator`, with `text` wherever a string goes."""
    if isinstance(validator, OptionalValidator):
        return _values(validator.inner, text)
    if isinstance(validator, LiteralValidator):
        return validator.value
    if isinstance(validator, UnionValidator):
        strings = [m for m in validator.members if not isinstance(m, LiteralValidator)]
        return _values(strings[0] if strings else validator.members[-1], text)
    if isinstance(validator, BooleanValidator):
        return True
    if isinstance(validator, FloatValidator):
        return FUTURE_MS
    if isinstance(validator, ArrayValidator):
        return [_values(validator.item, text)]
    if isinstance(validator, ObjectValidator):
        return {name: _values(field, text) for name, field in validator.fields.items()}
    return text  # strings, ids (a wrong table's id is refused by the validator: fine)


async def _organization_b(owlat: Application) -> tuple[Caller, str]:
    owner = await signed_in(owlat, "b-owner@example.com")
    organization_id = await with_organization(owner, "org-b")
    member = await signed_in(owlat, "b-member@example.com")
    invitation = await owner.mutation(
        "invitations:invite", {"email": member.email, "role": "editor"}
    )
    await member.mutation("invitations:accept", {"invitationId": invitation["_id"]})
    await owner.mutation("invitations:invite", {"email": "b-later@example.com", "role": "admin"})
    await owner.mutation("apiKeys:create", {"name": "B key", "scopes": ["contacts:read"]})
    await owner.mutation(
        "contactProperties:create", {"key": "plan", "label": "Plan", "type": "string"}
    )
    contact_id = await owner.mutation(
        "contacts:createFromSession",
        {"email": "b-contact@example.com", "firstName": "Bea", "properties": {"plan": "pro"}},
    )
    await owner.mutation("contacts:update", {"contactId": contact_id, "lastName": "B"})
    gone = await owner.mutation("contacts:createFromSession", {"email": "b-gone@example.com"})
    await owner.mutation("contacts:delete", {"contactId": gone})
    await owner.mutation(
        "blockedEmails:add", {"email": "b-blocked@example.com", "reason": "manual"}
    )
    await owner.mutation("organizationSettings:update", {"postalAddress": "B Street 1"})
    b_list = await owner.mutation(
        "mailingLists:create", {"name": "B list", "requireDoubleOptIn": False}
    )
    await owner.mutation("mailingLists:addContact", {"listId": b_list, "contactId": contact_id})
    event = {"email": "b-contact@example.com", "eventName": "b_event", "eventProperties": {}}
    await owlat.run_mutation(
        "restApi/events:record",
        {**event, "organizationId": organization_id, "createContactIfNotExists": False},
        internal=True,
    )
    pro = {"kind": "contact_property", "field": "plan", "operator": "equals", "value": "pro"}
    listed = {"kind": "list_membership", "listId": b_list, "operator": "equals"}
    await owner.mutation(
        "segments:create",
        {"name": "B pro", "filters": {"logic": "AND", "conditions": [pro, listed]}},
    )
    await _finished_import(owlat, owner, b_list)
    await _templates(owlat, owner, organization_id)
    await _sending_setup(owner)
    await _transactional(owlat, owner, organization_id)
    await _webhook(owlat, owner, organization_id)
    await _automation(owlat, owner, organization_id)
    await _form(owlat, owner)
    await _campaigns(owner, b_list)
    await _campaign_sender(owlat, organization_id)
    return owner, organization_id


async def _form(owlat: Application, owner: Caller) -> None:
    """B's form on B's list, with a submission."""
    b_list = (await owner.query("mailingLists:list"))[0]["_id"]
    form_id = await owner.mutation("formEndpoints:create", {"name": "B form", "listId": b_list})
    answer = await owlat.run_mutation(
        "formEndpoints:submit",
        {"formId": form_id, "data": {"email": "b-contact@example.com"}, "ipAddress": "10.0.0.2"},
        internal=True,
    )
    assert answer.value["status"] == 200


async def _automation(owlat: Application, owner: Caller, organization_id: str) -> None:
    """B's active automation with a run waiting a week for its first step, and stats."""
    automation_id = await owner.mutation(
        "automations:create",
        {"name": "B flow", "triggerType": "event_received",
         "triggerConfig": {"eventName": "b_flow"},
         "steps": [{"type": "delay", "config": {"duration": 1, "unit": "weeks"}}]},
    )  # fmt: skip
    await owner.mutation("automations:activate", {"automationId": automation_id})
    event = {"email": "b-contact@example.com", "eventName": "b_flow", "eventProperties": {}}
    await owlat.run_mutation(
        "restApi/events:record",
        {**event, "organizationId": organization_id, "createContactIfNotExists": False},
        internal=True,
    )
    stats = await owner.query("automations:stats", {"automationId": automation_id})
    assert stats["entered"] == stats["active"] == 1


async def _webhook(owlat: Application, owner: Caller, organization_id: str) -> None:
    """B's webhook (turned off, so nothing is delivered during the sweep) and a finished
    delivery log of it, and a raw provider payload."""
    created = await owner.mutation(
        "webhooks:create",
        {"name": "B hook", "url": "https://hooks.b.example.com/x", "events": ["email.sent"]},
    )
    await owner.mutation("webhooks:toggle", {"webhookId": created["webhookId"], "isActive": False})

    async def log(ctx: Any) -> None:
        await ctx.db.insert(
            "webhookDeliveryLogs",
            {"organizationId": organization_id, "webhookId": created["webhookId"],
             "event": "email.sent", "payload": "{}", "payloadVersion": 1, "attemptNumber": 3,
             "maxAttempts": 3, "status": "failed", "scheduledAt": 1.0, "dueAt": 1.0,
             "completedAt": 2.0, "errorMessage": "B error"},
        )  # fmt: skip

    await in_mutation(owlat, log)


async def _templates(owlat: Application, owner: Caller, organization_id: str) -> None:
    """B's saved block, a template linking it (two versions, a translation, published), a
    share link and a media asset."""
    footer = [{"id": "f", "type": "text", "content": {"html": "<p>B footer</p>"}}]
    block_id = await owner.mutation(
        "emailBlocks:create", {"name": "B footer", "content": json.dumps(footer)}
    )
    linked = {**footer[0], "savedBlockRef": {"blockId": block_id, "groupId": "g"}}
    template_id = await owner.mutation(
        "emailTemplates:create",
        {"name": "B news", "type": "marketing", "subject": "B", "content": json.dumps([linked])},
    )
    await owner.mutation("emailTemplates:update", {"templateId": template_id, "subject": "B2"})
    await owner.mutation(
        "emailTemplates:addTranslation", {"templateId": template_id, "language": "de"}
    )
    await owner.mutation("emailTemplates:publish", {"templateId": template_id})
    await owner.mutation("shareLinks:create", {"templateId": template_id})
    storage_id = await store_file(
        owlat, png(), content_type="image/png", grant=UploadGrant(owner=organization_id)
    )
    await owlat.run_action(
        "mediaAssets:create",
        {"storageId": storage_id, "filename": "b.png"},
        identity=owner.identity,
    )


async def _sending_setup(owner: Caller) -> None:
    """B's provider settings, route, sending and tracking domains, and a delivered send."""
    await owner.mutation("emailProviders:saveResend", {"apiKey": "re_b_secret_key"})
    await owner.mutation(
        "providerRoutes:set",
        {"messageType": "test", "strategy": "single", "providers": [{"provider": "outbox"}]},
    )
    await owner.mutation("domains:create", {"domain": "b-mail.example.com", "providerKind": "smtp"})
    await owner.mutation("trackingDomains:add", {"domain": "track.b-mail.example.com"})
    send_id = await owner.mutation(
        "emails:sendTest", {"to": "b-contact@example.com", "subject": "B", "html": "<p>B</p>"}
    )
    assert (await settled(owner, send_id))["status"] == "sent"


async def _transactional(owlat: Application, owner: Caller, organization_id: str) -> None:
    """B's published transactional email with an attachment, a German translation and a
    share link, and a send of it through the REST API's mutation (with an idempotency key)."""
    content = json.dumps([{"id": "t", "type": "text", "content": {"html": "<p>B {{x}}</p>"}}])
    email_id = await owner.mutation(
        "transactionalEmails:create",
        {"name": "B receipt", "slug": "b-receipt", "subject": "B", "content": content,
         "dataVariablesSchema": {"x": "string"}},
    )  # fmt: skip
    storage_id = await uploaded(owlat, organization_id, b"b terms")
    ident = {"transactionalEmailId": email_id}
    await owner.mutation(
        "transactionalEmails:addAttachment",
        {**ident, "storageId": storage_id, "filename": "b.txt"},
    )
    await owner.mutation("transactionalEmails:addTranslation", {**ident, "language": "de"})
    await owner.mutation("transactionalEmails:publish", ident)
    await owner.mutation("shareLinks:create", ident)
    await owner.mutation(
        "providerRoutes:set",
        {"messageType": "transactional", "strategy": "single",
         "providers": [{"provider": "outbox"}]},
    )  # fmt: skip
    sent = await owlat.run_mutation(
        "restApi/transactional:send",
        {"organizationId": organization_id, "email": "b-contact@example.com",
         "requestEmail": "b-contact@example.com", "slug": "b-receipt",
         "dataVariables": {"x": "1"}, "addToAudience": True, "attachments": [],
         "ownedStorageIds": [], "idempotencyKey": "b-key", "requestHash": "b-hash"},
        internal=True,
    )  # fmt: skip
    assert "answer" in sent.value, sent.value
    assert (await settled(owner, sent.value["answer"]["transactionalEmailId"]))["status"] == "sent"


async def _campaigns(owner: Caller, list_id: str) -> None:
    """B's campaign sent to its list (through the outbox), a draft, one held for review."""
    await owner.mutation(
        "providerRoutes:set",
        {"messageType": "campaign", "strategy": "single", "providers": [{"provider": "outbox"}]},
    )
    template_id = await published_template(owner)
    for name in ("B draft", "B news"):
        campaign_id = await owner.mutation("campaigns:create", {"name": name})
        await owner.mutation(
            "campaigns:update",
            {"campaignId": campaign_id, "emailTemplateId": template_id,
             "fromEmail": "news@b-mail.example.com",
             "audience": {"kind": "list", "listId": list_id}},
        )  # fmt: skip
    await owner.mutation("campaigns:send", {"campaignId": campaign_id})
    assert (await finished(owner, campaign_id))["sent"] == 2
    # held by its content scan (a contentScanResults row): A must not approve it
    held = await owner.mutation("campaigns:create", {"name": "B held"})
    await owner.mutation(
        "campaigns:update",
        {"campaignId": held, "emailTemplateId": template_id, "subject": "FREE MONEY NOW!!!",
         "fromEmail": "news@b-mail.example.com",
         "audience": {"kind": "list", "listId": list_id}},
    )  # fmt: skip
    assert (await owner.mutation("campaigns:send", {"campaignId": held}))["status"] == (
        "pending_review"
    )


async def _campaign_sender(owlat: Application, organization_id: str) -> None:
    """A curated campaign sender of B (written directly: B's domain is not verified)."""

    async def add(ctx: Any) -> None:
        await ctx.db.insert(
            "campaignSenders",
            {"organizationId": organization_id, "email": "news@b-mail.example.com",
             "isEnabled": True, "isDefault": True, "createdAt": 0.0, "updatedAt": 0.0},
        )  # fmt: skip

    await in_mutation(owlat, add)


async def _finished_import(owlat: Application, owner: Caller, list_id: str) -> None:
    """A completed CSV import of B (with a row error), into B's list."""
    organization = await owner.query("organizations:getActive")
    storage_id = await uploaded(owlat, organization["_id"], b"Email\nb-imported@example.com\nbad\n")
    import_id = await owner.mutation(
        "contactImports:start",
        {"storageId": storage_id, "mapping": {"Email": "email"}, "onDuplicate": "update"}
        | {"listId": list_id},
    )
    async with asyncio.timeout(30):
        while True:
            found = await owner.query("contactImports:get", {"importId": import_id})
            if found["status"] == "completed":
                return
            await asyncio.sleep(0.02)


async def _owned_by(owlat: Application, organization_id: str) -> dict[str, Any]:
    async def snapshot(ctx: Any) -> dict[str, Any]:
        documents: dict[str, Any] = {organization_id: await ctx.db.get(organization_id)}
        for table in ORG_TABLES:
            rows = (
                await ctx.db.query(table)
                .with_index("by_org", lambda q: q.eq("organizationId", organization_id))
                .collect()
            )
            documents.update({row["_id"]: row for row in rows})
        return documents

    return dict(await in_query(owlat, snapshot))


def _texts(owned: dict[str, Any]) -> Iterator[str]:
    yield from owned
    yield "org-b"
    yield "b-member@example.com"
    yield "b-owner@example.com"
    yield "b-contact@example.com"
    yield "b-blocked@example.com"


REFERENCES = (
    "_id",
    "id",
    "organizationId",
    "userId",
    "inviterId",
    "keyId",
    "createdBy",
    "contactId",
    "listId",
    "importId",
    "storageId",
    "membershipId",
    "deletedBy",
    "updatedBy",
    "templateId",
    "emailTemplateId",
    "transactionalEmailId",
    "sendId",
    "uploadedBy",
    "automationId",
    "runId",
    "formEndpointId",
)


def _references(value: Any, secrets: set[str]) -> Iterator[Any]:
    """B's documents (or users) referenced by id fields anywhere in `value`; echoed
    arguments in other fields (a name) are not leaks."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key in REFERENCES and item in secrets:
                yield value
            else:
                yield from _references(item, secrets)
    elif isinstance(value, list):
        for item in value:
            yield from _references(item, secrets)


async def test_a_member_of_a_cannot_read_or_change_b(owlat: Application) -> None:
    attacker = await signed_in(owlat, "a-owner@example.com")
    organization_a = await with_organization(attacker, "org-a")
    _, organization_b = await _organization_b(owlat)
    before = await _owned_by(owlat, organization_b)
    secrets = {*before, *(row["userId"] for row in before.values() if "userId" in row)}
    public = [d for d in owlat.package.functions if not d.internal]
    assert len(public) >= 20

    async def reset_active(ctx: Any) -> Any:
        active = (await ctx.db.get(attacker.session_id)).get("activeOrganizationId")
        if active != organization_a:
            await ctx.db.patch(attacker.session_id, {"activeOrganizationId": organization_a})
        return active

    writes: list[Commit] = []  # B is re-read whenever something was written
    owlat.on_commit(lambda commit: writes.append(commit) if commit.write_set else None)
    calls = rereads = 0
    for definition in public:
        fields = definition.args.fields if definition.args is not None else {}
        for text in _texts(before):
            args = {name: _values(field, text) for name, field in fields.items()}
            kind = definition.kind
            try:
                result = await owlat.run(kind, definition.path, args, identity=attacker.identity)
            except OwlatError:
                answer: Any = None
            else:
                answer = result.value
            calls += 1
            leaked = list(_references(answer, secrets))
            assert not leaked, f"{definition.path}({args}) returned B's documents: {leaked}"
            if writes:
                writes.clear()
                rereads += 1
                after = await _owned_by(owlat, organization_b)
                assert after == before, f"{definition.path}({args}) changed organization B"
                active = await in_mutation(owlat, reset_active)
                assert active != organization_b, f"{definition.path}({args}) made B active"
            if not fields:
                break  # no argument to vary
    assert calls > 5 * len(public), calls
    assert rereads > 10, rereads  # calls that wrote (in A) were seen: B was re-read

    async def attacker_sessions(ctx: Any) -> list[Any]:
        return [
            s.get("activeOrganizationId")
            for s in await ctx.db.query("sessions").collect()
            if s["userId"] == attacker.user_id
        ]

    assert organization_b not in await in_query(owlat, attacker_sessions)
    memberships = await attacker.query("organizations:listMine")
    assert organization_b not in [o["_id"] for o in memberships]
