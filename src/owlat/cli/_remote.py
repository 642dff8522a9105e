"""A running server, called with the admin key: `POST /api/function` (the HTTP function
API, where internal functions are allowed to admins), file uploads, and the sync socket
that pushes a query's results (the PyPI `convex` client)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import IO, Any

import httpx

from owlat.cli._shared import CliError

CLIENT_ID = "owlat-cli-0.1.0"
# Connecting must not hang; a function may run as long as it needs (as with `owlat run`).
TIMEOUT = httpx.Timeout(None, connect=30.0)
# How long following a query waits for a server that refuses the subscription (restarting).
SUBSCRIBE_WAIT_SECONDS = 30.0


class Remote:
    """Calls to the server at `url` with the admin `key`."""

    def __init__(self, url: str, key: str) -> None:
        self.url = url.rstrip("/")
        self.key = key
        self.http = httpx.Client(timeout=TIMEOUT, headers={"Convex-Client": CLIENT_ID})

    def __enter__(self) -> Remote:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.http.close()

    def function(self, path: str, args: dict[str, Any]) -> dict[str, Any]:
        """The server's reply to a call: `{status, value | errorMessage, errorData?,
        logLines}` with values in Convex's encoded JSON."""
        from owlat.runtime.values import convex_to_json, dumps, loads

        body = {"path": path, "args": convex_to_json(args), "format": "convex_encoded_json"}
        response = self._send(
            "POST",
            self.url + "/api/function",
            content=dumps(body),
            headers={"Content-Type": "application/json", "Authorization": f"Convex {self.key}"},
        )
        reply: dict[str, Any] = loads(response.content)
        return reply

    def call(self, path: str, args: dict[str, Any]) -> Any:
        """The value the function returned; its failure raises `CliError`."""
        from owlat.runtime.values import json_to_convex

        reply = self.function(path, args)
        if reply.get("status") != "success":
            data = reply.get("errorData")  # a refusal's own sentence (ConvexError)
            raise CliError(data if isinstance(data, str) else str(reply.get("errorMessage")))
        return json_to_convex(reply["value"])

    def upload(self, url: str, file: IO[bytes], size: int) -> str:
        """POST `size` bytes of `file` to an upload URL; the stored file's id."""
        from owlat.runtime.values import loads

        response = self._send(
            "POST",
            url,
            content=file,
            headers={"Content-Type": "text/csv", "Content-Length": str(size)},
        )
        return str(loads(response.content)["storageId"])

    async def subscribe(self, path: str, args: dict[str, Any]) -> AsyncIterator[Any]:
        """Every result the server pushes for the query `path(args)`, first the current one
        (over the sync socket; after a lost connection the client reconnects and goes on)."""
        from convex import ConvexClient, ConvexError

        # A server that is restarting refuses the subscription itself ("channel closed"):
        # try again for a while; once subscribed, the client reconnects on its own.
        deadline = time.monotonic() + SUBSCRIBE_WAIT_SECONDS
        while True:
            client = ConvexClient(self.url)
            client.set_admin_auth(self.key)
            try:
                # The async iterator awaits each push without holding the GIL (the blocking
                # one would): rich keeps drawing the progress bar meanwhile.
                results = client.subscribe(path, args)
                break
            except Exception as error:
                if time.monotonic() > deadline:
                    raise CliError(f"cannot follow {path} on {self.url}: {error}") from None
                await asyncio.sleep(0.5)
        try:
            while True:
                yield await results.__anext__()
        except ConvexError as error:
            raise CliError(error.data if isinstance(error.data, str) else str(error)) from None
        except StopAsyncIteration:
            return
        except Exception as error:  # the server's error message for the query
            raise CliError(str(error)) from None

    def _send(self, method: str, url: str, **request: Any) -> httpx.Response:
        from owlat.runtime.errors import OwlatError
        from owlat.runtime.values import loads

        try:
            response = self.http.request(method, url, **request)
        except httpx.TransportError as error:
            raise CliError(f"cannot reach {self.url}: {error}") from None
        if response.is_success:
            return response
        try:
            refusal: Any = loads(response.content)
            detail = f"{refusal['code']}: {refusal['message']}"
        except (OwlatError, KeyError, TypeError):
            detail = response.text[:500]
        raise CliError(f"{response.status_code} {detail}")
