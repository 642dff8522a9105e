"""What happens to a send after it was sent: delivery, opens, clicks, bounces, complaints
(reference §10.1), from tracking links and provider webhooks alike.

`apply(ctx, table, row, event)` moves the send through `send_states.transition` and runs
the effects of the edge, in the caller's mutation; the send's and its contact's patches go
through `writes` (`lib/pending_writes.py`), so a caller applying many events writes each of
those documents once when it flushes (without `writes`: once per event):

    first delivery evidence  (a delivery, or the first open, click or complaint when no
        delivery came): `deliveredAt`; the contact's `softBounceCount` back to 0;
        counter `delivered`; webhook `email.delivered`.
    opened   `openCount` + 1 every time (`proxyOpenCount` + 1 for a proxy's prefetch,
        `prefetch.py`); the first open: status `opened`, `openedAt`, counter `opened`,
        webhook `email.opened`; the first open that is not a proxy's: `humanOpenedAt`,
        counter `humanOpened`, the contact's `hasOpened` and an `email_opened` activity
        (a prefetch-only open records the activity flagged `prefetched`, without the flag).
    clicked  `clickCount` + 1 and the URL appended to `clickedLinks` (the first
        `MAX_CLICKED_LINKS`); the first click: status `clicked`, `clickedAt`, counter
        `clicked`; the first click of each URL: an `email_clicked` activity and the
        contact's `hasClicked`; webhook `email.clicked` on every click.
    bounced  status, `bouncedAt`, `bounceType`, `errorMessage`; hard: the address on the
        suppression list (`bounced`, hard); soft: the contact's `softBounceCount` + 1 and
        at `SOFT_BOUNCE_LIMIT` the address suppressed (`bounced`, soft); soft then hard
        upgrades the list row and moves the counter from `softBounced` to `hardBounced`;
        activity `email_bounced`; counters `bounced` + the type's; webhook `email.bounced`.
    complained  status, `complainedAt`; suppressed (`complained`); activity
        `email_complained`; counter `complained`; webhook `email.complained`.

Webhooks (`lib/webhooks/events.py`): `email.delivered` with the first delivery evidence,
`email.opened` with the first open (`prefetchedBy`: the proxy, or null), `email.clicked`
on every click (`url`), `email.bounced` (`bounceType`, `message`), `email.complained`;
each with `email`, `sendId` and `timestamp`.

A send's `updatedAt` moves with its lifecycle (a status, a first open or click, a
timestamp above), not with a repeat open or click that only counts (`_COUNTERS`): that
write then changes none of the send's index entries (its tables index `updatedAt` after
`status`), and a listing by status and update time keeps its order while opens come in.

Opens and clicks of a send that is not yet `sent` (or failed) are ignored; an edge the
table refuses changes nothing (open and click counts still count on a bounced send, as
upstream). Test sends change only their own row. Suppression never downgrades: a
`bounced` or `complained` row stays, a soft bounce row becomes hard, an `unengaged` row
takes the new reason, a `manual` row is the admin's and stays.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Literal

from owlat.app.lib.activities import record_activity
from owlat.app.lib.audience import blocked_entry
from owlat.app.lib.contacts import live_by_email
from owlat.app.lib.pending_writes import PendingWrites
from owlat.app.lib.sending.send_states import Outcome, SendStatus, transition
from owlat.app.lib.sending.send_tables import SendTable
from owlat.app.lib.webhooks.events import emit, iso
from owlat.runtime import MutationCtx

SOFT_BOUNCE_LIMIT = 5
MAX_CLICKED_LINKS = 50
MAX_MESSAGE = 2000
Kind = Literal["delivered", "opened", "clicked", "bounced", "complained"]
_UNSENT = frozenset({SendStatus.QUEUED, SendStatus.SENDING, SendStatus.FAILED})
# what a repeat open or click writes: it leaves `updatedAt` (module docstring)
_COUNTERS = frozenset({"openCount", "proxyOpenCount", "clickCount", "clickedLinks"})


@dataclasses.dataclass(frozen=True)
class Event:
    kind: Kind
    at: float  # epoch ms
    bounce_type: Literal["hard", "soft"] | None = None
    message: str = ""  # a bounce's diagnostic
    url: str | None = None  # a click's destination
    prefetcher: str | None = None  # an open by a mailbox provider's proxy (its name)


class _Apply:
    """One event applied to one send: the row's patch, then the effects."""

    def __init__(
        self,
        ctx: MutationCtx,
        table: SendTable,
        row: Mapping[str, Any],
        event: Event,
        writes: PendingWrites,
    ) -> None:
        self.ctx, self.table, self.row, self.event = ctx, table, dict(row), event
        self.writes = writes
        self.patch: dict[str, Any] = {}
        self.test = row.get("kind") == "test"
        self._contact: dict[str, Any] | bool | None = False  # False: not read yet

    async def contact(self) -> dict[str, Any] | None:
        if self._contact is False:
            self._contact = await _contact_of(self.ctx, self.row, self.writes)
        return self._contact  # type: ignore[return-value]

    async def count(self, counter: str, delta: int = 1) -> None:
        if self.table.count is not None and not self.test:
            await self.table.count(self.ctx, self.row, counter, delta)

    async def activity(self, activity_type: str, metadata: dict[str, str]) -> None:
        contact = await self.contact()
        if contact is not None and not self.test:
            source = self.row.get(self.table.source_field)
            if source:
                metadata = {self.table.source_field: str(source), **metadata}
            base = {"sendId": str(self.row["_id"]), "emailSubject": self.row.get("subject", "")}
            await record_activity(
                self.ctx, contact, activity_type, {**base, **metadata}, None, self.event.at
            )

    async def patch_contact(self, changes: dict[str, Any]) -> None:
        contact = await self.contact()
        if contact is None or self.test:
            return
        changed = {k: val for k, val in changes.items() if contact.get(k) != val}
        if changed:
            self.writes.patch(contact["_id"], changed)
            contact.update(changed)

    async def webhook(self, event: str, data: dict[str, str | None] | None = None) -> None:
        """Emit `event` to the organization's webhooks (`lib/webhooks/events.py`)."""
        if self.test:
            return
        payload = {"email": self.row["email"], "sendId": str(self.row["_id"]), **(data or {})}
        payload["timestamp"] = iso(self.event.at)
        await emit(self.ctx, self.row["organizationId"], event, payload)

    def status(self, to: SendStatus) -> Outcome:
        current = SendStatus(self.row["status"])
        outcome = transition(
            current, to, bounce=self.row.get("bounceType"), new_bounce=self.event.bounce_type
        )
        if outcome is Outcome.APPLY:
            self.patch["status"] = str(to)
        return outcome

    async def delivery_evidence(self) -> None:
        if self.row.get("deliveredAt") is not None or "deliveredAt" in self.patch:
            return
        self.patch["deliveredAt"] = self.event.at
        await self.patch_contact({"softBounceCount": 0})
        await self.count("delivered")
        await self.webhook("email.delivered")


