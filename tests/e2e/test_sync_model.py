"""Model-based reactivity test: random subscriptions, random writes, every pushed result checked.

Ten sockets subscribe, at random moments, to random queries over the fixture's `items`
table: paginated first and later pages (ascending and descending), index ranges, a filtered
scan, `first`, `unique` (which fails while a value is duplicated) and counts; now and then a
subscription is removed. In each round several clients commit random inserts, patches and
deletes concurrently over their own sockets; then, with no write in flight, every live
subscription's latest pushed result must equal a fresh run of its query at the latest
timestamp (a paginated one with the end cursor its journal pins), and every Transition must
start where the socket's previous one ended. A subscription that misses an update is caught
within the round it was missed in.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from owlat.runtime import mutation, query, v
from owlat.runtime.subscriptions import apply_journal
from owlat.runtime.values import convex_to_json, json_to_convex
from tests.e2e.conftest import Issuers
from tests.e2e.sync_harness import RawSocket, SyncServer, sync_server
from tests.e2e.sync_messages import add, modify
from tests.e2e.sync_messages import mutation as mutation_message

pytestmark = pytest.mark.timeout(120)

ROUNDS = 30
SETTLE_SECONDS = 5.0
TAGS = ["a", "b"]


def _order(args: dict[str, Any]) -> str:
    return "desc" if args["descending"] else "asc"


@query(args={"tag": v.string(), "descending": v.boolean(), "paginationOpts": v.any()})
async def page(ctx: Any, args: dict[str, Any]) -> Any:
    return await (
        ctx.db.query("items")
        .with_index("by_tag_value", lambda q: q.eq("tag", args["tag"]))
        .order(_order(args))
        .paginate(args["paginationOpts"])
    )


@query(args={"low": v.number(), "high": v.number(), "descending": v.boolean(), "n": v.number()})
async def value_range(ctx: Any, args: dict[str, Any]) -> Any:
    return await (
        ctx.db.query("items")
        .with_index("by_value", lambda q: q.gte("value", args["low"]).lt("value", args["high"]))
        .order(_order(args))
        .take(int(args["n"]))
    )


@query(args={"tag": v.string(), "min": v.number()})
async def filtered(ctx: Any, args: dict[str, Any]) -> Any:
    return await (
        ctx.db.query("items")
        .filter(
            lambda q: q.and_(
                q.eq(q.field("tag"), args["tag"]), q.gte(q.field("value"), args["min"])
            )
        )
        .collect()
    )


@query(args={"tag": v.string(), "descending": v.boolean()})
async def first(ctx: Any, args: dict[str, Any]) -> Any:
    return await (
        ctx.db.query("items")
        .with_index("by_tag_value", lambda q: q.eq("tag", args["tag"]))
        .order(_order(args))
        .first()
    )


@query(args={"value": v.number()})
async def unique(ctx: Any, args: dict[str, Any]) -> Any:
    return await (
        ctx.db.query("items")
        .with_index("by_value", lambda q: q.eq("value", args["value"]))
        .unique()
    )


@query(args={"tag": v.string(), "below": v.number()})
async def count(ctx: Any, args: dict[str, Any]) -> float:
    counted = await (
        ctx.db.query("items")
        .with_index("by_tag_value", lambda q: q.eq("tag", args["tag"]).lt("value", args["below"]))
        .count()
    )
    return float(counted)


@query(args={})
async def ids(ctx: Any, args: dict[str, Any]) -> list[str]:
    return [document["_id"] for document in await ctx.db.query("items").collect()]


@mutation(
    args={"op": v.string(), "id": v.optional(v.id("items")), "value": v.number(), "tag": v.string()}
)
async def write(ctx: Any, args: dict[str, Any]) -> Any:
    """Insert, patch or delete an item; a patch or delete of a deleted item does nothing."""
    if args["op"] == "insert":
        return await ctx.db.insert("items", {"value": args["value"], "tag": args["tag"]})
    if await ctx.db.get(args["id"]) is None:
        return None
    if args["op"] == "patch":
        await ctx.db.patch(args["id"], {"value": args["value"], "tag": args["tag"]})
    else:
        await ctx.db.delete(args["id"])
    return None


MODEL_FUNCTIONS = {
    "modelTest:page": page,
    "modelTest:valueRange": value_range,
    "modelTest:filtered": filtered,
    "modelTest:first": first,
    "modelTest:unique": unique,
    "modelTest:count": count,
    "modelTest:ids": ids,
    "modelTest:write": write,
}


def normalized(value: Any) -> Any:
    """JSON with every number a float (the wire writes `1.0` and `1` alike)."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, list):
        return [normalized(item) for item in value]
    return {key: normalized(item) for key, item in value.items()}


