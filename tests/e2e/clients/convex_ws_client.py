"""The PyPI `convex` WebSocket client (`ConvexClient`) against an Owlat sync server (run as
a script, in its own process: its blocking calls must not hold the test's event loop).

    python convex_ws_client.py URL TOKEN
Prints one JSON line with what each call returned or raised.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

from convex import ConvexClient, ConvexError


def outcome(call: Callable[[], Any]) -> dict[str, Any]:
    try:
        return {"value": call()}
    except ConvexError as error:
        return {"convexError": str(error), "data": error.data}
    except Exception as error:
        return {"error": f"{type(error).__name__}: {error}"}


def bodies(messages: Any) -> list[str]:
    return [message["body"] for message in messages]


def main(url: str, token: str) -> None:
    client = ConvexClient(url)
    other = ConvexClient(url)
    out: dict[str, Any] = {
        "empty": outcome(lambda: client.query("messages:list", {"channel": "py"})),
        "sent": outcome(lambda: client.mutation("messages:send", {"channel": "py", "body": "hi"})),
        "listed": outcome(lambda: bodies(client.query("messages:list", {"channel": "py"}))),
        "action": outcome(
            lambda: client.action("counters:incrementMany", {"name": "py", "times": 2})
        ),
        "convexError": outcome(
            lambda: client.mutation("messages:send", {"channel": "py", "body": ""})
        ),
        "missing": outcome(lambda: client.query("messages:nope", {})),
    }

    subscription = client.subscribe("messages:list", {"channel": "live"})
    first = next(subscription)
    other.mutation("messages:send", {"channel": "live", "body": "from the other client"})
    second = next(subscription)
    subscription.unsubscribe()
    out["subscription"] = [bodies(first), bodies(second)]

    client.set_auth(token)
    out["signedIn"] = outcome(lambda: client.query("syncTest:whoami", {}))
    client.clear_auth()
    out["signedOut"] = outcome(lambda: client.query("syncTest:whoami", {}))
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
