"""Maintained segment counts (segment_counts.py): exact through every write path, while
the backfill runs and after, compared with a scan and with the reference evaluator."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest

from owlat.app import segment_counts
from owlat.runtime import ConvexError
from owlat.runtime.application import Application
from owlat.runtime.functions import FunctionKind
from owlat.runtime.testing import in_mutation, in_query
from tests.app.conftest import Caller
from tests.app.test_segments import (
    _contacts,
    _lists,
    _prop,
    _reference,
    _team,
    _where,
    count_ready,
    count_state,
)

PRO_HIGH = _where(_prop("plan", "equals", "pro"), _prop("score", "gte", 50))


@pytest.fixture
async def owlat(owlat_on_both_engines: Application) -> Application:
    """These tests run on both engines (the filters are pushed down into each one's SQL)."""
    return owlat_on_both_engines


async def _stored(owlat: Application, segment_id: str) -> int | None:
    async def read(ctx: Any) -> Any:
        return await segment_counts.stored_count(ctx, segment_id)

    stored: int | None = await in_query(owlat, read)
    return stored


async def _all_contacts(owlat: Application, organization_id: str) -> list[dict[str, Any]]:
    async def read(ctx: Any) -> Any:
        rows = (
            await ctx.db.query("contacts")
            .with_index("by_org", lambda q: q.eq("organizationId", organization_id))
            .collect()
        )
        return [dict(row) for row in rows]

    contacts: list[dict[str, Any]] = await in_query(owlat, read)
    return contacts


async def _expected(owlat: Application, organization_id: str, filters: Any) -> int:
    contacts = await _all_contacts(owlat, organization_id)
    return sum(_reference(contact, filters, 0) for contact in contacts)


async def _check(
    owlat: Application,
    owner: Caller,
    organization_id: str,
    segment_id: str,
    filters: Any,
    *,
    scan: bool = True,
) -> int:
    """The maintained count equals the reference evaluator and (`scan`) the database's
    scan of the same filters; returns it."""
    stored = await _stored(owlat, segment_id)
    expected = await _expected(owlat, organization_id, filters)
    assert stored == expected
    if scan:
        assert await owner.query("segments:countFilters", {"filters": filters}) == expected
    assert await owner.query("segments:count", {"segmentId": segment_id}) == expected
    return expected


async def _fold(owlat: Application) -> int:
    result = await owlat.run(FunctionKind.MUTATION, "segmentCounts:fold", {}, internal=True)
    return int(result.value)


def _people(count: int, seed: int) -> list[dict[str, Any]]:
    """Contacts with random plans and scores (a fifth without a score)."""
    rng = random.Random(seed)
    people = []
    for n in range(count):
        properties: dict[str, Any] = {"plan": rng.choice(["pro", "free", "PRO"])}
        if rng.random() > 0.2:
            properties["score"] = float(rng.randrange(100))
        people.append({"email": f"p{seed}-{n}@x.io", "properties": properties})
    return people


async def test_the_count_follows_every_write_path(owlat: Application) -> None:
    owner, _, organization_id = await _team(owlat)
    (list_id,) = await _lists(owlat, organization_id, 1)
    ids = await _contacts(owlat, organization_id, _people(40, 1))
    filters = _where(
        *PRO_HIGH["conditions"],
        {"kind": "list_membership", "listId": list_id, "operator": "not_equals"},
    )
    segment_id = await owner.mutation("segments:create", {"name": "Pro", "filters": filters})
    await count_ready(owlat, segment_id)
    assert await _check(owlat, owner, organization_id, segment_id, filters) > 0

    created = await owner.mutation(
        "contacts:createFromSession",
        {"email": "new@x.io", "properties": {"plan": "Pro", "score": 77}},
    )
    await _check(owlat, owner, organization_id, segment_id, filters)
    for contact_id in ids[:10]:
        await owner.mutation(
            "contacts:update", {"contactId": contact_id, "properties": {"score": 99, "plan": "pro"}}
        )
    await _check(owlat, owner, organization_id, segment_id, filters)
    await owner.mutation("mailingLists:addContact", {"listId": list_id, "contactId": ids[0]})
    await owner.mutation("mailingLists:addContact", {"listId": list_id, "contactId": created})
    await _check(owlat, owner, organization_id, segment_id, filters)
    await owner.mutation("mailingLists:removeContact", {"listId": list_id, "contactId": ids[0]})
    await owner.mutation("contacts:delete", {"contactId": ids[1]})
    await owner.mutation("contacts:hardDelete", {"contactId": ids[2]})
    await owner.mutation("contacts:bulkDelete", {"contactIds": ids[3:6]})
    await _check(owlat, owner, organization_id, segment_id, filters)
    await owner.mutation("mailingLists:delete", {"listId": list_id})
    async with asyncio.timeout(30):  # the list's memberships go in scheduled batches
        while True:
            contacts = await _all_contacts(owlat, organization_id)
            if not any(contact.get("mailingListIds") for contact in contacts):
                break
            await asyncio.sleep(0.02)
    # the list is gone, so unsaved filters naming it are refused: no scan to compare with
    await _check(owlat, owner, organization_id, segment_id, filters, scan=False)

    # the recorded changes fold into the base; the value does not move
    before = await _stored(owlat, segment_id)
    assert await _fold(owlat) > 0
    assert await _fold(owlat) == 0
    assert await _stored(owlat, segment_id) == before


async def test_writes_while_the_backfill_runs_are_counted_once(
    owlat: Application, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(segment_counts, "BACKFILL_BATCH", 7)
    owner, _, organization_id = await _team(owlat)
    ids = await _contacts(owlat, organization_id, _people(120, 2))
    segment_id = await owner.mutation("segments:create", {"name": "Pro", "filters": PRO_HIGH})
    rng = random.Random(3)
    steps = 0
    while await count_state(owlat, segment_id) != "ready":
        steps += 1
        choice = rng.random()
        if choice < 0.4:  # old contacts, on both sides of the backfill's cursor
            contact_id = rng.choice(ids)
            properties = {"plan": rng.choice(["pro", "free"]), "score": rng.randrange(100)}
            await owner.mutation(
                "contacts:update", {"contactId": contact_id, "properties": properties}
            )
        elif choice < 0.8:
            ids += await _contacts(owlat, organization_id, _people(3, 1000 + steps))
        elif ids:
            await owner.mutation(
                "contacts:hardDelete", {"contactId": ids.pop(rng.randrange(len(ids)))}
            )
        await asyncio.sleep(0)
    assert steps > 5  # the writes really did overlap the backfill
    await _check(owlat, owner, organization_id, segment_id, PRO_HIGH)


async def test_changed_filters_count_again_and_delete_removes_the_count(
    owlat: Application,
) -> None:
    owner, _, organization_id = await _team(owlat)
    await _contacts(owlat, organization_id, _people(30, 4))
    segment_id = await owner.mutation("segments:create", {"name": "Pro", "filters": PRO_HIGH})
    await count_ready(owlat, segment_id)
    free = _where(_prop("plan", "equals", "free"))
    await owner.mutation("segments:update", {"segmentId": segment_id, "filters": free})
    await count_ready(owlat, segment_id)
    await _check(owlat, owner, organization_id, segment_id, free)
    await owner.mutation("segments:update", {"segmentId": segment_id, "name": "Free"})
    assert await count_state(owlat, segment_id) == "ready"  # a rename keeps the count
    await owner.mutation("segments:delete", {"segmentId": segment_id})
    assert await count_state(owlat, segment_id) is None

    async def leftovers(ctx: Any) -> int:
        return len(await ctx.db.query("segmentCountTotals").collect())

    assert await in_query(owlat, leftovers) == 0


async def test_relative_dates_are_counted_by_scanning(owlat: Application) -> None:
    owner, _, organization_id = await _team(owlat)
    await _contacts(owlat, organization_id, _people(5, 5))
    recent = _where(_prop("createdAt", "in_last", {"amount": 1, "unit": "days"}))
    segment_id = await owner.mutation("segments:create", {"name": "New", "filters": recent})
    assert await count_state(owlat, segment_id) is None
    assert await owner.query("segments:count", {"segmentId": segment_id}) == 5


async def test_a_property_removed_and_created_again_is_counted_afresh(owlat: Application) -> None:
    owner, _, organization_id = await _team(owlat)
    await _contacts(owlat, organization_id, _people(25, 6))
    segment_id = await owner.mutation("segments:create", {"name": "Pro", "filters": PRO_HIGH})
    await count_ready(owlat, segment_id)
    properties = await owner.query("contactProperties:listFromSession", {})
    score = next(p for p in properties if p["key"] == "score")
    await owner.mutation("contactProperties:remove", {"propertyId": score["_id"]})
    with pytest.raises(ConvexError, match="can no longer be evaluated"):
        await owner.query("segments:count", {"segmentId": segment_id})
    await owner.mutation(
        "contactProperties:create", {"key": "score", "label": "Score", "type": "number"}
    )
    await count_ready(owlat, segment_id)
    assert await _check(owlat, owner, organization_id, segment_id, PRO_HIGH) == 0
    await _contacts(
        owlat, organization_id, [{"email": "back@x.io", "properties": {"plan": "pro", "score": 60}}]
    )
    assert await _check(owlat, owner, organization_id, segment_id, PRO_HIGH) == 1


def test_a_backfill_batch_settles_recorded_changes_by_where_their_contact_was() -> None:
    """Counted region before the batch: created >= 10; the batch counts [5, 10)."""
    deltas = [
        {"id": "at-old-cursor", "contactCreated": 10.0, "delta": 1},
        {"id": "newer", "contactCreated": 12.0, "delta": -1},
        {"id": "newer-2", "contactCreated": 30.0, "delta": 1},
        {"id": "in-batch", "contactCreated": 7.0, "delta": 1},
        {"id": "at-new-cursor", "contactCreated": 5.0, "delta": -1},
        {"id": "not-reached", "contactCreated": 4.0, "delta": 1},
    ]
    applied, done = segment_counts._settle(deltas, 10.0, 5.0)
    assert applied == 1
    assert [d["id"] for d in done] == [
        "at-old-cursor",
        "newer",
        "newer-2",
        "in-batch",
        "at-new-cursor",
    ]
    first_batch = segment_counts._settle(deltas, float("inf"), 5.0)
    assert first_batch == (0, done)


async def test_fold_walks_every_count_in_small_steps(
    owlat: Application, monkeypatch: pytest.MonkeyPatch
) -> None:
    owner, _, organization_id = await _team(owlat)
    await _contacts(owlat, organization_id, _people(10, 7))
    filters = [PRO_HIGH, _where(_prop("plan", "equals", "free")), _where(_prop("score", "lt", 30))]
    segments = []
    for number, tree in enumerate(filters):
        segments.append(
            await owner.mutation("segments:create", {"name": f"S{number}", "filters": tree})
        )
    for segment_id in segments:
        await count_ready(owlat, segment_id)
    for step in range(6):  # one recorded change row per transaction and count
        await _contacts(owlat, organization_id, _people(4, 100 + step))

    async def pending(ctx: Any) -> int:
        return len(await ctx.db.query("segmentCountDeltas").collect())

    assert await in_query(owlat, pending) >= 6
    monkeypatch.setattr(segment_counts, "FOLD_BATCH", 2)
    monkeypatch.setattr(segment_counts, "FOLD_COUNTS", 1)
    assert 0 < await _fold(owlat) <= 2  # the rest follows in scheduled steps
    async with asyncio.timeout(30):
        while True:
            if await in_query(owlat, pending) == 0:
                break
            await asyncio.sleep(0.02)
    for segment_id, tree in zip(segments, filters, strict=True):
        await _check(owlat, owner, organization_id, segment_id, tree)


async def test_a_stalled_backfill_is_resumed(owlat: Application) -> None:
    owner, _, organization_id = await _team(owlat)
    await _contacts(owlat, organization_id, _people(15, 8))
    segment_id = await owner.mutation("segments:create", {"name": "Pro", "filters": PRO_HIGH})
    await count_ready(owlat, segment_id)

    async def lose_the_backfill(ctx: Any) -> None:  # as if its job had failed at the start
        row = await (
            ctx.db.query("segmentCounts")
            .with_index("by_segment", lambda q: q.eq("segmentId", segment_id))
            .unique()
        )
        await ctx.db.patch(row["_id"], {"state": "counting"})
        totals = await (
            ctx.db.query("segmentCountTotals")
            .with_index("by_count", lambda q: q.eq("countId", row["_id"]))
            .unique()
        )
        await ctx.db.patch(totals["_id"], {"base": 0, "updatedAt": 0})

    await in_mutation(owlat, lose_the_backfill)

    async def resume() -> int:
        result = await owlat.run(
            FunctionKind.MUTATION, "segmentCounts:resumeBackfills", {}, internal=True
        )
        return int(result.value)

    assert await resume() == 1
    assert await resume() == 0  # it just moved
    await count_ready(owlat, segment_id)
    await _check(owlat, owner, organization_id, segment_id, PRO_HIGH)