@dataclasses.dataclass
class Subscription:
    query_id: int
    path: str
    args: dict[str, Any]
    state: tuple[str, Any] | None = None  # ("ok", value) or ("failed", message)
    journal: str | None = None


class Subscriber:
    """A socket whose Transitions are applied as they arrive."""

    def __init__(self, socket: RawSocket) -> None:
        self.socket = socket
        self.subscriptions: dict[int, Subscription] = {}
        self.version: dict[str, Any] = {"querySet": 0, "identity": 0, "ts": "AAAAAAAAAAA="}
        self.query_set = 0
        self.next_query_id = 0
        self.errors: list[str] = []

    async def add(self, path: str, args: dict[str, Any]) -> None:
        query_id = self.next_query_id
        self.next_query_id += 1
        self.subscriptions[query_id] = Subscription(query_id, path, args)
        await self.socket.send(
            modify(self.query_set, self.query_set + 1, add(query_id, path, args))
        )
        self.query_set += 1

    async def remove(self, query_id: int) -> None:
        del self.subscriptions[query_id]
        removal = {"type": "Remove", "queryId": query_id}
        await self.socket.send(modify(self.query_set, self.query_set + 1, removal))
        self.query_set += 1

    async def follow(self) -> None:
        while True:
            message = await self.socket.receive(within=3600)
            if message["type"] != "Transition":
                self.errors.append(f"unexpected message {message}")
                continue
            if message["startVersion"] != self.version:
                self.errors.append(f"a Transition was skipped: {message['startVersion']}")
            self.version = message["endVersion"]
            for change in message["modifications"]:
                subscription = self.subscriptions.get(change["queryId"])
                if subscription is None:
                    continue  # removed since
                if change["type"] == "QueryUpdated":
                    subscription.state = ("ok", normalized(change["value"]))
                    subscription.journal = change.get("journal")
                elif change["type"] == "QueryFailed":
                    subscription.state = ("failed", change["errorMessage"])
                    subscription.journal = change.get("journal")


async def expected(server: SyncServer, subscription: Subscription) -> tuple[str, Any]:
    args = apply_journal(json_to_convex(subscription.args), subscription.journal)
    try:
        result = await server.application.run_query(subscription.path, args)
    except Exception as error:
        return ("failed", type(error).__name__)
    return ("ok", normalized(convex_to_json(result.value)))


def matches(state: tuple[str, Any] | None, wanted: tuple[str, Any]) -> bool:
    if state is None:
        return False
    if wanted[0] == "failed":
        return state[0] == "failed"
    return state == wanted


async def random_query(server: SyncServer, rng: random.Random) -> tuple[str, dict[str, Any]]:
    kind = rng.choice(["first page", "later page", "range", "filtered", "first", "unique", "count"])
    tag, descending = rng.choice(TAGS), rng.random() < 0.5
    if kind in ("first page", "later page"):
        options: dict[str, Any] = {"numItems": float(rng.randint(1, 6)), "cursor": None}
        args = {"tag": tag, "descending": descending, "paginationOpts": options}
        if kind == "later page":
            first_page = await server.application.run_query("modelTest:page", args)
            options = {**options, "cursor": first_page.value["continueCursor"]}
            args = {**args, "paginationOpts": options}
        return "modelTest:page", args
    if kind == "range":
        low = float(rng.randint(0, 15))
        return "modelTest:valueRange", {
            "low": low,
            "high": low + rng.randint(1, 8),
            "descending": descending,
            "n": float(rng.randint(1, 5)),
        }
    if kind == "filtered":
        return "modelTest:filtered", {"tag": tag, "min": float(rng.randint(0, 15))}
    if kind == "first":
        return "modelTest:first", {"tag": tag, "descending": descending}
    if kind == "unique":
        return "modelTest:unique", {"value": float(rng.randint(0, 20))}
    return "modelTest:count", {"tag": tag, "below": float(rng.randint(0, 20))}


