"""Open and click tracking on the site port (reference §4, §8.3, §15), and its figures.

    GET /t/o/{sendId}                always 200, a 1×1 transparent GIF, never cached
    GET /t/c/{sendId}/{target}/{sig} 302 to the signed target (`lib/tracking/links.py`);
                                     a link whose signature is not ours: 400, a path that
                                     is not a click link: 404 (never a redirect)

What a request gets is decided once (`open_answer`, `click_answer`: precomputed answers),
for the HTTP actions here and for the lean route `owlat serve` puts before the site's
HTTP-action stack (`tracking_paths.py`). Each request is counted per client address in
memory first (the instance's `tracking_requests`, 150/min, upstream's 100/min with burst
150): past it, the pixel and the redirect are still served but nothing is recorded, so a
flood costs no write. The events of concurrent requests are committed together
(`_Batches`: one `record` mutation for all that arrived while the one before ran; each
answer waits for the commit of its event, so nothing answered is lost in a crash). An
open or click is then applied to its send (`lib/sending/feedback.py`, any send table by
its id, `send_tables.py`), an open flagged when a mailbox provider's proxy made it
(`lib/tracking/prefetch.py`); each send and contact the batch touches is written once
(`lib/pending_writes.py`), and the campaign counters it moves are moved once, by their
sums (`lib/tracking/counts.py`).

`tracking:stats` (any member): the organization's transactional sends (or one
transactional email's) counted by what happened to them, opens with and without proxies.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import weakref
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from owlat.app.auth_routes.wire import client_ip
from owlat.app.lib.instance import current
from owlat.app.lib.pending_writes import PendingWrites
from owlat.app.lib.sending import feedback
from owlat.app.lib.sending.send_tables import SEND_TABLES, table_of
from owlat.app.lib.session_organization import get_team_id_from_session, now_ms
from owlat.app.lib.tracking.counts import FoldedCounts
from owlat.app.lib.tracking.links import verified_target
from owlat.app.lib.tracking.prefetch import prefetcher
from owlat.runtime import (
    ActionCtx,
    HttpAction,
    MutationCtx,
    QueryCtx,
    http_action,
    internal,
    internal_mutation,
    query,
    v,
)

OPEN_PREFIX = "/t/o/"
CLICK_PREFIX = "/t/c/"
GIF = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
NO_STORE = {
    "cache-control": "no-store, no-cache, must-revalidate, proxy-revalidate",
    "pragma": "no-cache",
    "expires": "0",
}


EVENT = v.object(
    {
        "sendId": v.string(),
        "kind": v.union(v.literal("opened"), v.literal("clicked")),
        "url": v.optional(v.string()),
        "prefetcher": v.optional(v.string()),
    }
)


@internal_mutation(args={"events": v.array(EVENT)})
async def record(ctx: MutationCtx, args: dict[str, Any]) -> None:
    """Apply opens and clicks to their sends, in order (an unknown send: nothing); each
    touched send and contact is written once, at the end (`PendingWrites`)."""
    at = now_ms()
    counts = FoldedCounts()  # the campaigns' counters, moved once at the end
    writes = PendingWrites(ctx)
    for item in args["events"]:
        send_id = item["sendId"]
        table = table_of(ctx, send_id)
        row = None if table is None else await writes.get(send_id)
        if table is not None and row is not None:
            event = feedback.Event(
                item["kind"], at, url=item.get("url"), prefetcher=item.get("prefetcher")
            )
            await feedback.apply(ctx, counts.table(table), row, event, writes)
    await writes.flush()
    await counts.apply(ctx, SEND_TABLES)


class _Batches:
    """Group commit of the events of concurrent requests (one event loop's): a request's
    event joins `pending` and its request waits for its own future. The first event when
    none is being recorded starts the committer, a task that runs one `record` mutation
    for everything pending, then again for what arrived meanwhile, until nothing is left.
    It takes the batch only when it starts, after the requests that arrived with the first
    one have joined (they run before a new task does), so a burst is one mutation rather
    than a lone event and then the rest. Each request answers once the mutation holding
    its event has committed (or raises its error): an answered event is durable."""

    def __init__(self) -> None:
        self.pending: list[tuple[dict[str, Any], asyncio.Future[None]]] = []
        self.committer: asyncio.Task[None] | None = None  # while events are being recorded

    async def record(self, ctx: ActionCtx, event: dict[str, Any]) -> None:
        recorded: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.pending.append((event, recorded))
        if self.committer is None:
            # its own task: a request that goes away does not take the others' commit along
            self.committer = asyncio.ensure_future(self._commit_all(ctx))
        await recorded

    async def _commit_all(self, ctx: ActionCtx) -> None:
        try:
            while self.pending:
                batch, self.pending = self.pending, []
                try:
                    events = [event for event, _ in batch]
                    await ctx.run_mutation(internal.tracking.record, {"events": events})
                except Exception as error:
                    for _, waiter in batch:
                        if not waiter.done():  # done: its request went away
                            waiter.set_exception(error)
                else:
                    for _, waiter in batch:
                        if not waiter.done():
                            waiter.set_result(None)
        finally:
            self.committer = None


_BATCHES: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Batches] = (
    weakref.WeakKeyDictionary()
)


async def _record(ctx: ActionCtx, event: dict[str, Any]) -> None:
    loop = asyncio.get_running_loop()
    batches = _BATCHES.get(loop)
    if batches is None:
        batches = _BATCHES[loop] = _Batches()
    await batches.record(ctx, event)


@dataclasses.dataclass(frozen=True, slots=True)
class Answer:
    """What a tracking request gets (status, raw headers, body), and the event to record
    and commit before it is sent (None: nothing to record)."""

    status: int
    headers: tuple[tuple[bytes, bytes], ...]
    body: bytes = b""
    event: dict[str, Any] | None = None


_NO_STORE = tuple((name.encode(), value.encode()) for name, value in NO_STORE.items())
_REDIRECT_TAIL = (*_NO_STORE, (b"content-length", b"0"))  # a 302's headers after `location`


def make_answer(status: int, body: bytes, *headers: tuple[bytes, bytes]) -> Answer:
    """An answer with `headers`, the body's length and NO_STORE (as Starlette's `Response`
    would write them)."""
    return Answer(status, (*headers, *_NO_STORE, (b"content-length", b"%d" % len(body))), body)


# the fixed answers, made once
PIXEL = make_answer(200, GIF, (b"content-type", b"image/gif"))
NOT_A_LINK = make_answer(404, b"Not a tracking link")
INVALID_LINK = make_answer(400, b"Invalid tracking link")


def _admitted(address: str) -> bool:
    return current().tracking_requests.take(address) is None


def open_answer(path: str, user_agent: str, address: str) -> Answer:
    """`GET /t/o/{sendId}` from `address` (the client, `client_ip`): always the pixel;
    an open to record unless the path is not a send's or the address is over its limit."""
    send_id = path[len(OPEN_PREFIX) :]
    if not send_id or "/" in send_id or not _admitted(address):
        return PIXEL
    event = {"sendId": send_id, "kind": "opened"}
    proxy = prefetcher(user_agent, address)
    if proxy is not None:
        event["prefetcher"] = proxy
    return Answer(PIXEL.status, PIXEL.headers, PIXEL.body, event)


