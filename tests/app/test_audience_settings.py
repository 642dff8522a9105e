"""organizationSettings:*, blockedEmails:* and the send-path helpers
`require_postal_address` and `is_suppressed` (reference §7.9, §7.11, §10.2)."""

from __future__ import annotations

from typing import Any

import pytest

from owlat.app.lib.audience import is_suppressed, require_postal_address
from owlat.runtime import ConvexError
from owlat.runtime.application import Application
from owlat.runtime.testing import in_query
from tests.app.conftest import owner_and_editor, until_organization_deleted
from tests.app.test_contacts import _rows


@pytest.fixture
async def owlat(owlat_on_both_engines: Application) -> Application:
    """These tests run on SQLite and PostgreSQL."""
    return owlat_on_both_engines


PAGE = {"numItems": 10, "cursor": None}
EMPTY_THEME = {"primaryColor": None, "backgroundColor": None, "textColor": None, "logoUrl": None}


async def test_settings_get_and_update(owlat: Application) -> None:
    owner, editor, organization_id = await owner_and_editor(owlat)
    empty = await editor.query("organizationSettings:get")
    assert empty == {
        "organizationId": organization_id,
        "defaultFromName": None,
        "defaultFromEmail": None,
        "replyToEmail": None,
        "postalAddress": None,
        "timezone": None,
        "brandTheme": EMPTY_THEME,
        "tracking": True,
        "trackTransactional": False,
        "abuseStatus": "clean",
        "abuseStatusReason": None,
        "updatedAt": None,
    }
    updated = await owner.mutation(
        "organizationSettings:update",
        {
            "defaultFromName": " Acme News ",
            "defaultFromEmail": "News@Acme.com",
            "replyToEmail": "help@acme.com",
            "postalAddress": "1 Main St, Springfield",
            "timezone": "America/New_York",
            "brandTheme": {"primaryColor": "#FF0000", "logoUrl": "https://acme.com/logo.png"},
        },
    )
    assert updated["defaultFromName"] == "Acme News"
    assert updated["defaultFromEmail"] == "news@acme.com"
    assert updated["replyToEmail"] == "help@acme.com"
    assert updated["postalAddress"] == "1 Main St, Springfield"
    assert updated["timezone"] == "America/New_York"
    assert updated["brandTheme"] == {
        **EMPTY_THEME,
        "primaryColor": "#ff0000",
        "logoUrl": "https://acme.com/logo.png",
    }
    assert await editor.query("organizationSettings:get") == updated
    # partial update: only what is passed changes; null / "" clear
    cleared = await owner.mutation(
        "organizationSettings:update",
        {"replyToEmail": None, "timezone": "", "brandTheme": {"textColor": "#000000"}},
    )
    assert cleared["replyToEmail"] is None and cleared["timezone"] is None
    assert cleared["defaultFromName"] == "Acme News"
    assert cleared["brandTheme"]["primaryColor"] == "#ff0000"
    assert cleared["brandTheme"]["textColor"] == "#000000"
    assert len(await _rows(owlat, "organizationSettings")) == 1
    tracking = await owner.mutation(
        "organizationSettings:update", {"tracking": False, "trackTransactional": True}
    )
    assert (tracking["tracking"], tracking["trackTransactional"]) == (False, True)
    assert tracking["defaultFromName"] == "Acme News"


