"""HttpRouter: definition-time checks and the lookup order (exact, then longest prefix)."""

from __future__ import annotations

from typing import Any

import pytest

from owlat.runtime import HttpRouter, http_action
from owlat.runtime.errors import DeveloperError


@http_action
async def a(ctx: Any, request: Any) -> Any:
    return None


@http_action
async def b(ctx: Any, request: Any) -> Any:
    return None


@http_action
async def c(ctx: Any, request: Any) -> Any:
    return None


def test_lookup_prefers_exact_then_longest_prefix() -> None:
    http = HttpRouter()
    http.route(path_prefix="/api/", method="GET", handler=a)
    http.route(path="/api/users", method="GET", handler=b)
    http.route(path_prefix="/api/users/", method="GET", handler=c)
    http.route(path="/api/users", method="post", handler=a)

    def found(path: str, method: str = "GET") -> Any:
        match = http.lookup(path, method)
        return None if match is None else (match.action, match.route)

    assert found("/api/users") == (b, "/api/users")
    assert found("/api/users/42") == (c, "/api/users/*")
    assert found("/api/other") == (a, "/api/*")
    assert found("/api") is None
    assert found("/api/users", "HEAD") == (b, "/api/users")
    assert found("/api/users", "POST") == (a, "/api/users")
    assert found("/api/other", "POST") is None
    assert found("/api/users", "DELETE") is None


@pytest.mark.parametrize(
    ("route", "message"),
    [
        ({"path": "/x", "method": "GET", "handler": a}, "defined twice"),
        ({"path_prefix": "/p/", "method": "GET", "handler": a}, "defined twice"),
        ({"path": "/y", "method": "HEAD", "handler": a}, "HEAD requests run the GET route"),
        ({"path": "/y", "method": "TRACE", "handler": a}, "cannot be routed"),
        ({"path": "y", "method": "GET", "handler": a}, "must start with '/'"),
        ({"path_prefix": "/p", "method": "POST", "handler": a}, "start and end with '/'"),
        ({"path": "/y", "path_prefix": "/y/", "method": "GET", "handler": a}, "exactly one"),
        ({"method": "GET", "handler": a}, "exactly one"),
        ({"path": "/z", "method": "GET", "handler": lambda ctx, r: None}, "http_action"),
    ],
)
def test_definition_errors(route: dict[str, Any], message: str) -> None:
    http = HttpRouter()
    http.route(path="/x", method="GET", handler=a)
    http.route(path_prefix="/p/", method="GET", handler=a)
    with pytest.raises(DeveloperError, match=message):
        http.route(**route)


def test_http_action_needs_an_async_function() -> None:
    with pytest.raises(DeveloperError, match="async function"):
        http_action(lambda ctx, request: None)  # type: ignore[arg-type,return-value]
