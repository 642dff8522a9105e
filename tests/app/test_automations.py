"""Automations (reference §2.4, §7.6, §11.4; app/automations.py, lib/automations.py):
editing and activation rights, precise refusals, each trigger, each step kind, condition
branches, delays, retries and auto-pause, the 100-step cap, a contact who unsubscribes
mid-run, a step job that runs twice (compare-and-set) and the redrive cron."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import pytest

from owlat.app.lib.contacts import contact_record
from owlat.app.lib.list_subscriptions import confirm_doi
from owlat.runtime import ConvexError
from owlat.runtime.application import Application
from owlat.runtime.testing import in_mutation, in_query
from tests.app.conftest import Caller, mail_text, outbox, owner_and_editor

HELLO = json.dumps(
    [{"id": "t1", "type": "text", "content": {"html": "<p>Hello {{firstName|'friend'}}</p>"}}]
)
WEEK = {"type": "delay", "config": {"duration": 1, "unit": "weeks"}}


@pytest.fixture
async def owlat(owlat_on_both_engines: Application) -> Application:
    return owlat_on_both_engines


@pytest.fixture
async def team(owlat: Application) -> tuple[Caller, Caller, str]:
    return await owner_and_editor(owlat)


async def _template(owner: Caller) -> str:
    template_id = await owner.mutation(
        "emailTemplates:create",
        {"name": "Welcome", "type": "marketing", "subject": "Welcome {{firstName|'you'}}",
         "content": HELLO},
    )  # fmt: skip
    await owner.mutation("emailTemplates:publish", {"templateId": template_id})
    return str(template_id)


async def _active(owner: Caller, trigger: str, steps: list[Any], **config: str) -> str:
    automation_id = await owner.mutation(
        "automations:create",
        {"name": "Flow", "triggerType": trigger, "triggerConfig": config, "steps": steps},
    )
    await owner.mutation("automations:activate", {"automationId": automation_id})
    return str(automation_id)


async def _contact(owner: Caller, email: str, **fields: Any) -> str:
    return str(await owner.mutation("contacts:createFromSession", {"email": email, **fields}))


async def _runs(owlat: Application, automation_id: str) -> list[dict[str, Any]]:
    async def read(ctx: Any) -> list[dict[str, Any]]:
        rows = (
            await ctx.db.query("automationRuns")
            .with_index("by_automation", lambda q: q.eq("automationId", automation_id))
            .collect()
        )
        return [dict(row) for row in rows]

    return await in_query(owlat, read)


async def _settled_runs(owlat: Application, automation_id: str, count: int) -> list[dict[str, Any]]:
    async with asyncio.timeout(30):
        while True:
            runs = await _runs(owlat, automation_id)
            if len(runs) >= count and all(run["status"] != "running" for run in runs):
                return runs
            await asyncio.sleep(0.02)


async def _execute(owlat: Application, run_id: str, seq: int) -> None:
    await owlat.run_mutation(
        "automations:executeStep", {"runId": run_id, "seq": seq}, internal=True
    )


async def _run(owlat: Application, run_id: str) -> dict[str, Any]:
    return dict(await in_query(owlat, lambda ctx: ctx.db.get(run_id)))


async def _sends(owlat: Application, automation_id: str) -> list[dict[str, Any]]:
    async def read(ctx: Any) -> list[dict[str, Any]]:
        rows = await ctx.db.query("transactionalSends").collect()
        return [dict(row) for row in rows if row.get("automationId") == automation_id]

    return await in_query(owlat, read)


async def _mails_to(data_dir: Path, address: str) -> list[Any]:
    async with asyncio.timeout(30):
        while True:
            mails = [mail for mail in outbox(data_dir) if mail["To"] == address]
            if mails:
                return mails
            await asyncio.sleep(0.02)


# -- management ------------------------------------------------------------------------------


async def test_editors_draft_and_pause_admins_activate(team: tuple[Caller, Caller, str]) -> None:
    owner, editor, _ = team
    automation_id = await editor.mutation(
        "automations:create", {"name": " Onboarding ", "triggerType": "contact_created"}
    )
    with pytest.raises(ConvexError, match="^Automation must have at least one step"):
        await owner.mutation("automations:activate", {"automationId": automation_id})
    updated = await editor.mutation(
        "automations:update", {"automationId": automation_id, "steps": [WEEK]}
    )
    assert updated["name"] == "Onboarding" and updated["stepsVersion"] == 1
    with pytest.raises(ConvexError, match="^Admin access required$"):
        await editor.mutation("automations:activate", {"automationId": automation_id})
    await owner.mutation("automations:activate", {"automationId": automation_id})
    with pytest.raises(ConvexError, match="^Pause the automation before changing"):
        await editor.mutation("automations:update", {"automationId": automation_id, "steps": []})
    with pytest.raises(ConvexError, match="^Pause the automation before deleting it$"):
        await editor.mutation("automations:remove", {"automationId": automation_id})
    await editor.mutation("automations:pause", {"automationId": automation_id})
    (listed,) = await editor.query("automations:list", {"status": "paused"})
    assert listed["_id"] == automation_id
    await editor.mutation("automations:remove", {"automationId": automation_id})
    assert await editor.query("automations:list", {}) == []


async def test_bad_triggers_and_steps_are_refused_precisely(
    team: tuple[Caller, Caller, str],
) -> None:
    owner, _, _ = team
    cases = [
        ({"triggerType": "contact_updated"},
         "Trigger contact_updated needs triggerConfig.propertyKey"),
        ({"triggerType": "birthday"}, "Unknown trigger 'birthday'"),
        ({"triggerType": "list_subscribed", "triggerConfig": {"listId": "nope"}},
         "triggerConfig.listId: mailing list not found"),
        ({"triggerType": "contact_created", "steps": [{"type": "sms", "config": {}}]},
         "steps[0]: unknown type 'sms'"),
        ({"triggerType": "contact_created",
          "steps": [{"type": "delay", "config": {"duration": 0, "unit": "days"}}]},
         "steps[0]: delay needs duration"),
        ({"triggerType": "contact_created",
          "steps": [{"type": "email", "config": {"templateId": "x"}}]},
         "steps[0]: templateId: email template not found"),
        ({"triggerType": "contact_created",
          "steps": [{"type": "condition", "config": {
              "filters": {"logic": "AND", "conditions": []}, "yesBranchStepIndex": 5}}]},
         "steps[0]: yesBranchStepIndex must be a step index from 0 to 1"),
        ({"triggerType": "contact_created",
          "steps": [{"type": "condition", "config": {"filters": {"logic": "XOR"}}}]},
         "steps[0]: filters: "),
    ]  # fmt: skip
    for args, message in cases:
        with pytest.raises(ConvexError) as refused:
            await owner.mutation("automations:create", {"name": "x", **args})
        assert str(refused.value).startswith(message), (args, str(refused.value))
    assert await owner.query("automations:list", {}) == []


# -- triggers and steps ----------------------------------------------------------------------


async def test_contact_created_sends_the_template_through_the_send_path(
    owlat: Application, team: tuple[Caller, Caller, str], tmp_path: Path
) -> None:
    owner, _, _ = team
    template_id = await _template(owner)
    automation_id = await _active(
        owner, "contact_created", [{"type": "email", "config": {"templateId": template_id}}]
    )
    contact_id = await _contact(owner, "ada@example.com", firstName="Ada")
    (mail,) = await _mails_to(tmp_path, "ada@example.com")
    assert mail["Subject"] == "Welcome Ada"
    assert "/unsub/" in mail["List-Unsubscribe"]
    (run,) = await _settled_runs(owlat, automation_id, 1)
    assert (run["status"], run["contactId"], run["triggeredBy"]) == (
        "completed",
        contact_id,
        "contact_created",
    )
    (send,) = await _sends(owlat, automation_id)
    assert (send["kind"], send["contactId"]) == ("automation", contact_id)
    stats = await owner.query("automations:stats", {"automationId": automation_id})
    assert (stats["entered"], stats["completed"], stats["active"]) == (1, 1, 0)
    assert stats["steps"][0]["completed"] == 1


async def test_contact_updated_fires_on_its_property_and_updates_and_lists(
    owlat: Application, team: tuple[Caller, Caller, str]
) -> None:
    owner, _, _ = team
    for key in ("plan", "stage"):
        await owner.mutation(
            "contactProperties:create", {"key": key, "label": key, "type": "string"}
        )
    vip = await owner.mutation("mailingLists:create", {"name": "VIP", "requireDoubleOptIn": False})
    trial = await owner.mutation(
        "mailingLists:create", {"name": "Trial", "requireDoubleOptIn": False}
    )
    steps = [
        {"type": "updateContact", "config": {"properties": {"stage": "customer"}}},
        {"type": "addToList", "config": {"listId": vip}},
        {"type": "removeFromList", "config": {"listId": trial}},
    ]
    automation_id = await _active(owner, "contact_updated", steps, propertyKey="plan")
    contact_id = await _contact(owner, "bo@example.com")
    await owner.mutation("mailingLists:addContact", {"listId": trial, "contactId": contact_id})
    await owner.mutation("contacts:update", {"contactId": contact_id, "firstName": "Bo"})
    assert await _runs(owlat, automation_id) == []
    await owner.mutation(
        "contacts:update", {"contactId": contact_id, "properties": {"plan": "pro"}}
    )
    (run,) = await _settled_runs(owlat, automation_id, 1)
    assert run["status"] == "completed" and run["triggerData"] == {"propertyKey": "plan"}
    contact = await owner.query("contacts:get", {"contactId": contact_id})
    assert contact["properties"] == {"plan": "pro", "stage": "customer"}
    assert contact["mailingListIds"] == [vip]


async def test_event_received_and_list_subscribed_start_runs_and_webhook_step(
    owlat: Application, team: tuple[Caller, Caller, str]
) -> None:
    owner, _, organization_id = team
    webhook = await owner.mutation(
        "webhooks:create",
        {"name": "CRM", "url": "https://hooks.example.com/x", "events": ["email.sent"]},
    )
    hook_step = {"type": "webhook", "config": {"webhookId": webhook["webhookId"]}}
    on_event = await _active(owner, "event_received", [hook_step], eventName="purchase")
    news = await owner.mutation(
        "mailingLists:create", {"name": "News", "requireDoubleOptIn": False}
    )
    on_list = await _active(owner, "list_subscribed", [WEEK], listId=news)
    contact_id = await _contact(owner, "cy@example.com")
    for name in ("browse", "purchase"):
        await owlat.run_mutation(
            "restApi/events:record",
            {"organizationId": organization_id, "email": "cy@example.com", "eventName": name,
             "eventProperties": {}, "createContactIfNotExists": False},
            internal=True,
        )  # fmt: skip
    (run,) = await _settled_runs(owlat, on_event, 1)
    assert run["status"] == "completed" and run["triggerData"]["eventName"] == "purchase"

    async def logs(ctx: Any) -> list[dict[str, Any]]:
        return [dict(row) for row in await ctx.db.query("webhookDeliveryLogs").collect()]

    (log,) = await in_query(owlat, logs)
    payload = json.loads(log["payload"])
    assert log["event"] == payload["event"] == "automation.webhook"
    assert payload["data"]["contactId"] == contact_id
    assert payload["data"]["trigger_eventName"] == "purchase"
    await owner.mutation("mailingLists:addContact", {"listId": news, "contactId": contact_id})
    (waiting,) = await _runs(owlat, on_list)
    assert waiting["status"] == "running" and waiting["triggerData"] == {"listId": news}
    # a contact with a running run of the automation does not enter it again
    await owner.mutation("mailingLists:removeContact", {"listId": news, "contactId": contact_id})
    await owner.mutation("mailingLists:addContact", {"listId": news, "contactId": contact_id})
    assert len(await _runs(owlat, on_list)) == 1


async def test_condition_branches_and_skipped_steps(
    owlat: Application, team: tuple[Caller, Caller, str]
) -> None:
    owner, _, _ = team
    await owner.mutation(
        "contactProperties:create", {"key": "plan", "label": "Plan", "type": "string"}
    )
    pro = {"kind": "contact_property", "field": "plan", "operator": "equals", "value": "pro"}
    steps = [
        {"type": "condition", "config": {"filters": {"logic": "AND", "conditions": [pro]},
                                         "yesBranchStepIndex": 2, "noBranchStepIndex": 1}},
        {"type": "updateContact", "config": {"lastName": "Free"}},
        {"type": "updateContact", "config": {"lastName": "Pro"}},
    ]  # fmt: skip
    automation_id = await _active(owner, "contact_created", steps)
    paying = await _contact(owner, "pro@example.com", properties={"plan": "pro"})
    free = await _contact(owner, "free@example.com")
    await _settled_runs(owlat, automation_id, 2)
    assert (await owner.query("contacts:get", {"contactId": paying}))["lastName"] == "Pro"
    # the free contact goes on to step 2 after step 1 (no branch is an end)
    assert (await owner.query("contacts:get", {"contactId": free}))["lastName"] == "Pro"
    stats = await owner.query("automations:stats", {"automationId": automation_id})
    assert [(s["completed"], s["skipped"]) for s in stats["steps"]] == [(2, 0), (1, 1), (2, 0)]


async def test_delay_waits_before_its_step(
    owlat: Application, team: tuple[Caller, Caller, str]
) -> None:
    owner, _, _ = team
    automation_id = await _active(owner, "contact_created", [WEEK])
    await _contact(owner, "dee@example.com")
    (run,) = await _runs(owlat, automation_id)
    assert run["nextStepAt"] - run["startedAt"] == 7 * 86_400_000
    await asyncio.sleep(0.3)
    assert (await _run(owlat, run["_id"]))["stepsExecuted"] == 0
    await _execute(owlat, run["_id"], 0)  # the job, when the week has passed
    assert (await _run(owlat, run["_id"]))["status"] == "completed"


# -- execution guarantees --------------------------------------------------------------------


async def test_a_step_job_that_runs_twice_executes_once(
    owlat: Application, team: tuple[Caller, Caller, str], tmp_path: Path
) -> None:
    owner, _, _ = team
    template_id = await _template(owner)
    email = {"type": "email", "config": {"templateId": template_id}}
    automation_id = await _active(owner, "contact_created", [WEEK, email])
    await _contact(owner, "eve@example.com")
    (run,) = await _runs(owlat, automation_id)
    await asyncio.gather(*(_execute(owlat, run["_id"], 0) for _ in range(4)))
    await _mails_to(tmp_path, "eve@example.com")
    (done,) = await _settled_runs(owlat, automation_id, 1)
    await _execute(owlat, run["_id"], 1)  # the email step's job again, after the end
    assert done["stepsExecuted"] == 2
    assert len(await _sends(owlat, automation_id)) == 1
    stats = await owner.query("automations:stats", {"automationId": automation_id})
    assert [step["completed"] for step in stats["steps"]] == [1, 1]


async def test_a_contact_who_unsubscribes_mid_run_gets_no_email(
    owlat: Application, team: tuple[Caller, Caller, str], tmp_path: Path
) -> None:
    owner, _, _ = team
    template_id = await _template(owner)
    email = {"type": "email", "config": {"templateId": template_id}}
    automation_id = await _active(owner, "contact_created", [WEEK, email])
    contact_id = await _contact(owner, "fay@example.com")
    (run,) = await _runs(owlat, automation_id)
    await owner.mutation("contacts:update", {"contactId": contact_id, "unsubscribed": True})
    await _execute(owlat, run["_id"], 0)
    await _settled_runs(owlat, automation_id, 1)
    async with asyncio.timeout(30):
        while True:
            (send,) = await _sends(owlat, automation_id)
            if send["status"] == "failed":
                break
            await asyncio.sleep(0.02)
    assert "unsubscribed" in send["errorMessage"]
    assert [mail for mail in outbox(tmp_path) if mail["To"] == "fay@example.com"] == []


async def _fail_to_the_end(owlat: Application, run_id: str) -> dict[str, Any]:
    """Drive a failing run's retries without waiting for them (a retry job that comes
    anyway finds its seq taken and does nothing)."""
    async with asyncio.timeout(30):
        while True:
            run = await _run(owlat, run_id)
            if run["status"] != "running":
                return run
            await _execute(owlat, run_id, run["seq"])


async def test_failed_steps_retry_three_times_and_five_failed_runs_pause(
    owlat: Application, team: tuple[Caller, Caller, str]
) -> None:
    owner, _, _ = team
    doomed = await owner.mutation("mailingLists:create", {"name": "Doomed"})
    automation_id = await _active(
        owner, "contact_created", [{"type": "addToList", "config": {"listId": doomed}}]
    )
    await owner.mutation("mailingLists:delete", {"listId": doomed})
    for number in range(5):
        await _contact(owner, f"fail{number}@example.com")
        run = next(r for r in await _runs(owlat, automation_id) if r["status"] == "running")
        failed = await _fail_to_the_end(owlat, run["_id"])
        assert failed["status"] == "failed" and failed["retries"] == 3
        assert failed["error"] == "steps[0] (addToList): The step's mailing list was deleted"
    automation = await owner.query("automations:get", {"automationId": automation_id})
    assert automation["status"] == "paused"
    assert automation["pausedReason"].startswith("5 runs in a row failed")
    await _contact(owner, "late@example.com")
    assert len(await _runs(owlat, automation_id)) == 5
    stats = await owner.query("automations:stats", {"automationId": automation_id})
    assert (stats["failed"], stats["steps"][0]["retried"], stats["steps"][0]["failed"]) == (
        5,
        15,
        5,
    )


async def test_a_run_stops_after_100_steps(
    owlat: Application, team: tuple[Caller, Caller, str]
) -> None:
    owner, _, _ = team
    always = {"logic": "AND", "conditions": []}
    steps = [
        {"type": "updateContact", "config": {"lastName": "Loop"}},
        {"type": "condition", "config": {"filters": always, "yesBranchStepIndex": 0}},
    ]
    automation_id = await _active(owner, "contact_created", steps)
    await _contact(owner, "loop@example.com")
    (run,) = await _settled_runs(owlat, automation_id, 1)
    assert (run["status"], run["stepsExecuted"]) == ("failed", 100)
    assert run["error"] == "The run executed 100 steps (a loop?)"


async def test_pausing_and_changed_steps_cancel_runs_at_their_next_step(
    owlat: Application, team: tuple[Caller, Caller, str]
) -> None:
    owner, _, _ = team
    automation_id = await _active(owner, "contact_created", [WEEK, WEEK])
    await _contact(owner, "gil@example.com")
    await _contact(owner, "hal@example.com")
    first, second = await _runs(owlat, automation_id)
    await owner.mutation("automations:pause", {"automationId": automation_id})
    await _execute(owlat, first["_id"], 0)
    assert (await _run(owlat, first["_id"]))["error"] == "The automation is paused"
    await owner.mutation("automations:update", {"automationId": automation_id, "steps": [WEEK]})
    await owner.mutation("automations:activate", {"automationId": automation_id})
    await _execute(owlat, second["_id"], 0)
    cancelled = await _run(owlat, second["_id"])
    assert (cancelled["status"], cancelled["error"]) == (
        "cancelled",
        "The automation's steps changed",
    )


async def test_redrive_schedules_overdue_steps_again(
    owlat: Application, team: tuple[Caller, Caller, str]
) -> None:
    owner, _, _ = team
    automation_id = await _active(owner, "contact_created", [WEEK])
    await _contact(owner, "ivy@example.com")
    (run,) = await _runs(owlat, automation_id)
    assert (await owlat.run_mutation("automations:redrive", {}, internal=True)).value == 0

    async def overdue(ctx: Any) -> None:
        await ctx.db.patch(run["_id"], {"nextStepAt": run["startedAt"] - 120_000})

    await in_mutation(owlat, overdue)
    redriven = await owlat.run_mutation("automations:redrive", {}, internal=True)
    assert redriven.value == 1
    (done,) = await _settled_runs(owlat, automation_id, 1)
    assert done["status"] == "completed"


async def test_list_subscribed_waits_for_the_double_opt_in(
    owlat: Application, team: tuple[Caller, Caller, str], tmp_path: Path
) -> None:
    owner, _, _ = team
    doi = await owner.mutation("mailingLists:create", {"name": "DOI", "requireDoubleOptIn": True})
    automation_id = await _active(owner, "list_subscribed", [WEEK], listId=doi)
    contact_id = await _contact(owner, "jo@example.com")
    added = await owner.mutation(
        "mailingLists:addContact", {"listId": doi, "contactId": contact_id}
    )
    assert added["outcome"] == "pending_doi"
    assert await _runs(owlat, automation_id) == []
    (mail,) = await _mails_to(tmp_path, "jo@example.com")
    match = re.search(r"/confirm\?token=([A-Za-z0-9]+)", mail_text(mail))
    assert match is not None

    async def confirm(ctx: Any) -> None:
        await confirm_doi(ctx, match.group(1))

    await in_mutation(owlat, confirm)
    (run,) = await _runs(owlat, automation_id)
    assert (run["contactId"], run["triggerData"]) == (contact_id, {"listId": doi})


async def test_removing_an_automation_purges_its_runs_and_stats(
    owlat: Application, team: tuple[Caller, Caller, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    owner, _, _ = team
    monkeypatch.setattr("owlat.app.automations.BATCH", 2)  # several purge batches
    automation_id = await _active(owner, "contact_created", [WEEK])
    for number in range(3):
        await _contact(owner, f"kim{number}@example.com")
    assert len(await _runs(owlat, automation_id)) == 3
    await owner.mutation("automations:pause", {"automationId": automation_id})
    await owner.mutation("automations:remove", {"automationId": automation_id})

    async def left(ctx: Any) -> int:
        runs = await ctx.db.query("automationRuns").collect()
        stats = await ctx.db.query("automationStats").collect()
        return len(runs) + len(stats)

    async with asyncio.timeout(30):
        while True:
            if not await in_query(owlat, left):
                break
            await asyncio.sleep(0.02)
    with pytest.raises(ConvexError, match="^Automation not found$"):
        await owner.query("automations:get", {"automationId": automation_id})


async def test_an_automation_activated_mid_call_sees_the_next_contact(
    owlat: Application, team: tuple[Caller, Caller, str]
) -> None:
    """Trigger lookups are read once per call (lib/call_cache.py), but a write to
    `automations` in the same call is seen by the next contact's trigger."""
    owner, _, organization_id = team
    automation_id = await owner.mutation(
        "automations:create",
        {"name": "Flow", "triggerType": "contact_created", "steps": [WEEK]},
    )

    async def body(ctx: Any) -> None:
        for email, activate in (("before@example.com", True), ("after@example.com", False)):
            record = contact_record(organization_id, email, "api", {}, {}, 1.0)
            await ctx.db.insert("contacts", record)
            if activate:
                await ctx.db.patch(automation_id, {"status": "active"})

    await in_mutation(owlat, body)
    runs = await _runs(owlat, automation_id)
    emails = [(await in_query(owlat, lambda ctx, r=run: ctx.db.get(r["contactId"])))["email"]
              for run in runs]  # fmt: skip
    assert emails == ["after@example.com"]
