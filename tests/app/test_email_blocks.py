"""emailBlocks:* and lib/saved_blocks.py (reference §7.4): saved blocks linked by templates;
a change is carried into every linking template (marked stale, re-rendered in batches by a
scheduled job that survives failures and restarts); deletion detaches them."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from owlat.app.lib import instance, saved_blocks
from owlat.runtime import ConvexError
from owlat.runtime.application import Application
from owlat.runtime.testing import in_query, open_test_app
from tests.app.conftest import (
    BASE_URL,
    FAST,
    Caller,
    owner_and_editor,
    signed_in,
    with_organization,
)
from tests.app.rendering.samples import text_block
from tests.app.template_samples import columns, create, get


@pytest.fixture
async def owlat(owlat_on_both_engines: Application) -> Application:
    """These tests run on SQLite and PostgreSQL."""
    return owlat_on_both_engines


def saved(html: str, block_id: str = "s1") -> str:
    return json.dumps([text_block(html, block_id)])


def linked(block_id: str, group: str = "g1", first_id: str = "ref") -> dict[str, Any]:
    """A block inserted from saved block `block_id` (its content as the editor had it)."""
    return {
        **text_block("<p>as inserted</p>", first_id),
        "savedBlockRef": {"blockId": block_id, "groupId": group, "blockName": "Footer"},
    }


async def new_block(caller: Caller, html: str = "<p>Footer v1</p>", name: str = "Footer") -> str:
    return str(await caller.mutation("emailBlocks:create", {"name": name, "content": saved(html)}))


async def change(caller: Caller, block_id: str, html: str) -> dict[str, Any]:
    return dict(
        await caller.mutation("emailBlocks:update", {"blockId": block_id, "content": saved(html)})
    )


async def settled(caller: Caller, block_id: str) -> None:
    """Wait until the block's propagation is over (or the block is gone)."""
    async with asyncio.timeout(30):
        while True:
            block = await caller.query("emailBlocks:get", {"blockId": block_id})
            if block is None or block.get("propagation") is None:
                return
            await asyncio.sleep(0.02)


# -- saved blocks ------------------------------------------------------------------------------


async def test_saved_block_content_is_checked(owlat: Application) -> None:
    owner, editor, _ = await owner_and_editor(owlat)
    with pytest.raises(ConvexError, match="^Admin access required$"):
        await new_block(editor)
    for content, message in (
        ("[]", "^content: a saved block holds at least one block$"),
        (
            json.dumps([text_block("<p>x</p>"), linked("abc")]),
            r"^content\[1\]\.savedBlockRef\.blockId: a saved block cannot link other saved",
        ),
        (
            json.dumps(
                [columns([], [{"id": "i", "type": "image", "content": {"src": "ftp://x"}}])]
            ),
            r"^content\[0\]\.columns\[1\]\[0\]\.src: ",
        ),
    ):
        with pytest.raises(ConvexError, match=message):
            await owner.mutation("emailBlocks:create", {"name": "Bad", "content": content})
    await new_block(owner)
    listed = await editor.query("emailBlocks:list", {"search": "foot"})
    assert [(b["name"], b["blockCount"], b["usageCount"]) for b in listed] == [("Footer", 1, 0)]


async def test_templates_link_only_saved_blocks_of_their_organization(
    owlat: Application,
) -> None:
    owner, editor, _ = await owner_and_editor(owlat)
    stranger = await signed_in(owlat, "b@example.com")
    await with_organization(stranger, "org-b")
    theirs = await new_block(stranger)
    for block_id in (theirs, "not-an-id"):
        with pytest.raises(
            ConvexError,
            match=r"^content\[1\]\.savedBlockRef\.blockId: is not a saved block of this org",
        ):
            await create(editor, [text_block("<p>x</p>"), linked(block_id)])
    assert (await stranger.query("emailBlocks:get", {"blockId": theirs}))["usageCount"] == 0
    assert await owner.query("emailBlocks:get", {"blockId": theirs}) is None


