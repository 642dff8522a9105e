"""blockSchema:get: the block schema as data for the dashboard's editor, read by members
only; it describes what validate_content accepts."""

from __future__ import annotations

from typing import Any

import pytest

from owlat.app.lib.rendering import validate_content
from owlat.runtime import ConvexError
from owlat.runtime.application import Application
from tests.app.conftest import owner_and_editor, signed_in


def field(fields: list[dict[str, Any]], name: str) -> dict[str, Any]:
    (found,) = [f for f in fields if f["name"] == name]
    return found


async def test_members_read_the_block_schema(owlat: Application) -> None:
    _, editor, _ = await owner_and_editor(owlat)
    schema = await editor.query("blockSchema:get", {})
    types = {t["type"]: t for t in schema["types"]}
    assert len(types) == 17
    assert types["columns"]["children"] == "columns"
    assert types["container"]["children"] == "items"
    assert types["text"]["children"] is None
    assert field(types["button"]["fields"], "url") == {
        "name": "url",
        "kind": "url",
        "required": True,
        "image": False,
    }
    assert field(types["image"]["fields"], "src")["image"] is True
    assert field(types["text"]["fields"], "blockType")["choices"] == ["paragraph", "h1", "h2", "h3"]
    assert field(types["columns"]["fields"], "columnCount") == {
        "name": "columnCount",
        "kind": "number",
        "required": False,
        "low": 1,
        "high": 4,
        "integer": True,
    }
    menu_items = field(types["menu"]["fields"], "items")
    assert menu_items["kind"] == "items"
    assert [f["name"] for f in menu_items["item"]["fields"]] == ["label", "url"]
    common = {f["name"]: f["kind"] for f in schema["common"]}
    assert common["hideOnMobile"] == "flag"
    assert common["darkBackgroundColor"] == "color"
    assert common["condition"] == "record"
    assert field(schema["common"], "cssClass")["hint"].startswith("up to 10 CSS class")
    assert schema["columnItemTypes"] == ["text", "image", "button", "divider", "spacer"]
    assert "columns" in schema["containerItemTypes"]


async def test_every_described_required_field_is_required_by_the_validator(
    owlat: Application,
) -> None:
    """A block with only its described required fields (sample values) validates; one
    without any of them is refused at that field."""
    _, editor, _ = await owner_and_editor(owlat)
    schema = await editor.query("blockSchema:get", {})
    samples = {
        "html": "<p>x</p>",
        "text": "x",
        "url": "https://example.com/x.png",
        "number": 1,
    }
    for kind in schema["types"]:
        required = [f for f in kind["fields"] if f["required"] and f["kind"] in samples]
        content = {f["name"]: samples[f["kind"]] for f in required}
        children = kind["children"]
        if children is not None:  # not a described field: its blocks
            content[children] = [[]] if children == "columns" else []
        block = {"id": "b1", "type": kind["type"], "content": content}
        if all(f["kind"] in samples for f in kind["fields"] if f["required"]):
            validate_content([block])
        for f in required:
            without = {k: v for k, v in content.items() if k != f["name"]}
            with pytest.raises(Exception, match=rf"\.{f['name']}: is required"):
                validate_content([{**block, "content": without}])


async def test_the_block_schema_needs_an_organization(owlat: Application) -> None:
    stranger = await signed_in(owlat, "nobody@example.com")
    with pytest.raises(ConvexError):
        await stranger.query("blockSchema:get", {})