async def apply(
    ctx: MutationCtx,
    table: SendTable,
    row: Mapping[str, Any],
    event: Event,
    writes: PendingWrites | None = None,
) -> Outcome:
    """Apply `event` to the send `row` of `table` (module docstring); the status edge's
    outcome (APPLY also for a counted repeat open or click). With `writes`, the send's
    and the contact's patches wait for the caller's `writes.flush()` (`row` should then
    come from `writes.get`, so the next event of the send sees this one's changes)."""
    if SendStatus(row["status"]) in _UNSENT:
        return Outcome.ILLEGAL
    own = writes is None
    if writes is None:
        writes = PendingWrites(ctx)
    step = _Apply(ctx, table, row, event, writes)
    handler = {
        "delivered": _delivered,
        "opened": _opened,
        "clicked": _clicked,
        "bounced": _bounced,
        "complained": _complained,
    }[event.kind]
    outcome = await handler(step)
    if step.patch:
        if not _COUNTERS.issuperset(step.patch):
            step.patch["updatedAt"] = max(event.at, row.get("updatedAt") or 0)
        writes.patch(row["_id"], step.patch)
    if own:
        await writes.flush()
    return outcome


async def _delivered(step: _Apply) -> Outcome:
    outcome = step.status(SendStatus.DELIVERED)
    if outcome is Outcome.APPLY or SendStatus(step.row["status"]) is not SendStatus.BOUNCED:
        await step.delivery_evidence()
    return outcome


async def _opened(step: _Apply) -> Outcome:
    row, event = step.row, step.event
    step.patch["openCount"] = (row.get("openCount") or 0) + 1
    if event.prefetcher is not None:
        step.patch["proxyOpenCount"] = (row.get("proxyOpenCount") or 0) + 1
    outcome = Outcome.APPLY
    if row.get("openedAt") is None:
        outcome = step.status(SendStatus.OPENED)
        step.patch["openedAt"] = event.at
        await step.delivery_evidence()
        await step.count("opened")
        await step.webhook("email.opened", {"prefetchedBy": event.prefetcher})
        if event.prefetcher is not None:
            await step.activity("email_opened", {"prefetched": event.prefetcher})
    if event.prefetcher is None and row.get("humanOpenedAt") is None:
        step.patch["humanOpenedAt"] = event.at
        await step.count("humanOpened")
        await step.patch_contact({"hasOpened": True})
        await step.activity("email_opened", {})
    return outcome


