"""Automations: triggers start runs, runs walk steps (reference §2.4, §11.4).

Triggers (`fire`, called from app/triggers.py in the transaction of the write):
    contact_created   a contact is created (not by a CSV import)
    contact_updated   a contact's field or custom property `propertyKey` changes
    event_received    an event `eventName` is recorded (POST /api/v1/events)
    list_subscribed   a contact becomes a subscribed member of list `listId` (at once, or
                      when it confirms its double opt-in)
Each active automation of the organization with that trigger and a matching config gets
a run for the contact, unless the contact has a running run of it already.

Steps (`config` checked by `clean_steps`):
    email           {templateId, subjectOverride?}: the published email template
                    personalized for the contact, through the one send path
                    (`sends.enqueue_send`, kind automation: the From domain is checked
                    when it is enqueued, suppression and unsubscribes when it is
                    delivered, as for every marketing send)
    delay           {duration, unit: minutes|hours|days|weeks}: waited before the step
    condition       {filters (segment filters, lib/segment_filters.py),
                     yesBranchStepIndex?, noBranchStepIndex?}: the next step when the
                    contact matches or not (null: the following one; the step count: end)
    updateContact   {firstName?, lastName?, language?, timezone?, properties?}
    addToList       {listId}    removeFromList {listId}
    webhook         {webhookId}: an `automation.webhook` delivery with the contact

Execution (`execute_step`, one mutation per step): a job carries the run's `seq`; it does
nothing unless the run is still running with that seq (compare-and-set: a job that runs
twice, or a redriven one, executes the step once) and bumps it. A step that fails is
tried again after 1 s, 5 s and 30 s, then the run fails; 5 failed runs in a row pause the
automation. A run executing more than 100 steps (condition loops) fails. A run whose
automation is no longer active, or whose contact is deleted, is cancelled when its next
step comes.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final
from urllib.parse import quote

from owlat.app.lib import segment_filters
from owlat.app.lib.audience import live_document, live_lists, property_definitions
from owlat.app.lib.call_cache import rows_once
from owlat.app.lib.contacts import update_contact
from owlat.app.lib.errors import AppError, invalid
from owlat.app.lib.instance import current
from owlat.app.lib.list_subscriptions import subscribe, unsubscribe
from owlat.app.lib.rendering import compile_template, personalize
from owlat.app.lib.rendering.personalize import contact_variables
from owlat.app.lib.sending.composition import SendKind
from owlat.app.lib.sending.sends import SendRequest, enqueue_send
from owlat.app.lib.session_organization import now_ms
from owlat.app.lib.subscription_tokens import make_token
from owlat.app.lib.templates import find_template, stored_rendering
from owlat.app.lib.webhooks.events import enqueue as enqueue_webhook
from owlat.runtime import Change, MutationCtx, QueryCtx, internal

TRIGGERS: Final[dict[str, str | None]] = {
    "contact_created": None,
    "contact_updated": "propertyKey",
    "event_received": "eventName",
    "list_subscribed": "listId",
}
STEP_TYPES: Final = (
    "email",
    "delay",
    "condition",
    "updateContact",
    "addToList",
    "removeFromList",
    "webhook",
)
UNIT_MS: Final = {"minutes": 60_000, "hours": 3_600_000, "days": 86_400_000, "weeks": 604_800_000}
RETRY_DELAYS_MS: Final = (1_000, 5_000, 30_000)
MAX_STEPS_EXECUTED: Final = 100
MAX_CONSECUTIVE_FAILURES: Final = 5
MAX_STEPS: Final = 50
MAX_SUBJECT: Final = 1000
WEBHOOK_EVENT: Final = "automation.webhook"
_CONTACT_FIELDS: Final = ("firstName", "lastName", "language", "timezone")


def step_error(index: int, message: str) -> AppError:
    return invalid("INVALID_STEP", f"steps[{index}]: {message}")


# -- configuration ---------------------------------------------------------------------------


def clean_trigger(trigger_type: str, config: Mapping[str, str] | None) -> dict[str, str]:
    """The trigger config `trigger_type` needs (only its key kept), or a precise error."""
    if trigger_type not in TRIGGERS:
        raise invalid(
            "INVALID_TRIGGER",
            f"Unknown trigger {trigger_type!r}; one of {', '.join(TRIGGERS)}",
        )
    key = TRIGGERS[trigger_type]
    if key is None:
        return {}
    value = (config or {}).get(key, "").strip()
    if not value:
        raise invalid("INVALID_TRIGGER", f"Trigger {trigger_type} needs triggerConfig.{key}")
    return {key: value}


async def check_trigger(ctx: QueryCtx, organization_id: str, config: Mapping[str, str]) -> None:
    if (
        "listId" in config
        and await live_document(ctx, "mailingLists", organization_id, config["listId"]) is None
    ):
        raise invalid("INVALID_TRIGGER", "triggerConfig.listId: mailing list not found")


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


async def clean_steps(
    ctx: QueryCtx, organization_id: str, steps: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """`steps` ({id?, type, config}) checked against the organization's templates, lists,
    webhooks and properties; each keeps its id or gets a new one."""
    if len(steps) > MAX_STEPS:
        raise invalid("INVALID_STEP", f"An automation has at most {MAX_STEPS} steps")
    definitions = await property_definitions(ctx, organization_id)
    list_ids = {str(row["_id"]) for row in await live_lists(ctx, organization_id)}
    cleaned = []
    for index, step in enumerate(steps):
        kind, config = step.get("type"), step.get("config")
        if kind not in STEP_TYPES:
            raise step_error(index, f"unknown type {kind!r}; one of {', '.join(STEP_TYPES)}")
        if not isinstance(config, Mapping):
            raise step_error(index, "config must be an object")
        config = await _clean_config(
            ctx, organization_id, index, len(steps), str(kind), config, definitions, list_ids
        )
        step_id = step.get("id")
        if not isinstance(step_id, str) or not 1 <= len(step_id) <= 64:
            step_id = secrets.token_hex(8)
        cleaned.append({"id": step_id, "type": kind, "config": config})
    if len({step["id"] for step in cleaned}) != len(cleaned):
        raise invalid("INVALID_STEP", "Step ids must be unique")
    return cleaned


async def _clean_config(
    ctx: QueryCtx,
    organization_id: str,
    index: int,
    count: int,
    kind: str,
    config: Mapping[str, Any],
    definitions: dict[str, dict[str, Any]],
    list_ids: set[str],
) -> dict[str, Any]:
    if kind == "email":
        template = await find_template(ctx, organization_id, str(config.get("templateId", "")))
        if template is None:
            raise step_error(index, "templateId: email template not found")
        subject = config.get("subjectOverride")
        if subject is not None and (not isinstance(subject, str) or len(subject) > MAX_SUBJECT):
            raise step_error(index, f"subjectOverride must be text of at most {MAX_SUBJECT}")
        chosen = {"templateId": str(template["_id"])}
        return chosen if not subject else {**chosen, "subjectOverride": subject}
    if kind == "delay":
        duration: Any = config.get("duration")
        unit = config.get("unit")
        if not _number(duration) or not 0 < duration <= 100_000 or unit not in UNIT_MS:
            raise step_error(
                index, "delay needs duration (0 < n ≤ 100000) and unit minutes|hours|days|weeks"
            )
        return {"duration": float(duration), "unit": unit}
    if kind == "condition":
        try:
            filters = segment_filters.validate(config.get("filters"), definitions, list_ids)
        except AppError as error:
            raise step_error(index, f"filters: {error.data}") from None
        out: dict[str, Any] = {"filters": filters}
        for key in ("yesBranchStepIndex", "noBranchStepIndex"):
            target = config.get(key)
            if target is None:
                continue
            if not _number(target) or target != int(target) or not 0 <= target <= count:
                raise step_error(index, f"{key} must be a step index from 0 to {count}")
            if target == index:
                raise step_error(index, f"{key} must not be the condition itself")
            out[key] = int(target)
        return out
    if kind == "updateContact":
        unknown = set(config) - {*_CONTACT_FIELDS, "properties"}
        if unknown or not config:
            raise step_error(
                index, f"updateContact takes {', '.join(_CONTACT_FIELDS)} and properties"
            )
        properties = config.get("properties") or {}
        if not isinstance(properties, Mapping) or set(properties) - set(definitions):
            raise step_error(index, "properties must name existing contact properties")
        return dict(config)
    if kind in ("addToList", "removeFromList"):
        if str(config.get("listId")) not in list_ids:
            raise step_error(index, "listId: mailing list not found")
        return {"listId": str(config["listId"])}
    webhook = await live_document(ctx, "webhooks", organization_id, str(config.get("webhookId")))
    if webhook is None:
        raise step_error(index, "webhookId: webhook not found")
    return {"webhookId": str(webhook["_id"])}


def entry_delay_ms(step: Mapping[str, Any]) -> float:
    """How long a run waits before `step` (only delay steps wait)."""
    if step["type"] != "delay":
        return 0.0
    return float(step["config"]["duration"] * UNIT_MS[step["config"]["unit"]])


# -- statistics ------------------------------------------------------------------------------


async def bump(ctx: MutationCtx, automation: Mapping[str, Any], key: str, counter: str) -> None:
    """Add one to `counter` of the automation's stats row `key` ("run" or a step id)."""
    row = await (
        ctx.db.query("automationStats")
        .with_index(
            "by_automation_key", lambda q: q.eq("automationId", automation["_id"]).eq("key", key)
        )
        .first()
    )
    if row is None:
        await ctx.db.insert(
            "automationStats",
            {
                "organizationId": automation["organizationId"],
                "automationId": automation["_id"],
                "key": key,
                "counts": {counter: 1},
            },
        )
        return
    counts = dict(row["counts"])
    counts[counter] = counts.get(counter, 0) + 1
    await ctx.db.patch(row["_id"], {"counts": counts})


