"""Helpers of the campaign tests: an audience of many contacts written directly (one
mutation per 500), a published marketing template, a ready campaign, waiting for it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from owlat.app.lib.list_subscriptions import subscribe
from owlat.runtime.application import Application
from owlat.runtime.testing import in_mutation, in_query
from tests.app.conftest import Caller

BLOCKS = json.dumps(
    [{"id": "t1", "type": "text", "content": {"html": "<p>Hello {{firstName|'friend'}}</p>"}}]
)


def address(index: int) -> str:
    return f"reader{index:07d}@example.org"


async def list_audience(
    owlat: Application, organization_id: str, list_id: str, count: int, start: int = 0
) -> list[str]:
    """`count` new contacts `address(start..)`, subscribed to the list; their ids."""
    ids: list[str] = []
    for first in range(start, start + count, 500):

        async def add(ctx: Any, first: int = first) -> list[str]:
            mailing_list = dict(await ctx.db.get(list_id))
            added = []
            for index in range(first, min(first + 500, start + count)):
                contact_id = await ctx.db.insert(
                    "contacts",
                    {"organizationId": organization_id, "email": address(index),
                     "firstName": f"R{index}", "source": "api", "properties": {},
                     "createdAt": 0.0, "updatedAt": 0.0},
                )  # fmt: skip
                contact = dict(await ctx.db.get(contact_id))
                await subscribe(ctx, mailing_list=mailing_list, contact=contact, source="admin")
                mailing_list = dict(await ctx.db.get(list_id))
                added.append(str(contact_id))
            return added

        ids += await in_mutation(owlat, add)
    return ids


async def published_template(owner: Caller, subject: str = "News for {{firstName}}") -> str:
    template_id: str = await owner.mutation(
        "emailTemplates:create",
        {"name": "News", "type": "marketing", "subject": subject, "content": BLOCKS},
    )
    await owner.mutation("emailTemplates:publish", {"templateId": template_id})
    return template_id


async def ready_campaign(
    owner: Caller, list_id: str, from_email: str, drafter: Caller | None = None
) -> str:
    """A draft campaign to the list with a template `owner` published, from `from_email`,
    drafted by `drafter` (else `owner`)."""
    template_id = await published_template(owner)
    drafter = drafter or owner
    campaign_id: str = await drafter.mutation("campaigns:create", {"name": "Spring news"})
    await drafter.mutation(
        "campaigns:update",
        {"campaignId": campaign_id, "emailTemplateId": template_id,
         "fromEmail": from_email, "fromName": "Acme News",
         "audience": {"kind": "list", "listId": list_id}},
    )  # fmt: skip
    return campaign_id


async def pending_jobs(owlat: Application, name: str) -> list[dict[str, Any]]:
    """The scheduled functions `name` (as "module:function") not yet run."""

    async def read(ctx: Any) -> list[dict[str, Any]]:
        rows = await ctx.db.system.query("_scheduled_functions").collect()
        return [
            dict(row) for row in rows if row["name"] == name and row["state"]["kind"] == "pending"
        ]

    return list(await in_query(owlat, read))


async def progress_until(
    caller: Caller, campaign_id: str, done: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    """The campaign's progress once `done` says so (within 60 s)."""
    async with asyncio.timeout(60):
        while True:
            progress: dict[str, Any] = await caller.query(
                "campaigns:progress", {"campaignId": campaign_id}
            )
            if done(progress):
                return progress
            await asyncio.sleep(0.02)


async def finished(caller: Caller, campaign_id: str) -> dict[str, Any]:
    """The campaign's progress once it is `sent`."""
    return await progress_until(caller, campaign_id, lambda p: p["status"] == "sent")