async def _clicked(step: _Apply) -> Outcome:
    row, event = step.row, step.event
    url = event.url or ""
    links = list(row.get("clickedLinks") or [])
    first_of_url = all(link["url"] != url for link in links)
    step.patch["clickCount"] = (row.get("clickCount") or 0) + 1
    if len(links) < MAX_CLICKED_LINKS:
        step.patch["clickedLinks"] = [*links, {"url": url, "clickedAt": event.at}]
    outcome = Outcome.APPLY
    if row.get("clickedAt") is None:
        outcome = step.status(SendStatus.CLICKED)
        step.patch["clickedAt"] = event.at
        await step.delivery_evidence()
        await step.count("clicked")
    if first_of_url:
        await step.patch_contact({"hasClicked": True})
        await step.activity("email_clicked", {"linkUrl": url[:2000]})
    await step.webhook("email.clicked", {"url": url})
    return outcome


async def _bounced(step: _Apply) -> Outcome:
    row, event = step.row, step.event
    bounce_type = event.bounce_type or "soft"
    was_soft = SendStatus(row["status"]) is SendStatus.BOUNCED
    outcome = step.status(SendStatus.BOUNCED)
    if outcome is not Outcome.APPLY:
        return outcome
    step.patch.update(bouncedAt=event.at, bounceType=bounce_type)
    if event.message:
        step.patch["errorMessage"] = event.message[:MAX_MESSAGE]
    if was_soft:  # soft → hard
        await step.count("softBounced", -1)
        await step.count("hardBounced")
        await _suppress(step, "bounced", "hard")
        await step.activity("email_bounced", {"bounceType": "hard", "errorMessage": event.message})
        await step.webhook("email.bounced", {"bounceType": "hard", "message": event.message})
        return outcome
    await step.count("bounced")
    await step.count(f"{bounce_type}Bounced")
    if bounce_type == "hard":
        await _suppress(step, "bounced", "hard")
    else:
        contact = await step.contact()
        soft = ((contact or {}).get("softBounceCount") or 0) + 1
        await step.patch_contact({"softBounceCount": soft})
        if soft >= SOFT_BOUNCE_LIMIT:
            await _suppress(step, "bounced", "soft")
    await step.activity(
        "email_bounced", {"bounceType": bounce_type, "errorMessage": event.message[:MAX_MESSAGE]}
    )
    await step.webhook("email.bounced", {"bounceType": bounce_type, "message": event.message})
    return outcome


async def _complained(step: _Apply) -> Outcome:
    outcome = step.status(SendStatus.COMPLAINED)
    if outcome is not Outcome.APPLY:
        return outcome
    step.patch["complainedAt"] = step.event.at
    await step.delivery_evidence()
    await step.count("complained")
    await _suppress(step, "complained", None)
    await step.activity("email_complained", {})
    await step.webhook("email.complained")
    return outcome


async def _suppress(step: _Apply, reason: str, bounce_type: str | None) -> None:
    """Put the send's address on the suppression list without downgrading a row."""
    if step.test:
        return
    row = step.row
    await suppress(
        step.ctx,
        row["organizationId"],
        row["email"],
        reason,
        bounce_type,
        source=f"{step.table.name}:{row['_id']}",
        at=step.event.at,
    )


async def suppress(
    ctx: MutationCtx,
    organization_id: str,
    email: str,
    reason: str,
    bounce_type: str | None,
    *,
    source: str,
    at: float,
) -> None:
    """Add `email` to the organization's suppression list (module docstring's rule)."""
    entry = await blocked_entry(ctx, organization_id, email)
    fields: dict[str, Any] = {"reason": reason, "sourceSendId": source}
    if bounce_type is not None:
        fields["bounceType"] = bounce_type
    if entry is None:
        await ctx.db.insert(
            "blockedEmails",
            {"organizationId": organization_id, "email": email, "createdAt": at, **fields},
        )
    else:
        upgrade = entry["reason"] == "unengaged" or (
            entry["reason"] == "bounced" == reason and entry.get("bounceType") != "hard"
        )
        if upgrade:
            await ctx.db.patch(entry["_id"], fields)


async def _contact_of(
    ctx: MutationCtx, row: Mapping[str, Any], writes: PendingWrites
) -> dict[str, Any] | None:
    """The send's live contact (by id, else by address), or None: `writes`' copy."""
    contact_id = row.get("contactId")
    if contact_id is None:
        by_email = await live_by_email(ctx, row["organizationId"], row["email"])
        if by_email is None:
            return None
        contact_id = by_email["_id"]
    found = await writes.get(contact_id)
    if found is None or found.get("deletedAt") is not None:
        return None
    return found if found["organizationId"] == row["organizationId"] else None
