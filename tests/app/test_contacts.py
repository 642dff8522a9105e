"""contacts:*, contactProperties:* and the purge cron (reference §2.1, §7.1)."""

from __future__ import annotations

from typing import Any

import pytest

from owlat.app.contacts import RETENTION_MS
from owlat.app.lib.contacts import contact_patch, contact_record
from owlat.runtime import UNDEFINED, ConvexError
from owlat.runtime.application import Application
from owlat.runtime.testing import in_mutation, in_query
from tests.app.conftest import Caller, owner_and_editor, signed_in, with_organization


@pytest.fixture
async def owlat(owlat_on_both_engines: Application) -> Application:
    """These tests run on SQLite and PostgreSQL."""
    return owlat_on_both_engines


PAGE = {"numItems": 10, "cursor": None}


async def _rows(owlat: Application, table: str) -> list[dict[str, Any]]:
    async def read(ctx: Any) -> list[Any]:
        return [dict(row) for row in await ctx.db.query(table).collect()]

    return list(await in_query(owlat, read))


async def _timeline(caller: Caller, contact_id: str) -> list[dict[str, Any]]:
    page = await caller.query(
        "contacts:activities",
        {"contactId": contact_id, "paginationOpts": {"numItems": 100, "cursor": None}},
    )
    return list(page["page"])


def test_one_contact_record_and_patch_keep_the_name_keys() -> None:
    """Create, update and the CSV import build contacts and their search keys here."""
    fields = {"firstName": "Ada", "lastName": None, "language": "en"}
    record = contact_record("org1", "ada@example.com", "import", fields, {"plan": "pro"}, 5.0)
    assert record == {
        "organizationId": "org1",
        "email": "ada@example.com",
        "source": "import",
        "properties": {"plan": "pro"},
        "createdAt": 5.0,
        "updatedAt": 5.0,
        "firstName": "Ada",
        "language": "en",
        "nameKey": "ada",
    }
    patch = contact_patch(record, {"lastName": "Lovelace"}, 6.0)
    assert patch == {
        "lastName": "Lovelace",
        "nameKey": "ada lovelace",
        "lastNameKey": "lovelace",
        "updatedAt": 6.0,
    }
    cleared = contact_patch({**record, **patch}, {"firstName": UNDEFINED}, 7.0)
    assert cleared == {
        "firstName": UNDEFINED,
        "nameKey": "lovelace",
        "lastNameKey": "lovelace",
        "updatedAt": 7.0,
    }
    assert contact_patch(record, {"language": "de"}, 8.0) == {"language": "de", "updatedAt": 8.0}


async def test_create_get_and_timeline(owlat: Application) -> None:
    owner, editor, organization_id = await owner_and_editor(owlat)
    contact_id = await owner.mutation(
        "contacts:createFromSession",
        {
            "email": "  Ada@Example.COM ",
            "firstName": " Ada ",
            "lastName": "Lovelace",
            "language": "en",
            "timezone": "Europe/London",
        },
    )
    contact = await editor.query("contacts:get", {"contactId": contact_id})
    assert contact["email"] == "ada@example.com"
    assert contact["firstName"] == "Ada" and contact["lastName"] == "Lovelace"
    assert contact["source"] == "api" and contact["properties"] == {}
    assert contact["organizationId"] == organization_id
    assert contact["language"] == "en" and contact["timezone"] == "Europe/London"
    assert "nameKey" not in contact and "deletedAt" not in contact
    (created,) = await _timeline(editor, contact_id)
    assert created["activityType"] == "created" and created["metadata"] == {"source": "api"}
    assert created["userId"] == owner.user_id
    imported = await owner.mutation(
        "contacts:createFromSession", {"email": "b@example.com", "source": "import"}
    )
    assert (await owner.query("contacts:get", {"contactId": imported}))["source"] == "import"
    assert await owner.query("contacts:get", {"contactId": "nonsense"}) is None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"email": "not-an-email"}, "^Invalid email address: 'not-an-email'$"),
        ({"email": "a@" + "b" * 250 + ".com"}, "^Invalid email address: "),
        ({"email": "ok@example.com", "firstName": "x" * 201}, "^First name must be at most 200"),
        ({"email": "ok@example.com", "lastName": "x" * 201}, "^Last name must be at most 200"),
        (
            {"email": "ok@example.com", "language": "english!"},
            "^Invalid language 'english!': use a code such as en, de or pt-BR$",
        ),
        (
            {"email": "ok@example.com", "timezone": "Mars/Base"},
            "^Unknown timezone 'Mars/Base': use an IANA name such as Europe/Berlin or UTC$",
        ),
        (
            {"email": "ok@example.com", "properties": {"plan": "pro"}},
            '^Unknown property "plan": define it in contact properties$',
        ),
        ({"email": "DUP@example.com"}, "^A contact with email dup@example.com already exists$"),
    ],
)
async def test_create_refuses_bad_input(
    owlat: Application, args: dict[str, Any], message: str
) -> None:
    owner, _, _ = await owner_and_editor(owlat)
    await owner.mutation("contacts:createFromSession", {"email": "dup@example.com"})
    before = await _rows(owlat, "contacts")
    with pytest.raises(ConvexError, match=message):
        await owner.mutation("contacts:createFromSession", args)
    assert await _rows(owlat, "contacts") == before


