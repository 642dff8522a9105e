"""segments:* and the condition language (reference §7.3, §9; nested groups, dates).

Contacts are written straight into the database (any createdAt, engagement flags, list
memberships, soft deletes); the functions under test read them through the compiled
database filter. A pure-Python evaluator below is the reference the random cross-check
compares count, listContacts and matches against.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from owlat.app.lib.segment_filters import MAX_CONDITIONS
from owlat.app.lib.session_organization import now_ms
from owlat.runtime import ConvexError
from owlat.runtime.application import Application
from owlat.runtime.subscriptions import QueryKey, SubscriptionManager, canonical_json
from owlat.runtime.testing import in_mutation, in_query
from tests.app.conftest import Caller, Site, owner_and_editor
from tests.app.test_mailing_lists import _confirm, _doi_token, _wait_for_mail
from tests.e2e.sync_harness import RawSocket
from tests.e2e.sync_messages import add, modify, mutation

DAY = 86_400_000.0
HOUR = 3_600_000.0
PROPERTIES = {"plan": "string", "score": "number", "vip": "boolean", "renewal": "date"}
BUILT_IN = {
    "email": "string",
    "firstName": "string",
    "lastName": "string",
    "source": "string",
    "language": "string",
    "timezone": "string",
    "createdAt": "date",
}
UNIT = {"minutes": 60_000.0, "hours": HOUR, "days": DAY, "weeks": 7 * DAY}
NEGATIVE = {"not_equals": "equals", "not_contains": "contains", "not_in_last": "in_last"}


@pytest.fixture
async def owlat(owlat_on_both_engines: Application) -> Application:
    """These tests run on both engines (the filters are pushed down into each one's SQL)."""
    return owlat_on_both_engines


# -- setup --------------------------------------------------------------------------------


async def _team(owlat: Application, slug: str = "acme") -> tuple[Caller, Caller, str]:
    """An owner (admin rights) and an editor of one organization with four properties."""
    owner, editor, organization_id = await owner_and_editor(owlat, slug)
    for key, kind in PROPERTIES.items():
        await owner.mutation(
            "contactProperties:create", {"key": key, "label": key.title(), "type": kind}
        )
    return owner, editor, organization_id


async def _lists(owlat: Application, organization_id: str, count: int) -> list[str]:
    async def insert(ctx: Any) -> list[str]:
        now = now_ms()
        return [
            await ctx.db.insert(
                "mailingLists",
                {
                    "organizationId": organization_id,
                    "name": f"List {number}",
                    "requireDoubleOptIn": False,
                    "memberCount": 0.0,
                    "pendingCount": 0.0,
                    "createdAt": now,
                    "updatedAt": now,
                },
            )
            for number in range(count)
        ]

    return list(await in_mutation(owlat, insert))


async def _contacts(
    owlat: Application, organization_id: str, contacts: list[dict[str, Any]]
) -> list[str]:
    """Insert contacts (`email` plus any fields; `properties` defaults to {})."""

    async def insert(ctx: Any) -> list[str]:
        now = now_ms()
        ids = []
        for fields in contacts:
            record = {
                "organizationId": organization_id,
                "source": "api",
                "properties": {},
                "createdAt": now,
                "updatedAt": now,
                **fields,
            }
            ids.append(await ctx.db.insert("contacts", record))
        return ids

    return list(await in_mutation(owlat, insert))


async def count_state(owlat: Application, segment_id: str) -> str | None:
    """The state of the segment's maintained count (segment_counts.py), None if none."""

    async def read(ctx: Any) -> Any:
        row = await (
            ctx.db.query("segmentCounts")
            .with_index("by_segment", lambda q: q.eq("segmentId", segment_id))
            .unique()
        )
        return None if row is None else row["state"]

    state: str | None = await in_query(owlat, read)
    return state


async def count_ready(owlat: Application, segment_id: str) -> None:
    """Wait until the segment's maintained count is ready."""
    async with asyncio.timeout(30):
        while True:
            if await count_state(owlat, segment_id) == "ready":
                return
            await asyncio.sleep(0.02)


def _where(*conditions: dict[str, Any], logic: str = "AND") -> dict[str, Any]:
    return {"logic": logic, "conditions": list(conditions)}


def _prop(field: str, operator: str, value: Any = None) -> dict[str, Any]:
    condition = {"kind": "contact_property", "field": field, "operator": operator}
    if value is not None:
        condition["value"] = value
    return condition


async def _emails(caller: Caller, filters: dict[str, Any]) -> set[str]:
    """The emails unsaved `filters` match (preview), checked against countFilters."""
    rows = await caller.query("segments:preview", {"filters": filters, "limit": 50})
    assert await caller.query("segments:countFilters", {"filters": filters}) == len(rows)
    return {row["email"] for row in rows}


# -- the reference evaluator ---------------------------------------------------------------


def _reference(contact: dict[str, Any], filters: dict[str, Any], now: float) -> bool:
    if contact.get("deletedAt") is not None:
        return False
    return not filters["conditions"] or _group(contact, filters, now)  # empty: everyone


def _group(contact: dict[str, Any], node: dict[str, Any], now: float) -> bool:
    results = [
        _group(contact, item, now) if "logic" in item else _condition(contact, item, now)
        for item in node["conditions"]
    ]
    return all(results) if node["logic"] == "AND" else any(results)


def _condition(contact: dict[str, Any], condition: dict[str, Any], now: float) -> bool:
    kind, operator = condition["kind"], condition["operator"]
    if kind == "email_activity":
        flag = contact.get("hasOpened" if condition["field"] == "opened" else "hasClicked")
        return (flag is True) == (operator == "is_true")
    if kind == "list_membership":
        member = condition["listId"] in contact.get("mailingListIds", [])
        return member == (operator == "equals")
    field = condition["field"]
    kind = BUILT_IN.get(field) or PROPERTIES[field]
    value = contact.get(field) if field in BUILT_IN else contact["properties"].get(field)
    if operator in NEGATIVE:
        return not _test(kind, NEGATIVE[operator], value, condition.get("value"), now)
    if operator == "not_empty":
        return not _test(kind, "is_empty", value, None, now)
    return _test(kind, operator, value, condition.get("value"), now)


def _test(kind: str, operator: str, value: Any, operand: Any, now: float) -> bool:
    if operator == "is_empty":
        return value is None or value == ""
    if operator in ("is_true", "is_false"):
        return value is (operator == "is_true")
    if kind == "string":
        if not isinstance(value, str):
            return False
        text, needle = value.lower(), operand.lower()
        return {
            "equals": text == needle,
            "contains": needle in text,
            "starts_with": text.startswith(needle),
        }[operator]
    if not isinstance(value, float):
        return False
    if operator == "in_last":
        return now - operand["amount"] * UNIT[operand["unit"]] <= value <= now
    tests: dict[str, Callable[[float, float], bool]] = {
        "equals": lambda a, b: a == b,
        "gt": lambda a, b: a > b,
        "gte": lambda a, b: a >= b,
        "lt": lambda a, b: a < b,
        "lte": lambda a, b: a <= b,
        "before": lambda a, b: a < b,
        "after": lambda a, b: a > b,
    }
    return tests[operator](value, float(operand))


# -- operators -----------------------------------------------------------------------------


async def test_string_operators_are_case_insensitive_and_missing_values_match_negations(
    owlat: Application,
) -> None:
    owner, _, organization_id = await _team(owlat)
    await _contacts(
        owlat,
        organization_id,
        [
            {"email": "ann@x.io", "firstName": "Ann", "properties": {"plan": "Pro"}},
            {"email": "anna@x.io", "firstName": "ANNA", "properties": {"plan": "pro plus"}},
            {"email": "bob@y.io", "firstName": "Bob", "properties": {"plan": "Basic"}},
            {"email": "empty@y.io", "firstName": "", "properties": {"plan": ""}},
            {"email": "none@y.io"},
            {"email": "elo@z.io", "firstName": "Élodie", "lastName": "ÇAĞLAR"},
        ],
    )
    everyone = {"ann@x.io", "anna@x.io", "bob@y.io", "empty@y.io", "none@y.io", "elo@z.io"}
    cases: list[tuple[dict[str, Any], set[str]]] = [
        (_prop("plan", "equals", "PRO"), {"ann@x.io"}),
        (_prop("plan", "not_equals", "pro"), everyone - {"ann@x.io"}),
        (_prop("plan", "contains", "PRO"), {"ann@x.io", "anna@x.io"}),
        (_prop("plan", "not_contains", "pro"), everyone - {"ann@x.io", "anna@x.io"}),
        (_prop("plan", "starts_with", "b"), {"bob@y.io"}),
        (_prop("plan", "is_empty"), {"empty@y.io", "none@y.io", "elo@z.io"}),
        (_prop("plan", "not_empty"), {"ann@x.io", "anna@x.io", "bob@y.io"}),
        (_prop("firstName", "equals", "anna"), {"anna@x.io"}),
        (_prop("firstName", "starts_with", "AN"), {"ann@x.io", "anna@x.io"}),
        (_prop("firstName", "is_empty"), {"empty@y.io", "none@y.io"}),
        (_prop("email", "contains", "@Y.IO"), {"bob@y.io", "empty@y.io", "none@y.io"}),
        (_prop("lastName", "not_equals", "smith"), everyone),
        (_prop("lastName", "equals", "smith"), set()),
        (_prop("firstName", "equals", "éLODIE"), {"elo@z.io"}),  # beyond ASCII too
        (_prop("lastName", "contains", "çağ"), {"elo@z.io"}),
        (_prop("source", "equals", "API"), everyone),
        (_prop("language", "is_empty"), everyone),
    ]
    for condition, expected in cases:
        assert await _emails(owner, _where(condition)) == expected, condition


async def test_number_and_boolean_operators_guard_missing_values(owlat: Application) -> None:
    owner, _, organization_id = await _team(owlat)
    await _contacts(
        owlat,
        organization_id,
        [
            {"email": "low@x.io", "properties": {"score": -3.0, "vip": False}},
            {"email": "mid@x.io", "properties": {"score": 5.0, "vip": True}},
            {"email": "high@x.io", "properties": {"score": 12.5}},
            {"email": "none@x.io"},
        ],
    )
    cases: list[tuple[dict[str, Any], set[str]]] = [
        (_prop("score", "equals", 5), {"mid@x.io"}),
        (_prop("score", "equals", "12.5"), {"high@x.io"}),  # a numeric text is a number
        (_prop("score", "not_equals", 5), {"low@x.io", "high@x.io", "none@x.io"}),
        (_prop("score", "gt", 5), {"high@x.io"}),
        (_prop("score", "gte", 5), {"mid@x.io", "high@x.io"}),
        (_prop("score", "lt", 5), {"low@x.io"}),  # a missing value is not less than 5
        (_prop("score", "lte", 5), {"low@x.io", "mid@x.io"}),
        (_prop("score", "lt", 100), {"low@x.io", "mid@x.io", "high@x.io"}),
        (_prop("score", "is_empty"), {"none@x.io"}),
        (_prop("score", "not_empty"), {"low@x.io", "mid@x.io", "high@x.io"}),
        (_prop("vip", "is_true"), {"mid@x.io"}),
        (_prop("vip", "is_false"), {"low@x.io"}),  # missing is not false
        (_prop("vip", "is_empty"), {"high@x.io", "none@x.io"}),
        (_prop("vip", "not_empty"), {"low@x.io", "mid@x.io"}),
    ]
    for condition, expected in cases:
        assert await _emails(owner, _where(condition)) == expected, condition


async def test_absolute_and_relative_dates(owlat: Application) -> None:
    owner, _, organization_id = await _team(owlat)
    now = now_ms()
    await _contacts(
        owlat,
        organization_id,
        [
            {"email": "new@x.io", "createdAt": now - 2 * HOUR},
            {"email": "week@x.io", "createdAt": now - 6 * DAY, "properties": {"renewal": now}},
            {"email": "month@x.io", "createdAt": now - 20 * DAY},
            {
                "email": "old@x.io",
                "createdAt": 1_577_836_800_000.0,  # 2020-01-01
                "properties": {"renewal": now + 3 * DAY},  # in the future
            },
        ],
    )
    days = {"amount": 7, "unit": "days"}
    cases: list[tuple[dict[str, Any], set[str]]] = [
        (_prop("createdAt", "in_last", days), {"new@x.io", "week@x.io"}),
        (_prop("createdAt", "not_in_last", days), {"month@x.io", "old@x.io"}),
        (_prop("createdAt", "in_last", {"amount": 3, "unit": "hours"}), {"new@x.io"}),
        (_prop("createdAt", "in_last", {"amount": 90, "unit": "minutes"}), set()),
        (
            _prop("createdAt", "in_last", {"amount": 3, "unit": "weeks"}),
            {"new@x.io", "week@x.io", "month@x.io"},
        ),
        (_prop("createdAt", "before", "2021-06-01"), {"old@x.io"}),
        (
            _prop("createdAt", "after", "2021-06-01T00:00:00Z"),
            {"new@x.io", "week@x.io", "month@x.io"},
        ),
        (_prop("createdAt", "before", now - 10 * DAY), {"month@x.io", "old@x.io"}),
        (_prop("renewal", "in_last", days), {"week@x.io"}),  # a future date is not "last"
        (_prop("renewal", "not_in_last", days), {"new@x.io", "month@x.io", "old@x.io"}),
        (_prop("renewal", "after", now + DAY), {"old@x.io"}),
        (_prop("renewal", "before", now + DAY), {"week@x.io"}),  # missing is not before
        (_prop("renewal", "is_empty"), {"new@x.io", "month@x.io"}),
    ]
    for condition, expected in cases:
        assert await _emails(owner, _where(condition)) == expected, condition


async def test_email_activity_list_membership_and_soft_deletes(owlat: Application) -> None:
    owner, _, organization_id = await _team(owlat)
    news, offers = await _lists(owlat, organization_id, 2)
    await _contacts(
        owlat,
        organization_id,
        [
            {"email": "both@x.io", "hasOpened": True, "hasClicked": True},
            {"email": "opened@x.io", "hasOpened": True, "mailingListIds": [news]},
            {"email": "quiet@x.io", "hasOpened": False, "mailingListIds": [news, offers]},
            {"email": "fresh@x.io"},
            {"email": "gone@x.io", "hasOpened": True, "mailingListIds": [news]},
        ],
    )
    gone = await in_query(
        owlat,
        lambda ctx: (
            ctx.db.query("contacts").filter(lambda q: q.eq(q.field("email"), "gone@x.io")).first()
        ),
    )
    await in_mutation(owlat, lambda ctx: ctx.db.patch(gone["_id"], {"deletedAt": now_ms()}))

    def activity(field: str, operator: str) -> dict[str, Any]:
        return {"kind": "email_activity", "field": field, "operator": operator}

    def member(list_id: str, operator: str = "equals") -> dict[str, Any]:
        return {"kind": "list_membership", "listId": list_id, "operator": operator}

    cases: list[tuple[dict[str, Any], set[str]]] = [
        (_where(activity("opened", "is_true")), {"both@x.io", "opened@x.io"}),
        (_where(activity("opened", "is_false")), {"quiet@x.io", "fresh@x.io"}),
        (_where(activity("clicked", "is_true")), {"both@x.io"}),
        (_where(member(news)), {"opened@x.io", "quiet@x.io"}),
        (_where(member(news, "not_equals")), {"both@x.io", "fresh@x.io"}),
        (_where(member(news), member(offers)), {"quiet@x.io"}),
        (
            _where(member(offers), activity("clicked", "is_true"), logic="OR"),
            {"both@x.io", "quiet@x.io"},
        ),
        # upstream's spelling of a membership condition
        (
            _where({"kind": "topic_membership", "topicId": offers, "operator": "equals"}),
            {"quiet@x.io"},
        ),
        (_where(), {"both@x.io", "opened@x.io", "quiet@x.io", "fresh@x.io"}),
        (_where(logic="OR"), {"both@x.io", "opened@x.io", "quiet@x.io", "fresh@x.io"}),
    ]
    for filters, expected in cases:
        assert await _emails(owner, filters) == expected, filters


async def test_list_membership_follows_the_mailing_lists_module(
    owlat: Application, tmp_path: Path
) -> None:
    owner, _, _ = await _team(owlat)
    news = await owner.mutation(
        "mailingLists:create", {"name": "News", "requireDoubleOptIn": False}
    )
    ann, bob = [
        await owner.mutation("contacts:createFromSession", {"email": email})
        for email in ("ann@x.io", "bob@x.io")
    ]
    member = _where({"kind": "list_membership", "listId": news, "operator": "equals"})
    segment_id = await owner.mutation("segments:create", {"name": "News", "filters": member})
    await owner.mutation("mailingLists:addContact", {"listId": news, "contactId": ann})
    await owner.mutation("mailingLists:addContact", {"listId": news, "contactId": bob})
    assert await owner.query("segments:count", {"segmentId": segment_id}) == 2
    await owner.mutation("mailingLists:removeContact", {"listId": news, "contactId": bob})
    assert await owner.query("segments:count", {"segmentId": segment_id}) == 1
    assert await owner.query("segments:matches", {"segmentId": segment_id, "contactId": ann})
    assert not await owner.query("segments:matches", {"segmentId": segment_id, "contactId": bob})
    # a double opt-in list's member counts once confirmed, not while pending
    confirm = await owner.mutation(
        "mailingLists:create", {"name": "Confirm", "requireDoubleOptIn": True}
    )
    confirmed = _where({"kind": "list_membership", "listId": confirm, "operator": "equals"})
    pending_segment = await owner.mutation(
        "segments:create", {"name": "Confirm", "filters": confirmed}
    )
    added = await owner.mutation("mailingLists:addContact", {"listId": confirm, "contactId": bob})
    assert added["outcome"] == "pending_doi"
    assert await owner.query("segments:count", {"segmentId": pending_segment}) == 0
    assert await owner.query("segments:countFilters", {"filters": confirmed}) == 0

    (mail,) = await _wait_for_mail(tmp_path, 1)
    assert (await _confirm(owlat, _doi_token(mail))).confirmed_lists == 1
    assert await owner.query("segments:count", {"segmentId": pending_segment}) == 1
    assert await owner.query("segments:countFilters", {"filters": confirmed}) == 1
    await owner.mutation("mailingLists:delete", {"listId": news})
    with pytest.raises(ConvexError, match=f'^conditions\\[0\\].listId: mailing list "{news}"'):
        await owner.query("segments:countFilters", {"filters": member})
    # the saved segment still evaluates: the deleted list's memberships are purged
    async with asyncio.timeout(10):
        while True:
            if await owner.query("segments:count", {"segmentId": segment_id}) == 0:
                break
            await asyncio.sleep(0.02)


async def test_nested_groups(owlat: Application) -> None:
    owner, _, organization_id = await _team(owlat)
    await _contacts(
        owlat,
        organization_id,
        [
            {"email": "a@x.io", "firstName": "Ann", "properties": {"plan": "pro", "score": 9.0}},
            {"email": "b@x.io", "firstName": "Ann", "properties": {"plan": "basic", "vip": True}},
            {"email": "c@x.io", "firstName": "Ann", "properties": {"plan": "basic"}},
            {"email": "d@x.io", "firstName": "Bob", "properties": {"plan": "pro", "score": 9.0}},
        ],
    )
    # firstName = ann AND (plan = pro OR (vip AND score is empty))
    filters = _where(
        _prop("firstName", "equals", "ann"),
        _where(
            _prop("plan", "equals", "pro"),
            _where(_prop("vip", "is_true"), _prop("score", "is_empty")),
            logic="OR",
        ),
    )
    assert await _emails(owner, filters) == {"a@x.io", "b@x.io"}
    # (plan = basic AND vip is empty) OR (firstName = bob AND score >= 9)
    either = _where(
        _where(_prop("plan", "equals", "basic"), _prop("vip", "is_empty")),
        _where(_prop("firstName", "equals", "bob"), _prop("score", "gte", 9)),
        logic="OR",
    )
    assert await _emails(owner, either) == {"c@x.io", "d@x.io"}


# -- validation ----------------------------------------------------------------------------


def _deep(levels: int) -> dict[str, Any]:
    node: dict[str, Any] = _where(_prop("plan", "is_empty"))
    for _ in range(levels - 1):
        node = _where(node)
    return node


@pytest.mark.parametrize(
    ("filters", "message"),
    [
        ("everyone", "^filters: must be an object"),
        ({"logic": "XOR", "conditions": []}, """^logic: must be "AND" or "OR", got 'XOR'$"""),
        ({"logic": "AND"}, "^conditions: must be a list$"),
        (
            _where(
                _prop("plan", "is_empty"),
                _prop("plan", "is_empty"),
                _where(_prop("plan", "gt", 3), logic="OR"),
            ),
            '^conditions\\[2\\].conditions\\[0\\].operator: "gt" is not valid for string '
            'property "plan"; use one of equals, ',
        ),
        (
            _where(_prop("nope", "equals", "x")),
            '^conditions\\[0\\].field: unknown property "nope"$',
        ),
        (
            _where({"kind": "sql", "field": "x"}),
            "^conditions\\[0\\].kind: must be contact_property",
        ),
        (_where(_where()), "^conditions\\[0\\].conditions: a group needs at least one condition$"),
        (_where({"logic": "OR"}), "^conditions\\[0\\].conditions: must be a list$"),
        (_deep(5), None),
        (
            _deep(6),
            "^conditions\\[0\\].conditions\\[0\\].conditions\\[0\\].conditions\\[0\\]"
            ".conditions\\[0\\]: groups may be nested at most 5 deep$",
        ),
        (_where(*[_prop("plan", "is_empty")] * MAX_CONDITIONS), None),
        (
            _where(_where(*[_prop("plan", "is_empty")] * MAX_CONDITIONS), _prop("vip", "is_true")),
            "^conditions\\[1\\]: at most 50 conditions are allowed$",
        ),
        (
            _where(_prop("plan", "equals", "")),
            '^conditions\\[0\\].value: "equals" needs a non-empty',
        ),
        (_where(_prop("plan", "contains", 3)), '^conditions\\[0\\].value: "contains" needs a'),
        (
            _where(_prop("score", "gt", "many")),
            "^conditions\\[0\\].value: must be a number, got 'many'$",
        ),
        (_where(_prop("score", "gt", True)), "^conditions\\[0\\].value: must be a number"),
        (_where(_prop("renewal", "before", "soon")), "^conditions\\[0\\].value: must be a date"),
        (
            _where(_prop("vip", "equals", True)),
            '^conditions\\[0\\].operator: "equals" is not valid for boolean',
        ),
        (
            _where(_prop("vip", "is_true", "yes")),
            '^conditions\\[0\\].value: "is_true" takes no value$',
        ),
        (
            _where(_prop("createdAt", "in_last", {"amount": 0, "unit": "days"})),
            "^conditions\\[0\\].value.amount: must be a whole number from 1 to 100000",
        ),
        (
            _where(_prop("createdAt", "in_last", {"amount": 2, "unit": "months"})),
            "^conditions\\[0\\].value.unit: must be one of minutes, hours, days, weeks",
        ),
        (_where(_prop("createdAt", "in_last", 7)), "^conditions\\[0\\].value: must be {"),
        (
            _where({"kind": "email_activity", "field": "bounced", "operator": "is_true"}),
            """^conditions\\[0\\].field: must be "opened" or "clicked", got 'bounced'$""",
        ),
        (
            _where({"kind": "list_membership", "listId": "nope", "operator": "equals"}),
            '^conditions\\[0\\].listId: mailing list "nope" not found$',
        ),
        (
            _where({"kind": "list_membership", "operator": "equals"}),
            "^conditions\\[0\\].listId: must be a mailing list id$",
        ),
    ],
)
async def test_validation_names_the_bad_part(
    owlat: Application, filters: Any, message: str | None
) -> None:
    owner, _, _ = await _team(owlat)
    args = {"name": "Segment", "filters": filters}
    if message is None:
        await owner.mutation("segments:create", args)
        assert await owner.query("segments:countFilters", {"filters": filters}) == 0
        return
    with pytest.raises(ConvexError, match=message):
        await owner.mutation("segments:create", args)
    with pytest.raises(ConvexError, match=message):
        await owner.query("segments:countFilters", {"filters": filters})
    assert await owner.query("segments:list") == []


async def test_filters_are_stored_normalized(owlat: Application) -> None:
    owner, _, organization_id = await _team(owlat)
    (news,) = await _lists(owlat, organization_id, 1)
    segment_id = await owner.mutation(
        "segments:create",
        {
            "name": "  Renewing VIPs ",
            "description": " soon ",
            "filters": _where(
                _prop("renewal", "after", "2024-05-31") | {"id": "ui-key"},
                _prop("score", "gte", "10"),
                _prop("vip", "is_true", ""),
                {"kind": "topic_membership", "topicId": news, "operator": "equals"},
                _where(_prop("createdAt", "in_last", {"amount": 2, "unit": "weeks"}), logic="OR"),
            ),
        },
    )
    segment = await owner.query("segments:get", {"segmentId": segment_id})
    assert segment["name"] == "Renewing VIPs" and segment["description"] == "soon"
    assert segment["createdBy"] == owner.user_id
    assert segment["filters"] == _where(
        _prop("renewal", "after", 1_717_113_600_000.0),
        _prop("score", "gte", 10.0),
        _prop("vip", "is_true"),
        {"kind": "list_membership", "listId": news, "operator": "equals"},
        _where(_prop("createdAt", "in_last", {"amount": 2.0, "unit": "weeks"}), logic="OR"),
    )


# -- management, permissions, tenancy ------------------------------------------------------


async def test_create_update_delete_and_unique_names(owlat: Application) -> None:
    owner, editor, _ = await _team(owlat)
    pro = await owner.mutation(
        "segments:create", {"name": "Pro", "filters": _where(_prop("plan", "equals", "pro"))}
    )
    basic = await owner.mutation("segments:create", {"name": "basic", "filters": _where()})
    assert [s["name"] for s in await editor.query("segments:list")] == ["basic", "Pro"]
    with pytest.raises(ConvexError, match='^A segment named "Pro" already exists$'):
        await owner.mutation("segments:create", {"name": " PRO ", "filters": _where()})
    with pytest.raises(ConvexError, match='^A segment named "Pro" already exists$'):
        await owner.mutation("segments:update", {"segmentId": basic, "name": "pro"})
    with pytest.raises(ConvexError, match="^Segment name must be 1 to 200 characters$"):
        await owner.mutation("segments:create", {"name": "x" * 201, "filters": _where()})
    with pytest.raises(ConvexError, match="^Segment name must be 1 to 200 characters$"):
        await owner.mutation("segments:create", {"name": "  ", "filters": _where()})
    before = await owner.query("segments:get", {"segmentId": pro})
    with pytest.raises(ConvexError, match="^conditions\\[0\\].field: unknown property"):
        await owner.mutation(
            "segments:update",
            {"segmentId": pro, "name": "Renamed", "filters": _where(_prop("x", "is_empty"))},
        )
    assert await owner.query("segments:get", {"segmentId": pro}) == before  # nothing lost
    updated = await owner.mutation(
        "segments:update",
        {"segmentId": pro, "name": "Pro (renamed)", "description": "paying", "filters": _where()},
    )
    assert updated["name"] == "Pro (renamed)" and updated["description"] == "paying"
    assert updated["filters"] == _where() and updated["updatedAt"] >= before["updatedAt"]
    cleared = await owner.mutation("segments:update", {"segmentId": pro, "description": None})
    assert "description" not in cleared
    same_name = await owner.mutation("segments:update", {"segmentId": pro, "name": "PRO (RENAMED)"})
    assert same_name["name"] == "PRO (RENAMED)"  # its own name, in other case, is free
    await owner.mutation("segments:delete", {"segmentId": pro})
    assert await owner.query("segments:get", {"segmentId": pro}) is None
    with pytest.raises(ConvexError, match="^Segment not found$"):
        await owner.query("segments:count", {"segmentId": pro})
    with pytest.raises(ConvexError, match="^Segment not found$"):
        await owner.mutation("segments:delete", {"segmentId": pro})


async def test_editors_read_but_do_not_write(owlat: Application) -> None:
    owner, editor, organization_id = await _team(owlat)
    (contact,) = await _contacts(owlat, organization_id, [{"email": "a@x.io"}])
    segment_id = await owner.mutation("segments:create", {"name": "All", "filters": _where()})
    for path, args in [
        ("segments:create", {"name": "Mine", "filters": _where()}),
        ("segments:update", {"segmentId": segment_id, "name": "Mine"}),
        ("segments:delete", {"segmentId": segment_id}),
    ]:
        with pytest.raises(ConvexError, match="^Admin access required$"):
            await editor.mutation(path, args)
    assert [s["name"] for s in await editor.query("segments:list")] == ["All"]
    assert await editor.query("segments:count", {"segmentId": segment_id}) == 1
    assert await editor.query("segments:matches", {"segmentId": segment_id, "contactId": contact})
    page = await editor.query(
        "segments:listContacts",
        {"segmentId": segment_id, "paginationOpts": {"numItems": 5, "cursor": None}},
    )
    assert [c["_id"] for c in page["page"]] == [contact] and "nameKey" not in page["page"][0]
    assert len(await editor.query("segments:preview", {"segmentId": segment_id})) == 1


async def test_another_organizations_lists_segments_and_contacts_are_refused(
    owlat: Application,
) -> None:
    owner, _, organization_id = await _team(owlat)
    other, _, other_id = await _team(owlat, "globex")
    (their_list,) = await _lists(owlat, other_id, 1)
    (their_contact,) = await _contacts(
        owlat, other_id, [{"email": "theirs@x.io", "mailingListIds": [their_list]}]
    )
    (mine,) = await _contacts(owlat, organization_id, [{"email": "mine@x.io"}])
    their_segment = await other.mutation("segments:create", {"name": "Theirs", "filters": _where()})
    my_segment = await owner.mutation("segments:create", {"name": "Mine", "filters": _where()})
    member = _where({"kind": "list_membership", "listId": their_list, "operator": "equals"})
    message = f'^conditions\\[0\\].listId: mailing list "{their_list}" not found$'
    with pytest.raises(ConvexError, match=message):
        await owner.mutation("segments:create", {"name": "Spy", "filters": member})
    with pytest.raises(ConvexError, match=message):
        await owner.query("segments:countFilters", {"filters": member})
    with pytest.raises(ConvexError, match=message):
        await owner.query("segments:preview", {"filters": member})
    with pytest.raises(ConvexError, match=message):
        await owner.mutation("segments:update", {"segmentId": my_segment, "filters": member})
    assert await owner.query("segments:get", {"segmentId": their_segment}) is None
    for path, args in [
        ("segments:count", {"segmentId": their_segment}),
        ("segments:preview", {"segmentId": their_segment}),
        ("segments:matches", {"segmentId": their_segment, "contactId": mine}),
        (
            "segments:listContacts",
            {"segmentId": their_segment, "paginationOpts": {"numItems": 5, "cursor": None}},
        ),
    ]:
        with pytest.raises(ConvexError, match="^Segment not found$"):
            await owner.query(path, args)
    with pytest.raises(ConvexError, match="^Segment not found$"):
        await owner.mutation("segments:update", {"segmentId": their_segment, "name": "Mine now"})
    with pytest.raises(ConvexError, match="^Contact not found$"):
        await owner.query("segments:matches", {"segmentId": my_segment, "contactId": their_contact})
    assert await owner.query("segments:count", {"segmentId": my_segment}) == 1
    assert await other.query("segments:count", {"segmentId": their_segment}) == 1
    assert [s["name"] for s in await owner.query("segments:list")] == ["Mine"]


async def test_preview_arguments_and_a_segment_broken_by_a_deleted_property(
    owlat: Application,
) -> None:
    owner, _, organization_id = await _team(owlat)
    await _contacts(
        owlat, organization_id, [{"email": f"c{n}@x.io", "createdAt": float(n)} for n in range(60)]
    )
    everyone = _where()
    rows = await owner.query("segments:preview", {"filters": everyone, "limit": 50})
    assert [r["email"] for r in rows] == [f"c{n}@x.io" for n in range(59, 9, -1)]  # newest first
    assert len(await owner.query("segments:preview", {"filters": everyone})) == 10
    for limit in (0, 51, 2.5):
        with pytest.raises(ConvexError, match="^limit must be a whole number from 1 to 50$"):
            await owner.query("segments:preview", {"filters": everyone, "limit": limit})
    segment_id = await owner.mutation(
        "segments:create", {"name": "Plan", "filters": _where(_prop("plan", "is_empty"))}
    )
    for args in ({}, {"segmentId": segment_id, "filters": everyone}):
        with pytest.raises(ConvexError, match="^Pass either segmentId or filters$"):
            await owner.query("segments:preview", args)
    assert await owner.query("segments:count", {"segmentId": segment_id}) == 60
    properties = await owner.query("contactProperties:listFromSession")
    plan = next(p for p in properties if p["key"] == "plan")
    await owner.mutation("contactProperties:remove", {"propertyId": plan["_id"]})
    with pytest.raises(
        ConvexError,
        match='^Segment "Plan" can no longer be evaluated \\(conditions\\[0\\].field: unknown '
        'property "plan"\\): edit its filters$',
    ):
        await owner.query("segments:count", {"segmentId": segment_id})


# -- the random cross-check ----------------------------------------------------------------


def _random_contact(rng: random.Random, now: float, lists: list[str], n: int) -> dict[str, Any]:
    def maybe(value: Any) -> Any:
        return value if rng.random() < 0.7 else None

    properties = {
        "plan": maybe(rng.choice(["Pro", "pro plus", "PRO", "basic", "Basic trial", ""])),
        "score": maybe(float(rng.choice([-5, 0, 5, 10, 50.5, 99]))),
        "vip": maybe(rng.choice([True, False])),
        "renewal": maybe(now + (rng.randint(-40, 40) + 0.5) * DAY),
    }
    contact: dict[str, Any] = {
        "email": f"{rng.choice(['ann', 'bob', 'cy'])}{n}@{rng.choice(['x.io', 'y.org'])}",
        "firstName": maybe(rng.choice(["Ann", "ANNA", "bob", "Cy", ""])),
        "language": maybe(rng.choice(["en", "de", "EN"])),
        "properties": {k: val for k, val in properties.items() if val is not None},
        "createdAt": now - (rng.randint(0, 60) + 0.5) * DAY,
        "hasOpened": maybe(rng.choice([True, False])),
        "hasClicked": maybe(rng.choice([True, False])),
        "mailingListIds": maybe(rng.sample(lists, rng.randint(0, len(lists)))),
        "deletedAt": now if rng.random() < 0.1 else None,
    }
    return {k: val for k, val in contact.items() if val is not None}


def _random_condition(
    rng: random.Random, now: float, lists: list[str], depth: int
) -> dict[str, Any]:
    choice = rng.randrange(9 if depth < 5 else 7)
    if choice == 0:
        field = rng.choice(["plan", "firstName", "email", "language"])
        operator = rng.choice(
            [
                *("equals", "not_equals", "contains", "not_contains", "starts_with"),
                *("is_empty", "not_empty"),
            ]
        )
        value = rng.choice(["ann", "ANN", "pro", "Pro plus", "basic", "EN", "x.io", "b"])
        return _prop(field, operator, None if "empty" in operator else value)
    if choice == 1:
        operator = rng.choice(["equals", "not_equals", "gt", "gte", "lt", "lte", "is_empty"])
        return _prop(
            "score", operator, None if operator == "is_empty" else rng.choice([0, 5, 50.5])
        )
    if choice == 2:
        return _prop("vip", rng.choice(["is_true", "is_false", "is_empty", "not_empty"]))
    if choice in (3, 4):
        field = rng.choice(["renewal", "createdAt"])
        operator = rng.choice(["before", "after", "in_last", "not_in_last", "not_empty"])
        if operator in ("before", "after"):
            return _prop(field, operator, now + rng.randint(-30, 30) * DAY)
        if operator == "not_empty":
            return _prop(field, operator)
        period = {"amount": rng.randint(1, 5), "unit": rng.choice(["days", "weeks"])}
        return _prop(field, operator, period)
    if choice == 5:
        return {
            "kind": "email_activity",
            "field": rng.choice(["opened", "clicked"]),
            "operator": rng.choice(["is_true", "is_false"]),
        }
    if choice == 6:
        return {
            "kind": "list_membership",
            "listId": rng.choice(lists),
            "operator": rng.choice(["equals", "not_equals"]),
        }
    return _random_group(rng, now, lists, depth + 1)


def _random_group(
    rng: random.Random, now: float, lists: list[str], depth: int = 1
) -> dict[str, Any]:
    size = rng.randint(0 if depth == 1 else 1, 4 if depth < 3 else 2)
    conditions = [
        _random_group(rng, now, lists, depth + 1)
        if depth < 4 and rng.random() < 0.2
        else _random_condition(rng, now, lists, depth)
        for _ in range(size)
    ]
    return _where(*conditions, logic=rng.choice(["AND", "OR"]))


async def test_count_pages_and_matches_agree_with_a_reference_evaluator(
    owlat: Application,
) -> None:
    owner, editor, organization_id = await _team(owlat)
    rng = random.Random(20261125)
    now = now_ms()
    lists = await _lists(owlat, organization_id, 3)
    contacts = [_random_contact(rng, now, lists, n) for n in range(200)]
    ids = await _contacts(owlat, organization_id, contacts)
    by_id = dict(zip(ids, contacts, strict=True))
    segment_id = await owner.mutation("segments:create", {"name": "Random", "filters": _where()})
    sizes = []
    for round_number in range(30):
        filters = _random_group(rng, now, lists)
        await owner.mutation("segments:update", {"segmentId": segment_id, "filters": filters})
        expected = {i for i, contact in by_id.items() if _reference(contact, filters, now)}
        counted = await editor.query("segments:count", {"segmentId": segment_id})
        paged: list[str] = []
        cursor = None
        while True:
            page = await editor.query(
                "segments:listContacts",
                {"segmentId": segment_id, "paginationOpts": {"numItems": 37, "cursor": cursor}},
            )
            paged += [c["_id"] for c in page["page"]]
            if page["isDone"]:
                break
            cursor = page["continueCursor"]
        assert counted == len(paged) == len(set(paged)) == len(expected), filters
        assert set(paged) == expected, filters
        if round_number < 3:
            matching = {
                i
                for i in ids
                if await editor.query("segments:matches", {"segmentId": segment_id, "contactId": i})
            }
            assert matching == expected, filters
        sizes.append(len(expected))
    # the random filters are not trivial: they select very different parts of the audience
    assert min(sizes) < 40 and max(sizes) > 150 and len(set(sizes)) > 10, sizes


# -- reactivity ------------------------------------------------------------------------------


class _Recorder:
    def __init__(self) -> None:
        self.wakes = 0

    def query_invalidated(self) -> None:
        self.wakes += 1


async def test_a_subscribed_count_is_invalidated_by_contact_changes_only(
    owlat: Application,
) -> None:
    owner, _, _ = await _team(owlat)
    other, _, _ = await _team(owlat, "globex")
    segment_id = await owner.mutation(
        "segments:create", {"name": "Pro", "filters": _where(_prop("plan", "equals", "pro"))}
    )
    await count_ready(owlat, segment_id)  # its backfill's commits would wake the query too
    manager = SubscriptionManager(owlat)
    manager.catch_up()
    key = QueryKey(
        "segments:count",
        canonical_json({"segmentId": segment_id}),
        identity=canonical_json(owner.identity),
    )
    subscriber = _Recorder()
    manager.subscribe(key, subscriber)

    async def current() -> Any:
        async with owlat.snapshot() as snapshot:
            result = await manager.result_at(snapshot, key)
        assert result.error is None, result.error
        return result.value

    try:
        assert await current() == 0
        await other.mutation(  # another organization's contact: not our query's business
            "contacts:createFromSession", {"email": "p@globex.io", "properties": {"plan": "pro"}}
        )
        assert subscriber.wakes == 0
        contact_id = await owner.mutation(
            "contacts:createFromSession", {"email": "p@acme.io", "properties": {"plan": "Pro"}}
        )
        assert subscriber.wakes == 1 and await current() == 1
        await owner.mutation(
            "contacts:update", {"contactId": contact_id, "properties": {"plan": "basic"}}
        )
        assert subscriber.wakes == 2 and await current() == 0
        await owner.mutation(
            "contacts:update", {"contactId": contact_id, "properties": {"plan": "PRO"}}
        )
        assert await current() == 1
        await owner.mutation("contacts:delete", {"contactId": contact_id})
        assert await current() == 0
    finally:
        manager.unsubscribe(key, subscriber)
        manager.close()


async def test_a_count_subscribed_over_the_sync_socket_follows_contact_changes(
    site: Site,
) -> None:
    async with site.browser() as browser:
        credentials = {"email": "live@example.com", "password": "live-password", "name": "Live"}
        assert (await browser.post("/sign-up/email", json=credentials)).status_code == 200
        token = (await browser.get("/token")).json()["token"]
    socket_url = site.url.replace("http://", "ws://") + "/api/sync"
    async with RawSocket.open(socket_url) as socket:
        await socket.send(
            {"type": "Authenticate", "baseVersion": 0, "tokenType": "User", "value": token}
        )
        await socket.receive()
        requests = iter(range(100))

        counts: list[Any] = []  # query updates seen while waiting for mutation answers

        def note(message: dict[str, Any]) -> None:
            if message["type"] == "Transition":
                for update in message["modifications"]:
                    assert update["type"] == "QueryUpdated", update
                    counts.append(update["value"])

        async def call(path: str, args: dict[str, Any]) -> Any:
            request_id = next(requests)
            await socket.send(mutation(request_id, path, args))
            while True:
                message = await socket.receive()
                if message["type"] == "MutationResponse" and message["requestId"] == request_id:
                    assert message["success"] is True, message
                    return message["result"]
                note(message)

        await call("organizations:create", {"name": "Live", "slug": "live"})
        await call("contactProperties:create", {"key": "plan", "label": "Plan", "type": "string"})
        segment_id = await call(
            "segments:create", {"name": "Pro", "filters": _where(_prop("plan", "equals", "pro"))}
        )
        await socket.send(modify(0, 1, add(0, "segments:count", {"segmentId": segment_id})))

        async def next_count() -> Any:
            while not counts:
                note(await socket.receive(within=2.0))
            return counts.pop(0)

        assert await next_count() == 0
        contact_id = await call(
            "contacts:createFromSession", {"email": "p@live.io", "properties": {"plan": "PRO"}}
        )
        assert await next_count() == 1
        await call("contacts:delete", {"contactId": contact_id})
        assert await next_count() == 0
