"""The sync worker: runs one socket's `SyncSession` over async I/O.

One worker per socket, modelled on Convex's `sync/src/worker.rs` (protocol doc §2.6):

* a *receiver* task reads frames, decodes them and queues them;
* the *worker loop* handles queued messages in arrival order (so an `Authenticate` applies
  to the mutations sent after it) and, whenever the session has work, computes **one**
  Transition at **one** snapshot, re-running only new and invalidated queries (the shared
  `SubscriptionManager` supplies cached results and wakes the worker on invalidation).
  When the cache holds every result needed at the latest processed commit, the Transition
  is made at that commit's ts without opening a snapshot at all;
* a *mutation* task runs the socket's mutations one at a time, in order (at most
  `max_pending_mutations` queued, else the socket is closed as overloaded); each is
  idempotent per (sessionId, requestId) through `_session_requests`;
* actions run concurrently (at most `max_inflight_actions`, else that action fails);
* after every MutationResponse, ActionResponse and Authenticate a Transition follows, and
  for a mutation its `endVersion.ts` is at least the commit ts;
* a JSON `{"type":"Ping"}` goes out after `ping_interval` seconds without output.

Pushing a commit to many sockets (issue 19): a commit that invalidates queries does not wake
each subscribed worker. The `SyncService` runs one task per batch of invalidations that
walks the subscribers (`_push_invalidated`): each *parked* worker (waiting for its next
message with nothing queued and no mutation running) gets its Transition made and written
right there, synchronously, from the shared cache at the latest processed commit
(`SyncWorker.push_now`), exactly as its own loop would have made it; a result missing from
the cache is computed once at that commit and the walk goes on. A worker that is busy, or
whose socket cannot take a frame without waiting, is woken instead and updates itself.

How a worker ends: `run()` returns None when the client went away, or the `OwlatError` the
socket should be closed with (the adapter maps its code to a close code): a protocol
violation (`ProtocolError`), a rejected token (after an `AuthError` message), overload, or
a `maxObservedTimestamp` far ahead of the server's clock.

Limits the client can hit without breaking the socket: function args larger than
`max_args_bytes` fail that request (QueryFailed / a failed response).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import secrets
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from owlat.runtime.auth import ANONYMOUS_CALLER, Authenticator, Caller
from owlat.runtime.calls import FunctionOutcome
from owlat.runtime.errors import (
    AuthenticationError,
    DeveloperError,
    OperatorError,
    OwlatError,
    UserError,
)
from owlat.runtime.functions import FunctionKind, canonical_path
from owlat.runtime.subscriptions import QueryKey, QueryResult, SubscriptionManager
from owlat.runtime.sync import session_requests
from owlat.runtime.sync.protocol import (
    Action,
    ActionResponse,
    Authenticate,
    AuthError,
    ClientMessage,
    Connect,
    Event,
    ModifyQuerySet,
    Mutation,
    MutationResponse,
    Ping,
    ProtocolError,
    QueryId,
    ServerMessage,
    decode_client_message,
    encode_server_message,
    encode_transition,
)
from owlat.runtime.sync.session import Failure, SyncSession, failure_of
from owlat.runtime.sync.session_requests import SessionRequest
from owlat.runtime.system_tables import SESSION_REQUESTS
from owlat.runtime.values import dumps, json_to_convex

if TYPE_CHECKING:
    from owlat.runtime.application import Application

logger = logging.getLogger("owlat.runtime.sync")


@dataclasses.dataclass(frozen=True, slots=True)
class SyncConfig:
    """Tunables of the sync endpoint (defaults are Convex's)."""

    ping_interval: float = 15.0  # seconds without output before a JSON Ping
    max_pending_mutations: int = 1000  # queued per socket before it is closed as overloaded
    max_inflight_actions: int = 1000  # running per socket before new actions fail
    max_args_bytes: int = 16 * 1024 * 1024  # encoded args of one call
    max_ts_ahead_ns: int = 60 * 10**9  # accepted lead of maxObservedTimestamp on our clock
    prune_interval: float = 3600.0  # seconds between prunes of `_session_requests`


class TooManyConcurrentRequests(OperatorError):
    """The client sent more requests than the server queues per socket."""

    code = "TooManyConcurrentRequests"


class ClientTimestampAhead(UserError):
    """The client has seen a timestamp this server has not reached."""

    code = "ClientTimestampAhead"


class ServerGoingAway(OperatorError):
    """The server is stopping: this socket's mutations are answered, then it is closed with
    1001 so that the client reconnects (to another node behind the load balancer)."""

    code = "GoingAway"


class SocketClosed(Exception):
    """The transport can no longer send (the client went away)."""


class Transport(Protocol):
    """What the worker needs from a socket: text frames in and out."""

    async def receive(self) -> str | None:
        """The next text frame, or None once the client has closed."""

    async def send(self, text: str) -> None:
        """Send a text frame; raises `SocketClosed` when the socket is gone."""

    def sender(self) -> Callable[[bytes], None] | None:
        """A function writing a text frame (UTF-8 bytes) at once, when the socket takes one
        without waiting; None when it cannot now (then `send` must be used)."""


class SyncService:
    """What every socket of one Application shares: subscriptions, auth, settings."""

    def __init__(
        self,
        application: Application,
        authenticator: Authenticator,
        config: SyncConfig | None = None,
    ) -> None:
        self.application = application
        self.authenticator = authenticator
        self.config = config or SyncConfig()
        self.subscriptions = SubscriptionManager(application)
        self.workers: set[SyncWorker] = set()
        self.open_sockets = 0  # accepted and not yet closed (server/websocket.py counts them)
        self._next_prune = 0.0
        self._to_push: dict[SyncWorker, None] = {}  # invalidated, in order, not yet pushed
        self._pusher: asyncio.Task[None] | None = None
        if application.metrics is not None:
            application.metrics.sync_sockets.set_function(lambda: self.open_sockets)
            application.metrics.subscriptions.set_function(self.subscriptions.count)

    async def prepare(self) -> None:
        """Per new socket: count commits made before the first one, prune old records."""
        self.subscriptions.catch_up()
        now = time.monotonic()
        if now >= self._next_prune:
            self._next_prune = now + self.config.prune_interval
            try:
                await self.application.run_system_write(session_requests.prune)
            except Exception:
                logger.exception("could not prune %s", SESSION_REQUESTS)

    def drop_connections(self) -> None:
        """Close every socket now, as if the network dropped (tests; shutdown)."""
        for worker in list(self.workers):
            worker.drop()

    async def drain(self, grace: float) -> None:
        """A graceful stop: every socket answers the mutations and actions it has started
        and is closed with 1001 (going away); those still busy after `grace` seconds are
        dropped."""
        for worker in list(self.workers):
            worker.go_away()
        deadline = time.monotonic() + grace
        while self.open_sockets and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
        self.drop_connections()
        deadline = time.monotonic() + 1.0  # their close frames are on the way
        while self.open_sockets and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.01)

    def close(self) -> None:
        self.drop_connections()
        self.subscriptions.close()
        if self._pusher is not None:
            self._pusher.cancel()

    def schedule_push(self, worker: SyncWorker) -> None:
        """`worker` has an invalidated query: push its update from the shared task."""
        self._to_push[worker] = None
        if self._pusher is None:
            self._pusher = asyncio.get_running_loop().create_task(
                self._push_invalidated(), name="sync-push"
            )

    async def _push_invalidated(self) -> None:
        """Push the updates of the invalidated workers (see the module docstring)."""
        try:
            while self._to_push:
                workers = list(self._to_push)
                self._to_push.clear()
                computed: set[QueryKey] = set()
                at = self._latest()
                for worker in workers:
                    try:
                        outcome = worker.push_now(*at) if at is not None else False
                        if isinstance(outcome, QueryKey) and outcome not in computed:
                            computed.add(outcome)
                            await self._compute_latest(outcome)
                            at = self._latest()  # commits may have been processed meanwhile
                            outcome = worker.push_now(*at) if at is not None else False
                    except Exception:
                        logger.exception("could not push an update; the socket's worker will")
                        outcome = False
                    if outcome is not True:
                        worker.wake()
        finally:
            self._pusher = None

    def _latest(self) -> tuple[int, Callable[[QueryResult], bool]] | None:
        """The ts pushes are made at (the latest commit, once processed) and the test of a
        result's validity there, shared by the pushes until the next await; None while the
        latest commit is not yet processed (the workers then update themselves)."""
        ts = self.subscriptions.processed_ts
        if ts != self.application.latest_ts:
            return None
        return ts, _valid_at(self.subscriptions, ts)

    async def _compute_latest(self, key: QueryKey) -> None:
        """Put the result of `key` at the latest processed commit in the shared cache."""
        ts = self.subscriptions.processed_ts
        if ts != self.application.latest_ts:
            return
        async with self.application.snapshot() as snapshot:
            if snapshot.ts == ts:
                await self.subscriptions.result_at(snapshot, key)