async def test_editors_read_but_do_not_write(owlat: Application) -> None:
    owner, editor, _ = await owner_and_editor(owlat)
    contact_id = await owner.mutation("contacts:createFromSession", {"email": "a@example.com"})
    before = await _rows(owlat, "contacts")
    for path, args in [
        ("contacts:createFromSession", {"email": "e@example.com"}),
        ("contacts:update", {"contactId": contact_id, "firstName": "E"}),
        ("contacts:delete", {"contactId": contact_id}),
        ("contacts:hardDelete", {"contactId": contact_id}),
        ("contacts:bulkDelete", {"contactIds": [contact_id]}),
        ("contactProperties:create", {"key": "plan", "label": "Plan", "type": "string"}),
    ]:
        with pytest.raises(ConvexError, match="^Admin access required$"):
            await editor.mutation(path, args)
    assert await _rows(owlat, "contacts") == before
    assert await _rows(owlat, "contactProperties") == []
    page = await editor.query("contacts:listFromSession", {"paginationOpts": PAGE})
    assert [c["_id"] for c in page["page"]] == [contact_id]


async def test_update_fields_properties_and_unsubscribe(owlat: Application) -> None:
    owner, _, _ = await owner_and_editor(owlat)
    await owner.mutation(
        "contactProperties:create", {"key": "plan", "label": "Plan", "type": "string"}
    )
    await owner.mutation(
        "contactProperties:create", {"key": "seats", "label": "Seats", "type": "number"}
    )
    contact_id = await owner.mutation(
        "contacts:createFromSession",
        {"email": "a@example.com", "firstName": "Ann", "properties": {"plan": "free"}},
    )
    updated = await owner.mutation(
        "contacts:update",
        {
            "contactId": contact_id,
            "email": "ANN@example.com",
            "firstName": None,
            "lastName": "Smith",
            "language": "",
            "properties": {"plan": "pro", "seats": 5},
        },
    )
    assert updated["email"] == "ann@example.com" and "firstName" not in updated
    assert updated["lastName"] == "Smith" and updated["properties"] == {
        "plan": "pro",
        "seats": 5.0,
    }
    assert updated["updatedAt"] >= updated["createdAt"]
    removed = await owner.mutation(
        "contacts:update", {"contactId": contact_id, "properties": {"seats": None}}
    )
    assert removed["properties"] == {"plan": "pro"}
    unsubscribed = await owner.mutation(
        "contacts:update", {"contactId": contact_id, "unsubscribed": True}
    )
    assert unsubscribed["unsubscribedAt"] is not None
    resubscribed = await owner.mutation(
        "contacts:update", {"contactId": contact_id, "unsubscribed": False}
    )
    assert "unsubscribedAt" not in resubscribed
    # no change: nothing written
    same = await owner.mutation("contacts:update", {"contactId": contact_id, "lastName": "Smith"})
    assert same == resubscribed

    timeline = await _timeline(owner, contact_id)
    kinds = [(a["activityType"], a.get("metadata")) for a in reversed(timeline)]
    assert kinds == [
        ("created", {"source": "api"}),
        ("updated", {"fields": "email,firstName,lastName"}),
        ("property_updated", {"propertyKey": "plan", "oldValue": "free", "newValue": "pro"}),
        ("property_updated", {"propertyKey": "seats", "oldValue": "", "newValue": "5"}),
        ("property_updated", {"propertyKey": "seats", "oldValue": "5", "newValue": ""}),
        ("unsubscribed", {"source": "admin"}),
        ("subscribed", {"source": "admin"}),
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"email": "bad"}, "^Invalid email address: 'bad'$"),
        ({"email": "Other@example.com"}, "^A contact with email other@example.com already"),
        ({"timezone": "Nowhere"}, "^Unknown timezone 'Nowhere'"),
        ({"properties": {"seats": "five"}}, '^Property "seats" must be a number$'),
        ({"properties": {"vip": 1}}, '^Property "vip" must be true or false$'),
        ({"properties": {"plan": 3}}, '^Property "plan" must be a string$'),
        ({"properties": {"plan": "x" * 10_001}}, '^Property "plan" must be at most 10000'),
        ({"properties": {"since": "31/05/2024"}}, '^Property "since" must be a date \\(ISO'),
        ({"properties": {"since": True}}, '^Property "since" must be a date'),
        ({"properties": {"nope": 1}}, '^Unknown property "nope"'),
    ],
)
async def test_update_refuses_bad_input(
    owlat: Application, args: dict[str, Any], message: str
) -> None:
    owner, _, _ = await owner_and_editor(owlat)
    for key, kind in [("plan", "string"), ("seats", "number"), ("vip", "boolean")]:
        await owner.mutation(
            "contactProperties:create", {"key": key, "label": key.title(), "type": kind}
        )
    await owner.mutation(
        "contactProperties:create", {"key": "since", "label": "Since", "type": "date"}
    )
    await owner.mutation("contacts:createFromSession", {"email": "other@example.com"})
    contact_id = await owner.mutation(
        "contacts:createFromSession",
        {"email": "a@example.com", "properties": {"plan": "free", "seats": 1}},
    )
    before = await _rows(owlat, "contacts"), await _rows(owlat, "contactActivities")
    with pytest.raises(ConvexError, match=message):
        await owner.mutation("contacts:update", {"contactId": contact_id, **args})
    assert (await _rows(owlat, "contacts"), await _rows(owlat, "contactActivities")) == before


