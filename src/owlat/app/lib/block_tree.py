"""Saved-block references and translation overlays, on a template's block JSON.

A template's blocks (upstream's `EditorBlock[]`, already checked by
`rendering.validate_content`) hold lists of blocks at several places: the content itself,
`items` of container and hero blocks, each column of a columns block and the `items` of
each accordion section. Paths are written as the validator writes them:
`content[3].columns[1][0]`.

Saved blocks. A block inserted from a saved block carries `savedBlockRef {blockId,
groupId?, blockName?}`; the saved block's blocks (one or more) sit in the list as one
*group*: a run of neighbours with the same `blockId` and `groupId` (the editor gives each
insertion its own `groupId`). `sync_saved_blocks` replaces every group of a block it is
given by a fresh copy of that block's current blocks (a linked block is not edited in
place; a template detaches it to change it). The first block of a group keeps the group's
first id, the k-th gets `<that id>-<k>`, so syncing twice gives the same JSON.
`strip_saved_blocks` drops the references to blocks being deleted, leaving their blocks
in place as ordinary blocks.

Translations. A language's overlay holds only translatable text by block id:
`{blockId: {html?, buttonText?, alt?}}` (the html of a text block, the text of a button,
the alt of an image). `merge_translation` lays it over the default content;
`translatable_text` reads it back out of a content (the overlay a new language starts
from).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

RawBlock = dict[str, Any]
# block type -> (overlay key, content field)
OVERLAY_FIELDS = {
    "text": ("html", "html"),
    "button": ("buttonText", "text"),
    "image": ("alt", "alt"),
}


@dataclass(frozen=True)
class SavedBlock:
    """A saved block as templates embed it: its name and its blocks (raw JSON)."""

    name: str
    blocks: list[RawBlock]


def child_lists(block: RawBlock) -> Iterator[tuple[str, list[Any]]]:
    """The block lists nested in `block`, with their path relative to it."""
    content = block.get("content")
    if not isinstance(content, dict):
        return
    kind = block.get("type")
    if kind in ("container", "hero") and isinstance(content.get("items"), list):
        yield ".items", content["items"]
    elif kind == "columns" and isinstance(content.get("columns"), list):
        for i, column in enumerate(content["columns"]):
            if isinstance(column, list):
                yield f".columns[{i}]", column
    elif kind == "accordion" and isinstance(content.get("sections"), list):
        for i, section in enumerate(content["sections"]):
            if isinstance(section, dict) and isinstance(section.get("items"), list):
                yield f".sections[{i}].items", section["items"]


def walk(blocks: list[Any], path: str = "content") -> Iterator[tuple[str, RawBlock]]:
    """Every block with its path, depth first."""
    for i, block in enumerate(blocks):
        if not isinstance(block, dict):
            continue
        at = f"{path}[{i}]"
        yield at, block
        for suffix, children in child_lists(block):
            yield from walk(children, at + suffix)


def _ref_id(block: Any) -> str | None:
    ref = block.get("savedBlockRef") if isinstance(block, dict) else None
    block_id = ref.get("blockId") if isinstance(ref, dict) else None
    return block_id if isinstance(block_id, str) else None


def saved_block_refs(blocks: list[Any]) -> list[tuple[str, str]]:
    """(path of the `blockId`, saved block id) of every reference, in document order."""
    return [
        (f"{path}.savedBlockRef.blockId", block_id)
        for path, block in walk(blocks)
        if (block_id := _ref_id(block)) is not None
    ]


def sync_saved_blocks(blocks: list[Any], saved: Mapping[str, SavedBlock]) -> list[Any]:
    """A copy of `blocks` whose groups of the blocks in `saved` hold their current blocks;
    references to other ids are kept as they are."""
    result = copy.deepcopy(blocks)
    _sync_list(result, saved)
    return result


def _sync_list(blocks: list[Any], saved: Mapping[str, SavedBlock]) -> None:
    out: list[Any] = []
    i = 0
    while i < len(blocks):
        block = blocks[i]
        block_id = _ref_id(block)
        if block_id is None or block_id not in saved:
            if isinstance(block, dict):
                for _, children in child_lists(block):
                    _sync_list(children, saved)
            out.append(block)
            i += 1
            continue
        group = block["savedBlockRef"].get("groupId")
        end = i + 1
        while (
            end < len(blocks)
            and _ref_id(blocks[end]) == block_id
            and blocks[end]["savedBlockRef"].get("groupId") == group
        ):
            end += 1
        out.extend(_group(block["id"], block_id, group, saved[block_id]))
        i = end
    blocks[:] = out


def _group(first_id: str, block_id: str, group: Any, source: SavedBlock) -> Iterator[RawBlock]:
    ref: dict[str, Any] = {"blockId": block_id, "blockName": source.name}
    if group is not None:
        ref["groupId"] = group
    for k, block in enumerate(source.blocks):
        fresh = copy.deepcopy(block)
        fresh["id"] = first_id if k == 0 else f"{first_id}-{k}"
        fresh["savedBlockRef"] = dict(ref)
        yield fresh


def strip_saved_blocks(blocks: list[Any], block_ids: set[str]) -> list[Any]:
    """A copy of `blocks` without references to `block_ids` (their blocks stay)."""
    result = copy.deepcopy(blocks)
    for _, block in walk(result):
        if _ref_id(block) in block_ids:
            del block["savedBlockRef"]
    return result


def translatable_text(blocks: list[Any]) -> dict[str, dict[str, str]]:
    """The overlay that renders exactly as `blocks` do: translatable text by block id."""
    overlay: dict[str, dict[str, str]] = {}
    for _, block in walk(blocks):
        fields = OVERLAY_FIELDS.get(block.get("type", ""))
        content = block.get("content")
        if fields is None or not isinstance(content, dict):
            continue
        key, source = fields
        if isinstance(content.get(source), str) and content[source]:
            overlay[str(block.get("id"))] = {key: content[source]}
    return overlay


def merge_translation(blocks: list[Any], overlay: Mapping[str, Mapping[str, str]]) -> list[Any]:
    """A copy of `blocks` with the overlay's text in place (ids it does not know, and
    fields that do not fit a block's type, are ignored)."""
    result = copy.deepcopy(blocks)
    for _, block in walk(result):
        fields = OVERLAY_FIELDS.get(block.get("type", ""))
        text = overlay.get(str(block.get("id")))
        if fields is not None and text is not None and fields[0] in text:
            block["content"][fields[1]] = text[fields[0]]
    return result


def block_ids(blocks: list[Any]) -> set[str]:
    return {str(block.get("id")) for _, block in walk(blocks)}