async def test_editors_cannot_change_settings(owlat: Application) -> None:
    _, editor, _ = await owner_and_editor(owlat)
    with pytest.raises(ConvexError, match="^Admin access required$"):
        await editor.mutation("organizationSettings:update", {"postalAddress": "x"})
    assert await _rows(owlat, "organizationSettings") == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"defaultFromEmail": "nope"}, "^Invalid email address: 'nope'$"),
        ({"replyToEmail": "a@b"}, "^Invalid email address: 'a@b'$"),
        ({"defaultFromName": "x" * 201}, "^Default from name must be at most 200 characters$"),
        ({"defaultFromName": "A\nB"}, "^Default from name must not contain line breaks"),
        ({"postalAddress": "x" * 1001}, "^Postal address must be at most 1000 characters$"),
        ({"timezone": "Europe/Atlantis"}, "^Unknown timezone 'Europe/Atlantis'"),
        (
            {"brandTheme": {"primaryColor": "red"}},
            "^primaryColor must be a color like #1a2b3c, got 'red'$",
        ),
        (
            {"brandTheme": {"backgroundColor": "#fff"}},
            "^backgroundColor must be a color like #1a2b3c, got '#fff'$",
        ),
        (
            {"brandTheme": {"logoUrl": "javascript:alert(1)"}},
            "^Logo URL must be an http\\(s\\) URL of at most 2000 characters$",
        ),
        # one bad field refuses the whole update
        (
            {"postalAddress": "1 Main St", "timezone": "Bad/Zone"},
            "^Unknown timezone 'Bad/Zone'",
        ),
    ],
)
async def test_settings_refuse_bad_input(
    owlat: Application, args: dict[str, Any], message: str
) -> None:
    owner, _, _ = await owner_and_editor(owlat)
    await owner.mutation("organizationSettings:update", {"defaultFromName": "Acme"})
    before = await _rows(owlat, "organizationSettings")
    with pytest.raises(ConvexError, match=message):
        await owner.mutation("organizationSettings:update", args)
    assert await _rows(owlat, "organizationSettings") == before


async def test_postal_address_is_required_before_marketing(owlat: Application) -> None:
    owner, _, organization_id = await owner_and_editor(owlat)

    async def postal(ctx: Any) -> str:
        return await require_postal_address(ctx, organization_id)

    with pytest.raises(ConvexError, match="^A postal address is required before sending"):
        await in_query(owlat, postal)
    await owner.mutation("organizationSettings:update", {"defaultFromName": "Acme"})
    with pytest.raises(ConvexError, match="^A postal address is required before sending"):
        await in_query(owlat, postal)
    await owner.mutation("organizationSettings:update", {"postalAddress": "1 Main St"})
    assert await in_query(owlat, postal) == "1 Main St"


async def test_block_check_list_remove(owlat: Application) -> None:
    owner, editor, organization_id = await owner_and_editor(owlat)
    first = await owner.mutation(
        "blockedEmails:add",
        {"email": " Bounce@Example.com", "reason": "bounced", "bounceType": "hard"},
    )
    await owner.mutation(
        "blockedEmails:add", {"email": "angry@example.com", "reason": "complained"}
    )
    await owner.mutation(
        "blockedEmails:add",
        {"email": "quiet@example.com", "reason": "unengaged", "notes": " no opens in 6 months "},
    )
    found = await editor.query("blockedEmails:check", {"email": "BOUNCE@example.com"})
    assert found["_id"] == first and found["reason"] == "bounced"
    assert found["bounceType"] == "hard" and found["createdBy"] == owner.user_id
    assert await editor.query("blockedEmails:check", {"email": "ok@example.com"}) is None

    page = await editor.query("blockedEmails:listFromSession", {"paginationOpts": PAGE})
    assert [r["email"] for r in page["page"]] == [
        "quiet@example.com",
        "angry@example.com",
        "bounce@example.com",
    ]
    assert page["page"][0]["notes"] == "no opens in 6 months"
    only = await editor.query(
        "blockedEmails:listFromSession", {"paginationOpts": PAGE, "reason": "complained"}
    )
    assert [r["email"] for r in only["page"]] == ["angry@example.com"]
    assert await editor.query("blockedEmails:countsByReason") == {
        "bounced": 1,
        "complained": 1,
        "manual": 0,
        "unengaged": 1,
    }

    async def suppressed(ctx: Any) -> list[bool]:
        return [
            await is_suppressed(ctx, organization_id, "bounce@example.com"),
            await is_suppressed(ctx, organization_id, " QUIET@example.com"),
            await is_suppressed(ctx, organization_id, "quiet@example.com", transactional=True),
            await is_suppressed(ctx, organization_id, "bounce@example.com", transactional=True),
            await is_suppressed(ctx, organization_id, "fine@example.com"),
            await is_suppressed(ctx, "other-org", "bounce@example.com"),
            await is_suppressed(ctx, organization_id, "not an address"),
        ]

    assert await in_query(owlat, suppressed) == [True, True, False, True, False, False, True]

    await owner.mutation("blockedEmails:remove", {"email": "Bounce@example.com"})
    assert await editor.query("blockedEmails:check", {"email": "bounce@example.com"}) is None
    with pytest.raises(ConvexError, match="^Blocked email not found$"):
        await owner.mutation("blockedEmails:remove", {"email": "bounce@example.com"})