async def test_date_properties_accept_iso_and_epoch(owlat: Application) -> None:
    owner, _, _ = await owner_and_editor(owlat)
    await owner.mutation(
        "contactProperties:create", {"key": "since", "label": "Since", "type": "date"}
    )
    contact_id = await owner.mutation("contacts:createFromSession", {"email": "a@example.com"})
    for value, expected in [
        ("2024-05-31", 1_717_113_600_000.0),
        ("2024-05-31T12:00:00Z", 1_717_156_800_000.0),
        ("2024-05-31T14:00:00+02:00", 1_717_156_800_000.0),
        (1_700_000_000_000, 1_700_000_000_000.0),
    ]:
        updated = await owner.mutation(
            "contacts:update", {"contactId": contact_id, "properties": {"since": value}}
        )
        assert updated["properties"]["since"] == expected, value


async def test_list_newest_first_paginated_and_searchable(owlat: Application) -> None:
    owner, editor, _ = await owner_and_editor(owlat)
    names = [
        ("ada@example.com", "Ada", "Lovelace"),
        ("grace@navy.mil", "Grace", "Hopper"),
        ("alan@example.org", "Alan", "Turing"),
        ("adele@example.com", None, "Goldberg"),
        ("zed@example.com", "Zed", None),
    ]
    ids = []
    for email, first, last in names:
        args: dict[str, Any] = {"email": email}
        if first:
            args["firstName"] = first
        if last:
            args["lastName"] = last
        ids.append(await owner.mutation("contacts:createFromSession", args))
    await owner.mutation("contacts:delete", {"contactId": ids[4]})

    first = await editor.query(
        "contacts:listFromSession", {"paginationOpts": {"numItems": 2, "cursor": None}}
    )
    assert [c["_id"] for c in first["page"]] == [ids[3], ids[2]] and not first["isDone"]
    second = await editor.query(
        "contacts:listFromSession",
        {"paginationOpts": {"numItems": 2, "cursor": first["continueCursor"]}},
    )
    assert [c["_id"] for c in second["page"]] == [ids[1], ids[0]]
    third = await editor.query(
        "contacts:listFromSession",
        {"paginationOpts": {"numItems": 2, "cursor": second["continueCursor"]}},
    )
    assert third["page"] == [] and third["isDone"]

    async def search(term: str) -> list[str]:
        page = await editor.query(
            "contacts:listFromSession", {"paginationOpts": PAGE, "search": term}
        )
        return [c["email"] for c in page["page"]]

    assert await search("AD") == ["ada@example.com", "adele@example.com"]  # by email
    one = await editor.query(
        "contacts:listFromSession",
        {"paginationOpts": {"numItems": 1, "cursor": None}, "search": "ad"},
    )
    two = await editor.query(
        "contacts:listFromSession",
        {"paginationOpts": {"numItems": 1, "cursor": one["continueCursor"]}, "search": "ad"},
    )
    assert [c["email"] for c in one["page"] + two["page"]] == [
        "ada@example.com",
        "adele@example.com",
    ]
    assert await search("grace h") == ["grace@navy.mil"]
    assert await search("hop") == ["grace@navy.mil"]
    assert await search("gold") == ["adele@example.com"]
    assert await search("zed") == []  # deleted
    assert await search("  ") == [
        "adele@example.com",
        "alan@example.org",
        "grace@navy.mil",
        "ada@example.com",
    ]
    with pytest.raises(ConvexError, match="^numItems must be 1 to 500$"):
        await editor.query(
            "contacts:listFromSession", {"paginationOpts": {"numItems": 0, "cursor": None}}
        )