async def test_a_saved_block_previews_alone_for_members_of_its_organization(
    owlat: Application,
) -> None:
    owner, editor, _ = await owner_and_editor(owlat)
    block_id = await new_block(owner, "<p>Hello {{firstName}}, bye {{nickname}}</p>")
    shown = await editor.query("emailBlocks:preview", {"blockId": block_id})
    assert "Hello Jane, bye" in shown["html"]
    assert "Hello Jane" in shown["lightHtml"]
    assert "Hello Jane" in shown["darkHtml"]
    assert shown["missing"] == ["nickname"]
    assert shown["subject"] == ""
    assert shown["widths"]["mobile"] < shown["widths"]["desktop"]
    assert shown["stale"] is False
    stranger = await signed_in(owlat, "b@example.com")
    await with_organization(stranger, "org-b")
    with pytest.raises(ConvexError, match="^Saved block not found$"):
        await stranger.query("emailBlocks:preview", {"blockId": block_id})


async def test_linked_groups_take_the_saved_blocks_content_on_save(owlat: Application) -> None:
    owner, editor, _ = await owner_and_editor(owlat)
    block_id = await new_block(owner)
    template_id = await create(editor, [linked(block_id), text_block("<p>Body</p>", "body")])
    stored = await get(owner, template_id)
    content = json.loads(stored["content"])
    assert content[0]["id"] == "ref" and content[0]["content"]["html"] == "<p>Footer v1</p>"
    assert content[0]["savedBlockRef"] == {
        "blockId": block_id,
        "groupId": "g1",
        "blockName": "Footer",
    }
    assert stored["linkedBlockIds"] == [block_id]
    copy_id = await editor.mutation("emailTemplates:duplicate", {"templateId": template_id})
    assert (await owner.query("emailBlocks:get", {"blockId": block_id}))["usageCount"] == 2
    await editor.mutation("emailTemplates:remove", {"templateId": copy_id})
    unlinked = [text_block("<p>Body</p>", "body")]
    await editor.mutation(
        "emailTemplates:update", {"templateId": template_id, "content": json.dumps(unlinked)}
    )
    assert (await owner.query("emailBlocks:get", {"blockId": block_id}))["usageCount"] == 0


# -- propagation -------------------------------------------------------------------------------


async def test_a_change_rerenders_every_linking_template(owlat: Application) -> None:
    owner, editor, _ = await owner_and_editor(owlat)
    block_id = await new_block(owner)
    other_block = await new_block(owner, "<p>Other</p>", "Other")
    two_groups = [
        linked(block_id, "g1", "a"),
        text_block("<p>mid</p>", "m"),
        linked(block_id, "g2", "b"),
    ]
    in_column = [columns([linked(block_id, "g1", "c")], [linked(other_block, "g9", "o")])]
    template_ids = [await create(editor, content) for content in (two_groups, in_column)]
    published = await create(editor, [linked(block_id)])
    await owner.mutation("emailTemplates:publish", {"templateId": published})
    template_ids.append(published)
    unrelated = await create(editor, [linked(other_block)])
    before = await get(owner, unrelated)
    two_blocks = json.dumps([text_block("<p>New A</p>", "x"), text_block("<p>New B</p>", "y")])
    await owner.mutation(
        "emailBlocks:update", {"blockId": block_id, "name": "Footer 2", "content": two_blocks}
    )
    await settled(owner, block_id)
    for template_id in template_ids:
        stored = await get(owner, template_id)
        assert stored["htmlRenderState"] == {"stale": False, "failureCount": 0}
        assert "New A" in stored["plainTextContent"] and "New B" in stored["plainTextContent"]
        assert "Footer v1" not in stored["htmlContent"]
    content = json.loads((await get(owner, template_ids[0]))["content"])
    assert [b["id"] for b in content] == ["a", "a-1", "m", "b", "b-1"]
    assert content[1]["savedBlockRef"] == {
        "blockId": block_id,
        "groupId": "g1",
        "blockName": "Footer 2",
    }
    assert (await get(owner, published))["status"] == "published"
    assert await get(owner, unrelated) == before
    block = await owner.query("emailBlocks:get", {"blockId": block_id})
    assert block["usageCount"] == 3 and block["revision"] == 1


