"""Client messages of the sync protocol, as the raw-socket tests send them."""

from __future__ import annotations

from typing import Any


def add(query_id: int, path: str, args: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"type": "Add", "queryId": query_id, "udfPath": path, "args": [args], **extra}


def modify(base: int, new: int, *modifications: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "ModifyQuerySet",
        "baseVersion": base,
        "newVersion": new,
        "modifications": list(modifications),
    }


def mutation(request_id: int, path: str, args: dict[str, Any]) -> dict[str, Any]:
    return {"type": "Mutation", "requestId": request_id, "udfPath": path, "args": [args]}