async def test_block_never_downgrades_but_upgrades_unengaged(owlat: Application) -> None:
    owner, _, _ = await owner_and_editor(owlat)
    await owner.mutation("blockedEmails:add", {"email": "a@example.com", "reason": "complained"})
    with pytest.raises(ConvexError, match=r"^a@example.com is already blocked \(complained\)$"):
        await owner.mutation("blockedEmails:add", {"email": "a@example.com", "reason": "manual"})
    row_id = await owner.mutation(
        "blockedEmails:add", {"email": "b@example.com", "reason": "unengaged"}
    )
    assert (
        await owner.mutation("blockedEmails:add", {"email": "b@example.com", "reason": "manual"})
        == row_id
    )
    (row,) = [r for r in await _rows(owlat, "blockedEmails") if r["_id"] == row_id]
    assert row["reason"] == "manual"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"email": "bad", "reason": "manual"}, "^Invalid email address: 'bad'$"),
        (
            {"email": "a@example.com", "reason": "manual", "notes": "x" * 5001},
            "^Notes must be at most 5000 characters$",
        ),
        (
            {"email": "a@example.com", "reason": "manual", "bounceType": "hard"},
            "^bounceType is only allowed with reason bounced$",
        ),
    ],
)
async def test_block_refuses_bad_input(
    owlat: Application, args: dict[str, Any], message: str
) -> None:
    owner, _, _ = await owner_and_editor(owlat)
    with pytest.raises(ConvexError, match=message):
        await owner.mutation("blockedEmails:add", args)
    assert await _rows(owlat, "blockedEmails") == []


async def test_editors_cannot_change_the_suppression_list(owlat: Application) -> None:
    owner, editor, _ = await owner_and_editor(owlat)
    await owner.mutation("blockedEmails:add", {"email": "a@example.com", "reason": "manual"})
    before = await _rows(owlat, "blockedEmails")
    for path, args in [
        ("blockedEmails:add", {"email": "b@example.com", "reason": "manual"}),
        ("blockedEmails:remove", {"email": "a@example.com"}),
    ]:
        with pytest.raises(ConvexError, match="^Admin access required$"):
            await editor.mutation(path, args)
    assert await _rows(owlat, "blockedEmails") == before


async def test_organization_delete_removes_its_audience(owlat: Application) -> None:
    owner, _, organization_id = await owner_and_editor(owlat)
    await owner.mutation(
        "contactProperties:create", {"key": "plan", "label": "Plan", "type": "string"}
    )
    await owner.mutation("contacts:createFromSession", {"email": "a@example.com"})
    await owner.mutation("blockedEmails:add", {"email": "a@example.com", "reason": "manual"})
    await owner.mutation("organizationSettings:update", {"postalAddress": "1 Main St"})
    await owner.mutation("organizations:remove", {"organizationId": organization_id})
    await until_organization_deleted(owlat, organization_id)
    for table in (
        "contacts",
        "contactActivities",
        "contactProperties",
        "blockedEmails",
        "organizationSettings",
    ):
        assert await _rows(owlat, table) == [], table
