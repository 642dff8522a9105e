"""`owlat.runtime.JSONResponse` writes numbers as JavaScript's `JSON.stringify` does."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from owlat.runtime import Int64, JSONResponse


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (120.0, "120"),
        (0.0, "0"),
        (-0.0, "0"),
        (-3.0, "-3"),
        (1.5, "1.5"),
        (2.0**53, "9007199254740992"),
        (1e20, "100000000000000000000"),  # JavaScript: 100000000000000000000
        (1e21, "1e+21"),  # JavaScript: 1e+21
        (-1e300, "-1e+300"),
        (math.nan, "null"),
        (math.inf, "null"),
        (-math.inf, "null"),
        (7, "7"),
        (Int64(2**63 - 1), "9223372036854775807"),
        (True, "true"),
        (None, "null"),
        ("120.0 ü", '"120.0 ü"'),
    ],
)
def test_numbers_as_json_stringify_writes_them(value: Any, text: str) -> None:
    assert JSONResponse(value).body == text.encode()


def test_nested_values_and_the_response() -> None:
    body = {"data": [{"n": 1.0, "f": 0.25}], "page": (2.0, {"deep": [[-0.0]]}), "ok": False}
    response = JSONResponse(body, status_code=201, headers={"cache-control": "no-store"})
    assert response.body == b'{"data":[{"n":1,"f":0.25}],"page":[2,{"deep":[[0]]}],"ok":false}'
    assert json.loads(response.body) == {**body, "page": [2, {"deep": [[0]]}]}
    assert response.status_code == 201
    assert response.headers["content-type"] == "application/json"
    assert response.headers["cache-control"] == "no-store"
    assert body["data"][0]["n"] == 1.0 and isinstance(body["data"][0]["n"], float)  # untouched