@dataclasses.dataclass(frozen=True, slots=True)
class _Frame:
    message: ClientMessage | ProtocolError
    size: int


@dataclasses.dataclass(frozen=True, slots=True)
class _Reply:
    message: MutationResponse | ActionResponse
    min_ts: int


class _Signal:
    """Queue items without data: the client closed, a drop, or an invalidation."""

    def __init__(self, name: str) -> None:
        self.name = name


_CLOSED = _Signal("closed")
_DROP = _Signal("drop")
_WAKE = _Signal("wake")
_Item = _Frame | _Reply | _Signal


class SyncWorker:
    """The protocol for one socket (see the module docstring)."""

    def __init__(self, service: SyncService, transport: Transport) -> None:
        self.service = service
        self.application = service.application
        self.subscriptions = service.subscriptions
        self.config = service.config
        self.transport = transport
        self.session = SyncSession(max_args_bytes=self.config.max_args_bytes)
        self._items: asyncio.Queue[_Item] = asyncio.Queue()
        self._mutations: asyncio.Queue[tuple[Mutation, Caller, int]] = asyncio.Queue(
            self.config.max_pending_mutations
        )
        self._actions: set[asyncio.Task[None]] = set()
        self._woken = False
        self._parked = False  # waiting for an item, with none queued: `push_now` may run
        self._invalidated = False  # since the last update: a commit changed a result
        self._going_away = False  # the server stops: finish what was started, then close
        self._mutation_running = False
        self._last_send = time.monotonic()

    # -- lifecycle ---------------------------------------------------------------------

    async def run(self) -> OwlatError | None:
        """Serve the socket until the client leaves (None) or it must be closed (error)."""
        self.service.workers.add(self)
        tasks = [
            asyncio.create_task(self._receive_loop(), name="sync-receive"),
            asyncio.create_task(self._mutation_loop(), name="sync-mutations"),
        ]
        try:
            return await self._loop()
        except SocketClosed:
            return None
        finally:
            self.service.workers.discard(self)
            self._apply_key_changes()
            for key in self.session.subscribed_keys():
                self.subscriptions.unsubscribe(key, self)
            pending = [*tasks, *self._actions]
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    def drop(self) -> None:
        """End the session at once, without replying to what is in flight."""
        self._items.put_nowait(_DROP)

    def go_away(self) -> None:
        """Take no new mutation or action; once those started are answered (and the
        update showing them sent), close with `ServerGoingAway`."""
        self._going_away = True
        self._items.put_nowait(_WAKE)

    def _gone(self) -> bool:
        return (
            self._going_away
            and self._mutations.empty()
            and not self._mutation_running
            and not self._actions
            and self._items.empty()
        )

    def query_invalidated(self) -> None:
        """A subscribed query's result changed: the service pushes the update soon."""
        self._invalidated = True
        self.service.schedule_push(self)

    def wake(self) -> None:
        """Make the worker's own loop look for work (it computes any update itself)."""
        if not self._woken:
            self._woken = True
            self._items.put_nowait(_WAKE)

    def push_now(self, ts: int, valid: Callable[[QueryResult], bool]) -> bool | QueryKey:
        """Make and send this socket's update at `ts`, the latest commit (processed; `valid`
        tells a result valid there), synchronously, when the worker is parked and every
        result it needs is cached (True). The key of a missing result, to compute first;
        False when the worker must update itself."""
        if not self._parked or self._mutation_running or not self._items.empty():
            return False
        if ts < self.session.version.ts:
            return False
        write = self.transport.sender()
        if write is None:
            return False
        results: dict[QueryId, QueryResult] = {}
        for query_id, key in self.session.plan_update(valid):
            result = self.subscriptions.cached_now(key, ts)
            if result is None:
                return key
            results[query_id] = result
        transition = self.session.complete_update(ts, results)
        self._apply_key_changes()
        if transition is not None:
            write(encode_transition(transition))
            self._sent(ts)
        self._invalidated = False
        return True

    # -- the loop ----------------------------------------------------------------------

    def _valid_now(self, result: QueryResult) -> bool:
        return self.subscriptions.valid_at(result, self.subscriptions.processed_ts)

    def _update_due(self) -> bool:
        # While a mutation of this socket runs, its commit may already be published: hold
        # updates back until its MutationResponse is queued, so the response always comes
        # before the Transition that shows the mutation's writes.
        return not self._mutation_running and self.session.has_work(self._valid_now)

    async def _loop(self) -> OwlatError | None:
        while True:
            item = await self._next(block=not self._update_due())
            while item is not None:
                if item is _CLOSED or item is _DROP:
                    return None
                error = await self._handle(item)
                if error is not None:
                    return error
                item = self._items.get_nowait() if not self._items.empty() else None
            if self._update_due():
                await self._update()
                await asyncio.sleep(0)  # let commits be published before looking again
            if self._gone():
                return ServerGoingAway("The server is stopping; reconnect")

    async def _next(self, *, block: bool) -> _Item | None:
        if not block:
            return None if self._items.empty() else self._items.get_nowait()
        while True:
            idle = time.monotonic() - self._last_send
            try:
                # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation.
                async with asyncio.timeout(max(0.0, self.config.ping_interval - idle)):
                    self._parked = True
                    try:
                        return await self._items.get()
                    finally:
                        self._parked = False
            except TimeoutError:
                await self._send(Ping())

    async def _send(self, message: ServerMessage) -> None:
        write = self.transport.sender()
        if write is not None:
            write(encode_server_message(message))
        else:
            await self.transport.send(encode_server_message(message).decode())
        self._last_send = time.monotonic()

    def _sent(self, ts: int) -> None:
        """Account for a Transition at `ts` just written by `push_now`."""
        self._last_send = time.monotonic()
        metrics = self.application.metrics
        if self._invalidated and metrics is not None:
            # commit timestamps are nanoseconds of the clock (database/commits.py)
            metrics.push_latency.observe(max(0, time.time_ns() - ts) / 1e9)

    async def _receive_loop(self) -> None:
        while True:
            text = await self.transport.receive()
            if text is None:
                self._items.put_nowait(_CLOSED)
                return
            try:
                message: ClientMessage | ProtocolError = decode_client_message(text)
            except ProtocolError as error:
                message = error
            self._items.put_nowait(_Frame(message, len(text)))

    async def _handle(self, item: _Item) -> OwlatError | None:
        if item is _WAKE:
            self._woken = False
            return None
        if isinstance(item, _Reply):
            await self._send(item.message)
            self.session.request_transition(item.min_ts)
            return None
        assert isinstance(item, _Frame)
        message = item.message
        try:
            if isinstance(message, ProtocolError):
                raise message
            if isinstance(message, Connect):
                return await self._connect(message)
            if isinstance(message, Event):
                return None
            if isinstance(message, ModifyQuerySet):
                self.session.modify_query_set(message)
            elif isinstance(message, Authenticate):
                return await self._authenticate(message)
            elif self._going_away and isinstance(message, Mutation | Action):
                return None  # not run here: the client sends it again after reconnecting
            elif isinstance(message, Mutation):
                self._queue_mutation(message, item.size)
            elif isinstance(message, Action):
                self._start_action(message, item.size)
        except (ProtocolError, TooManyConcurrentRequests) as error:
            return error
        self._apply_key_changes()
        return None

    def _apply_key_changes(self) -> None:
        """Move the session's subscriptions to its queries' new keys.

        A paginated query's first result is computed under the key the client sent and
        moves to the key with its journal: the result is adopted under the new key while
        the old key is still subscribed (so it is still tracked, and still invalidated by
        commits); only then is the old key released, which closes its cached result.
        """
        changes = self.session.take_key_changes()
        if not changes:
            return
        for change in changes:
            if change.new is not None:
                self.subscriptions.subscribe(change.new, self)
        for change in changes:
            query = self.session.queries.get(change.query_id)
            if (
                change.old is not None
                and change.new is not None
                and query is not None
                and query.result is not None
                and query.result.key == change.old
                and change.old.with_journal(change.new.journal) == change.new
            ):
                query.result = self.subscriptions.adopt(query.result, change.new)
                if query.result.invalid_from is not None:
                    self.query_invalidated()  # stale already: no commit will wake us for it
        for change in changes:
            if change.old is not None:
                self.subscriptions.unsubscribe(change.old, self)

    async def _update(self) -> None:
        ts = self.subscriptions.processed_ts
        results = None
        if ts == self.application.latest_ts and ts >= self.session.version.ts:
            results = await self._cached_results(ts)
        if results is None:
            async with self.application.snapshot() as snapshot:
                ts = snapshot.ts
                results = {}
                for query_id, key in self.session.plan_update(_valid_at(self.subscriptions, ts)):
                    results[query_id] = await self.subscriptions.result_at(snapshot, key)
        transition = self.session.complete_update(ts, results)
        self._apply_key_changes()
        if transition is not None:
            await self._send(transition)
            self._sent(ts)
        self._invalidated = False

    async def _cached_results(self, ts: int) -> dict[QueryId, QueryResult] | None:
        """The results an update needs at `ts` (every commit up to it processed) when the
        cache has them all, so no snapshot is opened; None when one must be computed.

        The sockets woken by one commit thus read the engine once between them: the first
        computes the invalidated query, the others find its result here.
        """
        results: dict[QueryId, QueryResult] = {}
        for query_id, key in self.session.plan_update(_valid_at(self.subscriptions, ts)):
            result = self.subscriptions.cached_now(key, ts)
            if result is None:
                result = await self.subscriptions.cached_result(key, ts)
            if result is None:
                return None
            results[query_id] = result
        return results

    # -- messages ----------------------------------------------------------------------

    async def _connect(self, message: Connect) -> OwlatError | None:
        try:
            self.session.connect(message)
        except ProtocolError as error:
            return error
        await self.service.prepare()
        observed = message.max_observed_timestamp
        if observed is not None and observed > self.application.latest_ts:
            if observed > time.time_ns() + self.config.max_ts_ahead_ns:
                return ClientTimestampAhead(
                    "The client has seen a timestamp far ahead of this server's clock "
                    "(maxObservedTimestamp); refusing to serve older data"
                )
            await self.application.advance_ts(observed)
        return None

    async def _authenticate(self, message: Authenticate) -> OwlatError | None:
        try:
            self.session.check_authenticate(message)
        except ProtocolError as error:
            return error
        try:
            caller = await self._verify(message)
        except AuthenticationError as error:
            await self._send(AuthError(error.message, self.session.identity_version, True))
            return error
        self.session.set_caller(caller)
        self._apply_key_changes()
        return None

    async def _verify(self, message: Authenticate) -> Caller:
        authenticator = self.service.authenticator
        if message.token_type == "None" or message.value is None:
            return ANONYMOUS_CALLER
        if message.token_type == "Admin":
            return authenticator.admin_caller(message.value, message.impersonating)
        return Caller(await authenticator.verify_user_token_async(message.value))

    def _queue_mutation(self, message: Mutation, size: int) -> None:
        self.session.require_connected("Mutation")
        try:
            self._mutations.put_nowait((message, self.session.caller, size))
        except asyncio.QueueFull:
            raise TooManyConcurrentRequests(
                f"TooManyConcurrentMutations: more than {self.config.max_pending_mutations} "
                "mutations are waiting on this connection"
            ) from None

    def _start_action(self, message: Action, size: int) -> None:
        self.session.require_connected("Action")
        if len(self._actions) >= self.config.max_inflight_actions:
            refusal = Failure(
                f"TooManyConcurrentActions: more than {self.config.max_inflight_actions} "
                "actions are running on this connection"
            )
            self._items.put_nowait(_Reply(_action_failure(message, refusal, ()), 0))
            return
        task = asyncio.create_task(self._run_action(message, self.session.caller, size))
        self._actions.add(task)
        task.add_done_callback(self._actions.discard)

    async def _mutation_loop(self) -> None:
        while True:
            message, caller, size = await self._mutations.get()
            self._mutation_running = True
            try:
                response = await self._run_mutation(message, caller, size)
            finally:
                self._mutation_running = False
            self._items.put_nowait(_Reply(response, response.ts or 0))

    def _decode_args(self, args: Any, size: int) -> Any:
        if size > self.config.max_args_bytes:
            length = len(dumps(args))
            if length > self.config.max_args_bytes:
                raise UserError(
                    f"Arguments are too large ({length} bytes; the limit is "
                    f"{self.config.max_args_bytes} bytes)"
                )
        return json_to_convex(args)

    async def _execute(
        self,
        kind: FunctionKind,
        message: Mutation | Action,
        caller: Caller,
        size: int,
        hook: SessionRequest | None = None,
    ) -> FunctionOutcome:
        """The outcome of a client's mutation or action (arguments it cannot decode too)."""
        try:
            args = self._decode_args(message.args, size)
        except Exception as error:
            return FunctionOutcome(error=error)
        return await self.application.execute(
            kind,
            canonical_path(message.udf_path),
            args,
            identity=caller.identity,
            internal=caller.admin,
            hook=hook,
        )

    async def _run_mutation(self, message: Mutation, caller: Caller, size: int) -> MutationResponse:
        request = SessionRequest(self.session.session_id, message.request_id)
        outcome = await self._execute(FunctionKind.MUTATION, message, caller, size, request)
        if outcome.error is not None:
            failure = _failure(outcome.error, message.udf_path)
            return MutationResponse(
                message.request_id, False, failure.message, None, outcome.log_lines, failure.data
            )
        return MutationResponse(
            message.request_id, True, outcome.value, outcome.ts, outcome.log_lines
        )

    async def _run_action(self, message: Action, caller: Caller, size: int) -> None:
        outcome = await self._execute(FunctionKind.ACTION, message, caller, size)
        if outcome.error is not None:
            failure = _failure(outcome.error, message.udf_path)
            response = _action_failure(message, failure, outcome.log_lines)
        else:
            response = ActionResponse(message.request_id, True, outcome.value, outcome.log_lines)
        self._items.put_nowait(_Reply(response, 0))


def _valid_at(subscriptions: SubscriptionManager, ts: int) -> Callable[[QueryResult], bool]:
    """The test of whether a result is its query's result at snapshot `ts`."""
    valid_at = subscriptions.valid_at

    def valid(result: QueryResult) -> bool:
        return valid_at(result, ts)

    return valid


def _failure(error: Exception, path: str) -> Failure:
    """A failed mutation's or action's description, with a request id tying it to the log;
    errors the developer must look at are logged with their traceback."""
    request_id = secrets.token_hex(8)
    if not isinstance(error, OwlatError) or isinstance(error, DeveloperError):
        logger.error("[Request ID: %s] %s failed", request_id, path, exc_info=error)
    return failure_of(error, request_id)


def _action_failure(
    message: Action, failure: Failure, log_lines: tuple[str, ...]
) -> ActionResponse:
    return ActionResponse(message.request_id, False, failure.message, log_lines, failure.data)