async def test_changes_and_deletions_reach_transactional_emails(owlat: Application) -> None:
    owner, editor, _ = await owner_and_editor(owlat)
    block_id = await new_block(owner)
    content = json.dumps([linked(block_id), text_block("<p>Body</p>", "body")])
    email_id = await editor.mutation(
        "transactionalEmails:create",
        {"name": "Receipt", "slug": "receipt", "subject": "Thanks", "content": content},
    )
    ident = {"transactionalEmailId": email_id}
    await owner.mutation("transactionalEmails:publish", ident)
    assert (await owner.query("emailBlocks:get", {"blockId": block_id}))["usageCount"] == 1
    await change(owner, block_id, "<p>Footer v2</p>")
    await settled(owner, block_id)
    stored = await owner.query("transactionalEmails:get", ident)
    assert "Footer v2" in stored["plainTextContent"] and stored["status"] == "published"
    assert stored["htmlRenderState"] == {"stale": False, "failureCount": 0}
    await owner.mutation("emailBlocks:remove", {"blockId": block_id})
    await settled(owner, block_id)
    stored = await owner.query("transactionalEmails:get", ident)
    assert stored["linkedBlockIds"] == [] and "savedBlockRef" not in stored["content"]
    assert "Footer v2" in stored["plainTextContent"]


async def test_a_template_that_no_longer_renders_keeps_its_html_and_records_why(
    owlat: Application,
) -> None:
    owner, editor, _ = await owner_and_editor(owlat)
    block_id = await new_block(owner)
    in_column = await create(editor, [columns([linked(block_id)])])
    on_top = await create(editor, [linked(block_id)])
    before = await get(owner, in_column)
    container = {
        "id": "box",
        "type": "container",
        "content": {"items": [text_block("<p>Boxed</p>")]},
    }
    await owner.mutation(
        "emailBlocks:update", {"blockId": block_id, "content": json.dumps([container])}
    )
    await settled(owner, block_id)
    failed = await get(owner, in_column)
    state = failed["htmlRenderState"]
    assert state["stale"] is True and state["failureCount"] == 1 and state["lastFailureAt"] > 0
    assert "a container block cannot go here" in state["error"]
    assert failed["htmlContent"] == before["htmlContent"] and failed["content"] == before["content"]
    assert "Boxed" in (await get(owner, on_top))["plainTextContent"]


async def test_deleting_a_saved_block_detaches_it_from_its_templates(owlat: Application) -> None:
    owner, editor, _ = await owner_and_editor(owlat)
    block_id = await new_block(owner)
    template_id = await create(editor, [linked(block_id), text_block("<p>Body</p>", "body")])
    await owner.mutation("emailBlocks:remove", {"blockId": block_id})
    assert await owner.query("emailBlocks:get", {"blockId": block_id}) is None
    assert await owner.query("emailBlocks:list", {}) == []
    stored = await get(owner, template_id)
    content = json.loads(stored["content"])
    assert "savedBlockRef" not in content[0] and content[0]["content"]["html"] == "<p>Footer v1</p>"
    assert stored["linkedBlockIds"] == [] and "Footer v1" in stored["plainTextContent"]

    async def gone(ctx: Any) -> Any:
        return await ctx.db.get(block_id)

    assert await in_query(owlat, gone) is None


# -- batches, failures, restarts ---------------------------------------------------------------


@pytest.fixture
def small_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(saved_blocks, "MARK_BATCH", 3)
    monkeypatch.setattr(saved_blocks, "RENDER_BATCH", 2)


async def _states(caller: Caller, template_ids: list[str]) -> list[tuple[bool, bool]]:
    """(stale, has the new text) of each template."""
    out = []
    for template_id in template_ids:
        stored = await get(caller, template_id)
        out.append((stored["htmlRenderState"]["stale"], "v2" in stored["plainTextContent"]))
    return out