async def test_soft_delete_frees_the_address_and_hides_the_contact(owlat: Application) -> None:
    owner, _, _ = await owner_and_editor(owlat)
    contact_id = await owner.mutation("contacts:createFromSession", {"email": "a@example.com"})
    await owner.mutation("contacts:delete", {"contactId": contact_id})
    assert await owner.query("contacts:get", {"contactId": contact_id}) is None
    with pytest.raises(ConvexError, match="^Contact not found$"):
        await owner.mutation("contacts:delete", {"contactId": contact_id})
    with pytest.raises(ConvexError, match="^Contact not found$"):
        await owner.mutation("contacts:update", {"contactId": contact_id, "firstName": "A"})
    timeline = await _timeline(owner, contact_id)
    assert [a["activityType"] for a in timeline] == ["deleted", "created"]
    again = await owner.mutation("contacts:createFromSession", {"email": "a@example.com"})
    assert again != contact_id
    (row,) = [r for r in await _rows(owlat, "contacts") if r["_id"] == contact_id]
    assert row["deletedBy"] == owner.user_id and row["deletedAt"] is not None


async def test_hard_delete_cascades_to_activities(owlat: Application) -> None:
    owner, _, _ = await owner_and_editor(owlat)
    keep = await owner.mutation("contacts:createFromSession", {"email": "k@example.com"})
    contact_id = await owner.mutation("contacts:createFromSession", {"email": "a@example.com"})
    await owner.mutation("contacts:update", {"contactId": contact_id, "firstName": "A"})
    await owner.mutation("contacts:hardDelete", {"contactId": contact_id})
    assert [r["_id"] for r in await _rows(owlat, "contacts")] == [keep]
    assert {r["contactId"] for r in await _rows(owlat, "contactActivities")} == {keep}
    with pytest.raises(ConvexError, match="^Contact not found$"):
        await owner.mutation("contacts:hardDelete", {"contactId": contact_id})
    with pytest.raises(ConvexError, match="^Contact not found$"):
        await owner.query("contacts:activities", {"contactId": contact_id, "paginationOpts": PAGE})


async def test_bulk_delete(owlat: Application) -> None:
    owner, _, _ = await owner_and_editor(owlat)
    ids = [
        await owner.mutation("contacts:createFromSession", {"email": f"c{i}@example.com"})
        for i in range(3)
    ]
    result = await owner.mutation(
        "contacts:bulkDelete", {"contactIds": [ids[0], ids[1], ids[0], "missing"]}
    )
    assert result == {
        "deleted": 2,
        "failed": 1,
        "errors": [{"index": 3, "error": "Contact not found"}],
    }
    page = await owner.query("contacts:listFromSession", {"paginationOpts": PAGE})
    assert [c["_id"] for c in page["page"]] == [ids[2]]
    for contact_ids in ([], [f"x{i}" for i in range(101)]):
        with pytest.raises(ConvexError, match="^Pass 1 to 100 contact ids$"):
            await owner.mutation("contacts:bulkDelete", {"contactIds": contact_ids})