# -- triggers --------------------------------------------------------------------------------


async def running_run(ctx: QueryCtx, automation_id: str, contact_id: str) -> dict[str, Any] | None:
    """The contact's running run of the automation, if any."""
    found = await (
        ctx.db.query("automationRuns")
        .with_index(
            "by_automation_contact_status",
            lambda q: (
                q.eq("automationId", automation_id)
                .eq("contactId", contact_id)
                .eq("status", "running")
            ),
        )
        .first()
    )
    return None if found is None else dict(found)


async def fire(
    ctx: MutationCtx,
    organization_id: str,
    trigger_type: str,
    contact_id: str,
    match: Callable[[Mapping[str, Any]], Mapping[str, str] | None],
) -> int:
    """Start runs for the contact in the organization's active automations of
    `trigger_type` that `match` (the run's trigger data, or None: no run); how many
    started. One index read per call, whatever the number of automations and writes."""
    automations = await rows_once(
        ctx,
        "automations",
        (organization_id, trigger_type),
        lambda: (
            ctx.db.query("automations")
            .with_index(
                "by_org_trigger_status",
                lambda q: (
                    q.eq("organizationId", organization_id)
                    .eq("triggerType", trigger_type)
                    .eq("status", "active")
                ),
            )
            .collect()
        ),
    )
    started = 0
    for automation in automations:
        automation_id = automation["_id"]
        trigger_data = match(automation)
        if not automation["steps"] or trigger_data is None:
            continue
        if await running_run(ctx, automation_id, contact_id) is not None:
            continue
        now = now_ms()
        delay = entry_delay_ms(automation["steps"][0])
        run_id = await ctx.db.insert(
            "automationRuns",
            {
                "organizationId": organization_id,
                "automationId": automation["_id"],
                "contactId": contact_id,
                "status": "running",
                "stepIndex": 0,
                "stepsVersion": automation["stepsVersion"],
                "seq": 0,
                "retries": 0,
                "stepsExecuted": 0,
                "nextStepAt": now + delay,
                "triggeredBy": trigger_type,
                "triggerData": dict(trigger_data),
                "startedAt": now,
                "updatedAt": now,
            },
        )
        await bump(ctx, automation, "run", "entered")
        await schedule(ctx, str(run_id), 0, delay)
        started += 1
    return started