async def random_writes(server: SyncServer, writer: RawSocket, rng: random.Random, n: int) -> None:
    live = (await server.application.run_query("modelTest:ids", {})).value
    for request_id in range(n):
        op = rng.choice(["insert", "insert", "patch", "delete"]) if live else "insert"
        args: dict[str, Any] = {
            "op": op,
            "value": float(rng.randint(0, 20)),
            "tag": rng.choice(TAGS),
        }
        if op != "insert":
            args["id"] = rng.choice(live)
        await writer.send(mutation_message(request_id, "modelTest:write", args))
    answered = 0
    while answered < n:
        message = await writer.receive(within=20)
        if message["type"] == "MutationResponse":
            assert message["success"], message
            answered += 1


async def settled(server: SyncServer, subscribers: list[Subscriber], round_number: int) -> None:
    """Wait until every subscription shows a fresh run of its query (no write in flight)."""
    deadline = asyncio.get_running_loop().time() + SETTLE_SECONDS
    while True:
        wrong = []
        for subscriber in subscribers:
            assert not subscriber.errors, subscriber.errors
            for subscription in list(subscriber.subscriptions.values()):
                wanted = await expected(server, subscription)
                if not matches(subscription.state, wanted):
                    wrong.append((subscription.path, subscription.args, subscription.state, wanted))
        if not wrong:
            return
        if asyncio.get_running_loop().time() > deadline:
            path, args, state, wanted = wrong[0]
            pytest.fail(
                f"round {round_number}: {len(wrong)} subscription(s) not current after "
                f"{SETTLE_SECONDS} s, e.g. {path} {args}:\n pushed   {state}\n expected {wanted}"
            )
        await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def model_server(
    tmp_path: Path, issuers: Issuers, database_url: str
) -> AsyncIterator[SyncServer]:
    async with sync_server(tmp_path, issuers, database_url=database_url) as server:
        for path, definition in MODEL_FUNCTIONS.items():
            server.application.package.functions.add(path, definition)
        yield server


@pytest.mark.parametrize("seed", [1, 2])
async def test_every_subscription_stays_equal_to_a_fresh_query(
    tmp_path: Path, issuers: Issuers, database_url: str, seed: int
) -> None:
    rng = random.Random(seed)
    async with (
        model_server(tmp_path, issuers, database_url) as server,
        contextlib.AsyncExitStack() as stack,
    ):
        sockets = [
            await stack.enter_async_context(RawSocket.open(server.ws_url)) for _ in range(13)
        ]
        # few queries per socket: a socket re-runs every stale query of its set when any of
        # them is invalidated, which would hide one that is never woken by itself
        subscribers = [Subscriber(socket) for socket in sockets[:10]]
        writers = sockets[10:]
        followers = [asyncio.create_task(subscriber.follow()) for subscriber in subscribers]
        try:
            for round_number in range(ROUNDS):
                for subscriber in rng.sample(subscribers, rng.randint(1, 2)):
                    await subscriber.add(*await random_query(server, rng))
                for subscriber in subscribers:
                    if subscriber.subscriptions and rng.random() < 0.05:
                        await subscriber.remove(rng.choice(list(subscriber.subscriptions)))
                if rng.random() < 0.3:
                    await settled(server, subscribers, round_number)  # writes right after
                active = rng.sample(writers, rng.randint(1, len(writers)))
                await asyncio.gather(
                    *(random_writes(server, writer, rng, rng.randint(1, 3)) for writer in active)
                )
                await settled(server, subscribers, round_number)
        finally:
            for follower in followers:
                follower.cancel()
        subscribed = sum(len(subscriber.subscriptions) for subscriber in subscribers)
        assert subscribed >= 10, "the model should end with many live subscriptions"