async def test_purge_removes_contacts_deleted_over_30_days_ago(owlat: Application) -> None:
    owner, _, _ = await owner_and_editor(owlat)
    old = await owner.mutation("contacts:createFromSession", {"email": "old@example.com"})
    recent = await owner.mutation("contacts:createFromSession", {"email": "new@example.com"})
    live = await owner.mutation("contacts:createFromSession", {"email": "live@example.com"})
    await owner.mutation("contacts:bulkDelete", {"contactIds": [old, recent]})

    async def age(ctx: Any) -> None:
        row = await ctx.db.get(old)
        await ctx.db.patch(old, {"deletedAt": row["deletedAt"] - RETENTION_MS - 1})

    await in_mutation(owlat, age)
    purged = await owlat.run_mutation("contacts:purgeDeleted", {}, internal=True)
    assert purged.value == 1
    assert {r["_id"] for r in await _rows(owlat, "contacts")} == {recent, live}
    assert old not in {r["contactId"] for r in await _rows(owlat, "contactActivities")}


async def test_properties_define_rename_delete(owlat: Application) -> None:
    owner, editor, _ = await owner_and_editor(owlat)
    plan = await owner.mutation(
        "contactProperties:create", {"key": "plan", "label": " Plan ", "type": "string"}
    )
    await owner.mutation(
        "contactProperties:create", {"key": "age", "label": "Age", "type": "number"}
    )
    listed = await editor.query("contactProperties:listFromSession")
    assert [(p["key"], p["label"], p["type"]) for p in listed] == [
        ("age", "Age", "number"),
        ("plan", "Plan", "string"),
    ]
    renamed = await owner.mutation(
        "contactProperties:rename", {"propertyId": plan, "label": "Pricing plan"}
    )
    assert renamed["label"] == "Pricing plan" and renamed["key"] == "plan"
    contact_id = await owner.mutation(
        "contacts:createFromSession",
        {"email": "a@example.com", "properties": {"plan": "pro", "age": 40}},
    )
    with pytest.raises(ConvexError, match="^Admin access required$"):
        await editor.mutation("contactProperties:remove", {"propertyId": plan})
    assert await owner.mutation("contactProperties:remove", {"propertyId": plan}) == 1
    contact = await owner.query("contacts:get", {"contactId": contact_id})
    assert contact["properties"] == {"age": 40.0}
    with pytest.raises(ConvexError, match="^Contact property not found$"):
        await owner.mutation("contactProperties:rename", {"propertyId": plan, "label": "X"})


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"key": "Plan", "label": "P", "type": "string"}, "^Property key must start with a"),
        ({"key": "1st", "label": "P", "type": "string"}, "^Property key must start with a"),
        ({"key": "a" * 65, "label": "P", "type": "string"}, "^Property key must start with a"),
        (
            {"key": "email", "label": "E", "type": "string"},
            '^Property key "email" is a built-in contact field$',
        ),
        ({"key": "plan", "label": "  ", "type": "string"}, "^Label must be 1 to 200 characters$"),
        (
            {"key": "taken", "label": "T", "type": "number"},
            '^A property with key "taken" already exists$',
        ),
    ],
)
async def test_property_definitions_refuse_bad_input(
    owlat: Application, args: dict[str, Any], message: str
) -> None:
    owner, _, _ = await owner_and_editor(owlat)
    await owner.mutation(
        "contactProperties:create", {"key": "taken", "label": "Taken", "type": "string"}
    )
    before = await _rows(owlat, "contactProperties")
    with pytest.raises(ConvexError, match=message):
        await owner.mutation("contactProperties:create", args)
    assert await _rows(owlat, "contactProperties") == before


async def test_contacts_are_private_to_their_organization(owlat: Application) -> None:
    owner, _, _ = await owner_and_editor(owlat)
    contact_id = await owner.mutation("contacts:createFromSession", {"email": "a@example.com"})
    stranger = await signed_in(owlat, "s@example.com")
    await with_organization(stranger, "other")
    assert await stranger.query("contacts:get", {"contactId": contact_id}) is None
    with pytest.raises(ConvexError, match="^Contact not found$"):
        await stranger.mutation("contacts:update", {"contactId": contact_id, "firstName": "X"})
    # the same address may exist in another organization
    await stranger.mutation("contacts:createFromSession", {"email": "a@example.com"})
    page = await stranger.query("contacts:listFromSession", {"paginationOpts": PAGE})
    assert len(page["page"]) == 1 and page["page"][0]["_id"] != contact_id


def test_the_purge_runs_hourly() -> None:
    from owlat.app.crons import crons

    job = crons.jobs["purge deleted contacts"]
    assert job.function == "contacts:purgeDeleted" and job.args == {}