async def test_changes_are_marked_at_once_and_rendered_in_resumable_batches(
    tmp_path: Path, database_url: str, small_batches: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no scheduler running, the steps are run by hand: the changing mutation marks
    the first `MARK_BATCH` templates stale; a step that fails halfway changes nothing; a
    resume continues under a new revision, and a step of the old one does nothing."""
    instance.configure(tmp_path, BASE_URL, **FAST)  # type: ignore[arg-type]
    async with open_test_app(
        "owlat.app", tmp_path, database_url=database_url, scheduler_parallelism=None
    ) as app:
        owner, editor, _ = await owner_and_editor(app)
        block_id = await new_block(owner)
        template_ids = [await create(editor, [linked(block_id)]) for _ in range(5)]
        await change(owner, block_id, "<p>Footer v2</p>")
        assert await _states(owner, template_ids) == [(True, False)] * 3 + [(False, False)] * 2

        async def run_step(revision: float) -> dict[str, Any]:
            args = {"blockId": block_id, "revision": revision}
            await app.run_mutation("emailBlocks:propagate", args, internal=True)
            return dict(await owner.query("emailBlocks:get", {"blockId": block_id}))

        block = await run_step(1)  # marks the other two; the render phase comes next
        assert block["propagation"]["phase"] == "render"
        assert await _states(owner, template_ids) == [(True, False)] * 5
        block = await run_step(1)  # renders two
        assert await _states(owner, template_ids) == [(False, True)] * 2 + [(True, False)] * 3
        cursor = block["propagation"]["cursor"]

        calls = 0
        rerender = saved_blocks.rerender

        async def dies_on_the_second(ctx: Any, template: dict[str, Any]) -> bool:
            nonlocal calls
            calls += 1
            if calls == 2:
                raise RuntimeError("the worker died")
            return await rerender(ctx, template)

        monkeypatch.setattr(saved_blocks, "rerender", dies_on_the_second)
        with pytest.raises(RuntimeError, match="the worker died"):
            await run_step(1)
        monkeypatch.setattr(saved_blocks, "rerender", rerender)
        # rolled back whole: the first template of the batch too, and the cursor
        assert await _states(owner, template_ids) == [(False, True)] * 2 + [(True, False)] * 3
        block = dict(await owner.query("emailBlocks:get", {"blockId": block_id}))
        assert block["propagation"]["cursor"] == cursor
        resume = "emailBlocks:resumeStalledPropagations"
        assert (await app.run_mutation(resume, {"idleMs": 60_000}, internal=True)).value == 0
        assert (await app.run_mutation(resume, {"idleMs": 0}, internal=True)).value == 1
        await run_step(1)  # the old revision's step: nothing
        assert await _states(owner, template_ids) == [(False, True)] * 2 + [(True, False)] * 3
        await run_step(2)
        block = await run_step(2)
        assert block.get("propagation") is None and block["revision"] == 2
        assert await _states(owner, template_ids) == [(False, True)] * 5


async def test_a_propagation_interrupted_by_a_restart_goes_on(
    tmp_path: Path, database_url: str, small_batches: None
) -> None:
    """A server stopped with a step pending: the next server runs the rest."""
    instance.configure(tmp_path, BASE_URL, **FAST)  # type: ignore[arg-type]
    async with open_test_app(
        "owlat.app", tmp_path, database_url=database_url, scheduler_parallelism=None
    ) as down:
        owner, editor, _ = await owner_and_editor(down)
        block_id = await new_block(owner)
        template_ids = [await create(editor, [linked(block_id)]) for _ in range(5)]
        await change(owner, block_id, "<p>Footer v2</p>")
    async with open_test_app("owlat.app", tmp_path, database_url=database_url) as restarted:
        owner = dataclasses.replace(owner, app=restarted)
        await settled(owner, block_id)
        assert await _states(owner, template_ids) == [(False, True)] * 5
