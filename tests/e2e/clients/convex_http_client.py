"""The PyPI `convex` HTTP client against an Owlat server (run as a script, in its own
process: a blocking client must not hold the test's event loop).

    python convex_http_client.py URL TOKEN
Prints one JSON line with what each call returned or raised.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

from convex import ConvexError, ConvexInt64
from convex.http_client import ConvexHttpClient


def outcome(call: Callable[[], Any]) -> dict[str, Any]:
    try:
        value = call()
    except ConvexError as error:
        return {"convexError": str(error), "data": error.data}
    except Exception as error:
        return {"error": f"{type(error).__name__}: {error}"}
    if isinstance(value, dict) and isinstance(value.get("int64"), ConvexInt64):
        value = {**value, "int64": f"ConvexInt64({value['int64'].value})"}
    if isinstance(value, dict) and isinstance(value.get("bytes"), bytes):
        value = {**value, "bytes": value["bytes"].hex()}
    return {"value": value}


def main(url: str, token: str) -> None:
    client = ConvexHttpClient(url)
    out = {
        "sent": outcome(lambda: client.mutation("messages:send", {"channel": "py", "body": "hi"})),
        "listed": outcome(lambda: client.query("messages:list", {"channel": "py"})),
        "action": outcome(
            lambda: client.action("counters:incrementMany", {"name": "py", "times": 2})
        ),
        "values": outcome(lambda: client.query("probes:values")),
        "convexError": outcome(
            lambda: client.mutation("messages:send", {"channel": "py", "body": ""})
        ),
        "thrown": outcome(lambda: client.action("probes:fail", {"message": "boom"})),
        "anonymous": outcome(lambda: client.query("probes:whoami")),
    }
    client.set_auth(token)
    out["identity"] = outcome(lambda: client.query("probes:whoami"))
    client.set_auth("not-a-jwt")
    out["badToken"] = outcome(lambda: client.query("probes:whoami"))
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
