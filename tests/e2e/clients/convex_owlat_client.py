"""The PyPI `convex` client calling Owlat's session-scoped functions with a user's JWT
(run in its own process): python convex_owlat_client.py URL TOKEN
Prints one JSON line: the active organization, or the error."""

from __future__ import annotations

import json
import sys
from typing import Any

from convex import ConvexError
from convex.http_client import ConvexHttpClient


def main(url: str, token: str) -> None:
    client = ConvexHttpClient(url)
    client.set_auth(token)
    out: dict[str, Any]
    try:
        out = {"value": client.query("organizations:getActive", {})}
    except ConvexError as error:
        out = {"convexError": str(error), "data": error.data}
    except Exception as error:
        out = {"error": f"{type(error).__name__}: {error}"}
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
