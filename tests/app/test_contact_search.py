"""contacts:listFromSession with a search: index prefix ranges (lib/contact_search.py)."""

from __future__ import annotations

from typing import Any

import pytest

from owlat.runtime import ConvexError
from owlat.runtime.application import Application
from tests.app.conftest import Caller, signed_in, with_organization


@pytest.fixture
async def owlat(owlat_on_both_engines: Application) -> Application:
    """These tests run on SQLite and PostgreSQL."""
    return owlat_on_both_engines


PEOPLE = [
    ("anna@example.com", "Zoe", "Smith"),  # email match "an"
    ("zz@example.com", "Anna", "Karenina"),  # full-name match "an"
    ("yy@example.com", "Bob", "Anders"),  # last-name match "an"
    ("andy@example.com", "Andy", "Anderson"),  # all three: listed once, as an email match
    ("xx@example.com", "Xavier", None),  # no match
    ("anton@example.com", None, None),  # email match
]


async def _people(owlat: Application) -> Caller:
    owner = await signed_in(owlat, "owner@example.com")
    await with_organization(owner, "acme")
    for email, first, last in PEOPLE:
        args: dict[str, Any] = {"email": email}
        if first:
            args["firstName"] = first
        if last:
            args["lastName"] = last
        await owner.mutation("contacts:createFromSession", args)
    other = await signed_in(owlat, "other@example.com")
    await with_organization(other, "other")
    await other.mutation("contacts:createFromSession", {"email": "anna2@example.com"})
    return owner


async def _search(caller: Caller, term: str, size: int) -> tuple[list[str], int]:
    """Every page of a search; the emails and the number of pages."""
    emails: list[str] = []
    cursor = None
    pages = 0
    while True:
        page = await caller.query(
            "contacts:listFromSession",
            {"paginationOpts": {"numItems": size, "cursor": cursor}, "search": term},
        )
        pages += 1
        assert len(page["page"]) <= size
        emails += [c["email"] for c in page["page"]]
        if page["isDone"]:
            return emails, pages
        cursor = page["continueCursor"]


EXPECTED = [
    "andy@example.com",
    "anna@example.com",
    "anton@example.com",
    "zz@example.com",
    "yy@example.com",
]


@pytest.mark.parametrize("size", [1, 2, 3, 5, 100])
async def test_prefix_search_pages_without_duplicates(owlat: Application, size: int) -> None:
    owner = await _people(owlat)
    emails, pages = await _search(owner, " AN ", size)
    assert emails == EXPECTED
    assert pages in (-(-len(EXPECTED) // size), -(-len(EXPECTED) // size) + 1)


async def test_each_field_is_searched(owlat: Application) -> None:
    owner = await _people(owlat)
    assert (await _search(owner, "anna@", 10))[0] == ["anna@example.com"]
    assert (await _search(owner, "anna k", 10))[0] == ["zz@example.com"]
    # last names in order: "anders" < "anderson"
    assert (await _search(owner, "ANDERS", 10))[0] == ["yy@example.com", "andy@example.com"]
    assert (await _search(owner, "karen", 10))[0] == ["zz@example.com"]
    assert (await _search(owner, "nobody", 10))[0] == []


async def test_deleted_contacts_are_not_found(owlat: Application) -> None:
    owner = await _people(owlat)
    page = await owner.query(
        "contacts:listFromSession",
        {"paginationOpts": {"numItems": 10, "cursor": None}, "search": "anna@"},
    )
    await owner.mutation("contacts:delete", {"contactId": page["page"][0]["_id"]})
    assert (await _search(owner, "an", 2))[0] == [e for e in EXPECTED if e != "anna@example.com"]


async def test_end_cursor_keeps_a_page_stable(owlat: Application) -> None:
    owner = await _people(owlat)
    first = await owner.query(
        "contacts:listFromSession",
        {"paginationOpts": {"numItems": 4, "cursor": None}, "search": "an"},
    )
    assert [c["email"] for c in first["page"]] == EXPECTED[:4]
    await owner.mutation("contacts:createFromSession", {"email": "anb@example.com"})
    again = await owner.query(
        "contacts:listFromSession",
        {
            "paginationOpts": {
                "numItems": 4,
                "cursor": None,
                "endCursor": first["continueCursor"],
            },
            "search": "an",
        },
    )
    assert [c["email"] for c in again["page"]] == [
        "anb@example.com",
        "andy@example.com",
        "anna@example.com",
        "anton@example.com",
        "zz@example.com",
    ]
    with pytest.raises(ConvexError, match="^Invalid pagination cursor 'nonsense'$"):
        await owner.query(
            "contacts:listFromSession",
            {"paginationOpts": {"numItems": 4, "cursor": "nonsense"}, "search": "an"},
        )