def click_answer(path: str, address: str) -> Answer:
    """`GET /t/c/{sendId}/{target}/{sig}` from `address`: 404 when the path is not a click
    link, 400 when its signature is not ours (never a redirect), else 302 to the signed
    target, with a click to record unless the address is over its limit."""
    parts = path[len(CLICK_PREFIX) :].split("/")
    if len(parts) != 3 or not all(parts):
        return NOT_A_LINK
    send_id, encoded, signature = parts
    target = verified_target(send_id, encoded, signature)
    if target is None:
        return INVALID_LINK
    headers = ((b"location", target.encode("ascii")), *_REDIRECT_TAIL)  # as `make_answer`
    if not _admitted(address):
        return Answer(302, headers)
    return Answer(302, headers, event={"sendId": send_id, "kind": "clicked", "url": target})


async def answered(ctx: ActionCtx, answer: Answer) -> Answer:
    """`answer` once its event, if any, is committed (raises what recording raised)."""
    if answer.event is not None:
        await _record(ctx, answer.event)
    return answer


def _response(answer: Answer) -> Response:
    response = Response(status_code=answer.status)
    response.body = answer.body
    response.raw_headers = list(answer.headers)
    return response


async def _open(ctx: ActionCtx, request: Request) -> Response:
    user_agent = request.headers.get("user-agent", "")
    answer = open_answer(request.scope["path"], user_agent, client_ip(request))
    return _response(await answered(ctx, answer))


async def _click(ctx: ActionCtx, request: Request) -> Response:
    answer = click_answer(request.scope["path"], client_ip(request))
    return _response(await answered(ctx, answer))


def routes() -> list[tuple[str, str, HttpAction]]:
    """(prefix, method, handler) of the tracking endpoints."""
    return [(OPEN_PREFIX, "GET", http_action(_open)), (CLICK_PREFIX, "GET", http_action(_click))]


_FIGURES = {
    "sent": "sentAt",
    "delivered": "deliveredAt",
    "opened": "openedAt",
    "openedWithoutProxies": "humanOpenedAt",
    "clicked": "clickedAt",
    "bounced": "bouncedAt",
    "complained": "complainedAt",
}


@query(args={"transactionalEmailId": v.optional(v.string())})
async def stats(ctx: QueryCtx, args: dict[str, Any]) -> dict[str, float]:
    """Sends that reached each stage (`opened` counts proxies' opens, `openedWithoutProxies`
    does not), and the opens and proxy opens recorded in all."""
    organization_id = await get_team_id_from_session(ctx)
    email_id = args.get("transactionalEmailId")
    if email_id is None:
        query_ = ctx.db.query("transactionalSends").with_index(
            "by_org", lambda q: q.eq("organizationId", organization_id)
        )
    else:
        query_ = ctx.db.query("transactionalSends").with_index(
            "by_org_transactional_email",
            lambda q: q.eq("organizationId", organization_id).eq("transactionalEmailId", email_id),
        )
    figures = dict.fromkeys([*_FIGURES, "opens", "proxyOpens", "clicks"], 0.0)
    async for row in query_:
        if row.get("kind") == "test":
            continue
        for name, field in _FIGURES.items():
            figures[name] += row.get(field) is not None
        figures["opens"] += row.get("openCount") or 0
        figures["proxyOpens"] += row.get("proxyOpenCount") or 0
        figures["clicks"] += row.get("clickCount") or 0
    return figures
