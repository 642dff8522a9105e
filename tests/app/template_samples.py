"""Helpers of the template tests: blocks, templates made and read as a member, images."""

from __future__ import annotations

import json
import struct
import zlib
from typing import Any

from tests.app.conftest import Caller


def button(url: str, block_id: str = "b") -> dict[str, Any]:
    return {"id": block_id, "type": "button", "content": {"text": "Go", "url": url}}


def columns(*column_items: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "id": "cols",
        "type": "columns",
        "content": {"columnCount": len(column_items), "columns": list(column_items)},
    }


async def create(caller: Caller, blocks: list[dict[str, Any]], **fields: Any) -> str:
    args = {"name": "Welcome", "type": "marketing", "subject": "Hi {{firstName|'there'}}"}
    return str(
        await caller.mutation(
            "emailTemplates:create", {**args, **fields, "content": json.dumps(blocks)}
        )
    )


async def get(caller: Caller, template_id: str) -> dict[str, Any]:
    found = await caller.query("emailTemplates:get", {"templateId": template_id})
    assert found is not None
    return dict(found)


def png(width: int = 3, height: int = 2) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    rows = b"".join(b"\x00" + b"\x10\x20\x30" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )
