"""Removing a property clears its values in batches, whatever the audience size."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from owlat.app.contact_properties import PURGE_BATCH
from owlat.runtime.application import Application
from owlat.runtime.errors import ConvexError
from owlat.runtime.testing import in_mutation, in_query
from tests.app.conftest import signed_in, with_organization


@pytest.fixture
async def owlat(owlat_on_both_engines: Application) -> Application:
    """These tests run on SQLite and PostgreSQL."""
    return owlat_on_both_engines


CONTACTS = 2 * PURGE_BATCH + 37


async def test_removal_runs_in_batches_and_frees_the_key_at_the_end(owlat: Application) -> None:
    owner = await signed_in(owlat, "owner@example.com")
    organization_id = await with_organization(owner, "acme")
    plan = await owner.mutation(
        "contactProperties:create", {"key": "plan", "label": "Plan", "type": "string"}
    )
    await owner.mutation(
        "contactProperties:create", {"key": "age", "label": "Age", "type": "number"}
    )

    async def fill(ctx: Any) -> None:
        for n in range(CONTACTS):
            properties: dict[str, Any] = {"age": float(n)}
            if n % 10:
                properties["plan"] = "pro"
            await ctx.db.insert(
                "contacts",
                {
                    "organizationId": organization_id,
                    "email": f"c{n}@example.com",
                    "source": "api",
                    "properties": properties,
                    "createdAt": 1.0,
                    "updatedAt": 1.0,
                },
            )

    await in_mutation(owlat, fill)
    holders = CONTACTS - len(range(0, CONTACTS, 10))
    assert await owner.mutation("contactProperties:remove", {"propertyId": plan}) == PURGE_BATCH
    listed = await owner.query("contactProperties:listFromSession")
    assert [p["key"] for p in listed] == ["age"]  # hidden at once
    with pytest.raises(ConvexError, match='^Property "plan" is still being removed'):
        await owner.mutation(
            "contactProperties:create", {"key": "plan", "label": "Plan", "type": "number"}
        )

    async def remaining(ctx: Any) -> tuple[int, int, bool]:
        contacts = await ctx.db.query("contacts").collect()
        definition = await ctx.db.get(plan)
        return (
            sum(1 for c in contacts if "plan" in c["properties"]),
            sum(1 for c in contacts if "age" in c["properties"]),
            definition is not None,
        )

    async with asyncio.timeout(30):
        while (state := await in_query(owlat, remaining))[2]:
            assert state[0] < holders
            await asyncio.sleep(0.02)
    assert list(state) == [0, CONTACTS, False]
    await owner.mutation(
        "contactProperties:create", {"key": "plan", "label": "Plan", "type": "number"}
    )