_WATCHED_FIELDS: Final = ("email", *_CONTACT_FIELDS)


async def on_contact_change(ctx: MutationCtx, change: Change) -> None:
    """contact_created (not by an import) and contact_updated (per changed field or
    property key) from any contact write."""
    old, new = change.old, change.new
    if new is None or new.get("deletedAt") is not None:
        return
    organization_id, contact_id = new["organizationId"], str(change.id)
    if old is None:
        if new.get("source") != "import":
            await fire(ctx, organization_id, "contact_created", contact_id, lambda _: {})
        return
    before, after = old.get("properties") or {}, new.get("properties") or {}
    changed = {field for field in _WATCHED_FIELDS if old.get(field) != new.get(field)}
    changed |= {key for key in {*before, *after} if before.get(key) != after.get(key)}
    if not changed:
        return

    def on_key(automation: Mapping[str, Any]) -> dict[str, str] | None:
        key = automation["triggerConfig"]["propertyKey"]
        return {"propertyKey": key} if key in changed else None

    await fire(ctx, organization_id, "contact_updated", contact_id, on_key)


async def on_event_change(ctx: MutationCtx, change: Change) -> None:
    """event_received when an event is recorded."""
    if change.old is not None or change.new is None:
        return
    event = change.new
    data = {"eventName": event["eventName"], "eventId": event["eventId"]}
    await fire(
        ctx,
        event["organizationId"],
        "event_received",
        str(event["contactId"]),
        lambda automation: (
            data if automation["triggerConfig"]["eventName"] == data["eventName"] else None
        ),
    )


