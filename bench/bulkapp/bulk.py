"""`bulk:insert` writes `count` contacts in one mutation; `bulk:patch` patches them all."""

from __future__ import annotations

from typing import Any

from owlat.runtime import mutation, v


@mutation(args={})
async def org(ctx: Any, args: dict[str, Any]) -> str:
    org_id: str = await ctx.db.insert("orgs", {"name": "bench"})
    return org_id


def contact(org_id: str, index: int, now: float) -> dict[str, Any]:
    """The fields of bench contact number `index`."""
    return {
        "organizationId": org_id,
        "email": f"person{index}@example.com",
        "firstName": f"First{index}",
        "lastName": f"Last{index}",
        "nameKey": f"first{index} last{index}",
        "lastNameKey": f"last{index}",
        "source": "import",
        "properties": {"plan": "pro", "seats": float(index % 50), "vip": index % 7 == 0},
        "subscribed": True,
        "createdAt": now,
        "updatedAt": now,
    }


@mutation(args={"orgId": v.id("orgs"), "first": v.number(), "count": v.number()})
async def insert(ctx: Any, args: dict[str, Any]) -> list[str]:
    first, count = int(args["first"]), int(args["count"])
    return [
        await ctx.db.insert("contacts", contact(args["orgId"], index, 1.7e12 + index))
        for index in range(first, first + count)
    ]


@mutation(args={"ids": v.array(v.id("contacts"))})
async def patch(ctx: Any, args: dict[str, Any]) -> None:
    for contact_id in args["ids"]:
        await ctx.db.patch(contact_id, {"lastName": "Renamed", "lastNameKey": "renamed"})


@mutation(args={"id": v.id("contacts")})
async def touch(ctx: Any, args: dict[str, Any]) -> None:
    """Read one contact, then patch it from what was read (a claim, a tracking event)."""
    found = await ctx.db.get(args["id"])
    await ctx.db.patch(args["id"], {"updatedAt": found["updatedAt"] + 1})