async def on_membership_change(ctx: MutationCtx, change: Change) -> None:
    """list_subscribed when a membership becomes `subscribed` (new, or DOI confirmed)."""
    old, new = change.old, change.new
    if new is None or new["status"] != "subscribed":
        return
    if old is not None and old["status"] == "subscribed":
        return
    data = {"listId": str(new["listId"])}
    await fire(
        ctx,
        new["organizationId"],
        "list_subscribed",
        str(new["contactId"]),
        lambda automation: data if automation["triggerConfig"] == data else None,
    )


async def schedule(ctx: MutationCtx, run_id: str, seq: int, delay_ms: float) -> None:
    await ctx.scheduler.run_after(
        delay_ms / 1000, internal.automations.execute_step, {"runId": run_id, "seq": seq}
    )


# -- steps -----------------------------------------------------------------------------------


async def run_step(
    ctx: MutationCtx,
    automation: Mapping[str, Any],
    run: Mapping[str, Any],
    contact: dict[str, Any],
) -> int:
    """Execute the run's current step for `contact`; the index of the next step. Raises
    `AppError` (before writing anything) when the step cannot be done."""
    index = int(run["stepIndex"])
    step = automation["steps"][index]
    kind, config = step["type"], step["config"]
    organization_id = automation["organizationId"]
    if kind == "email":
        await _send_email(ctx, automation, contact, config)
    elif kind == "condition":
        definitions = await property_definitions(ctx, organization_id)
        predicate = segment_filters.compile(config["filters"], definitions, now_ms())
        match = await (
            ctx.db.query("contacts")
            .with_index(
                "by_org_email",
                lambda q: q.eq("organizationId", organization_id).eq("email", contact["email"]),
            )
            .filter(lambda q: q.and_(q.eq(q.field("_id"), contact["_id"]), predicate(q)))
            .first()
        )
        target = config.get("yesBranchStepIndex" if match else "noBranchStepIndex")
        return index + 1 if target is None else int(target)
    elif kind == "updateContact":
        await update_contact(ctx, contact, config, None)
    elif kind in ("addToList", "removeFromList"):
        mailing_list = await live_document(ctx, "mailingLists", organization_id, config["listId"])
        if mailing_list is None:
            raise invalid("LIST_NOT_FOUND", "The step's mailing list was deleted")
        change = subscribe if kind == "addToList" else unsubscribe
        await change(ctx, mailing_list=mailing_list, contact=contact, source="automation")
    elif kind == "webhook":
        webhook = await live_document(ctx, "webhooks", organization_id, config["webhookId"])
        if webhook is None or not webhook["isActive"]:
            raise invalid("WEBHOOK_UNAVAILABLE", "The step's webhook was deleted or turned off")
        data = {
            "automationId": str(automation["_id"]),
            "runId": str(run["_id"]),
            "contactId": str(contact["_id"]),
            "email": contact["email"],
            **{f"trigger_{k}": val for k, val in run["triggerData"].items()},
        }
        await enqueue_webhook(ctx, webhook, WEBHOOK_EVENT, data, now_ms())
    return index + 1


async def _send_email(
    ctx: MutationCtx,
    automation: Mapping[str, Any],
    contact: Mapping[str, Any],
    config: Mapping[str, Any],
) -> None:
    organization_id = automation["organizationId"]
    template = await find_template(ctx, organization_id, config["templateId"])
    if template is None or template.get("status") != "published":
        raise invalid("TEMPLATE_UNAVAILABLE", "The step's email template is deleted or unpublished")
    rendering = stored_rendering(template, contact.get("language"))
    message = personalize(compile_template(rendering), contact_variables(contact))
    subject = config.get("subjectOverride") or message.subject
    token = quote(make_token("unsubscribe", str(contact["_id"])), safe="")
    await enqueue_send(
        ctx,
        SendRequest(
            organization_id=organization_id,
            kind=SendKind.AUTOMATION,
            to=contact["email"],
            subject=subject,
            html=message.html,
            text=message.text,
            contact_id=str(contact["_id"]),
            automation_id=str(automation["_id"]),
            unsubscribe_url=f"{current().base_url.rstrip('/')}/unsub/{token}",
            language=contact.get("language"),
        ),
    )
