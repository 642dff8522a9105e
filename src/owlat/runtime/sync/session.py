"""The state of one sync connection, as a plain object a test can drive message by message.

What a session tracks (the rules of Convex's `sync/src/state.rs`, protocol doc §2.5):

* the *query set*: each `ModifyQuerySet` must have `baseVersion` equal to the last
  `newVersion` received (0 on a new socket) and `newVersion > baseVersion`; adding a
  queryId that exists or removing one that does not is a protocol error. Changes take effect
  at the next Transition, whose `endVersion.querySet` is the latest `newVersion`;
* the *identity*: `Authenticate.baseVersion` must equal the number of Authenticates
  processed so far; each one bumps the identity version and re-runs every query under the
  new identity;
* the *state version* last sent: every Transition starts exactly where the previous one
  ended, and its ts never goes back;
* per query, the result it last sent and that result's digest: a re-run whose value, log
  lines and journal hash the same is not re-sent (the version still advances);
* per query, its *journal* (paginated queries pin their end cursor in it).

An update happens in two steps around the I/O: `plan_update(valid)` lists the queries that
need a result at the snapshot (new, re-identified, or whose result is no longer valid);
the worker obtains those results at one snapshot ts; `complete_update(ts, results)` turns
them into the Transition to send (or None when the client would learn nothing).
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
from collections.abc import Callable, Mapping

from owlat.runtime.auth import ANONYMOUS_CALLER, Caller
from owlat.runtime.error_text import describe_error
from owlat.runtime.errors import ConvexError, InvalidValueError
from owlat.runtime.functions import canonical_path
from owlat.runtime.subscriptions import QueryKey, QueryResult, canonical_json
from owlat.runtime.sync.protocol import (
    ABSENT,
    Absent,
    Authenticate,
    Connect,
    IdentityVersion,
    ModifyQuerySet,
    ProtocolError,
    QueryFailed,
    QueryId,
    QueryRemoved,
    QuerySetVersion,
    QueryUpdated,
    RemoveQuery,
    StateModification,
    StateVersion,
    Transition,
    encode_modification_fields,
)
from owlat.runtime.types import Value
from owlat.runtime.values import convex_to_json, dumps


def identity_key(caller: Caller) -> str | None:
    """The cache-key text of a caller's identity (None when anonymous)."""
    if caller.identity is None:
        return None
    return dumps(caller.identity, sort_keys=True).decode()


@dataclasses.dataclass(frozen=True, slots=True)
class Failure:
    """A failed call as clients see it: the message, and a ConvexError's data."""

    message: str
    data: Value | Absent = ABSENT


def failure_of(error: Exception, request_id: str | None = None) -> Failure:
    """The client-facing description of an error raised by a function call: the same text
    as the HTTP API's, prefixed with `[Request ID: <id>] Server Error` when `request_id` is
    given (a query's message has none, so that equal failures hash equal)."""
    message = describe_error(error)
    if request_id is not None:
        message = f"[Request ID: {request_id}] Server Error\n{message}"
    if isinstance(error, ConvexError):
        try:
            convex_to_json(error.data)
        except InvalidValueError:
            return Failure(message)
        return Failure(message, error.data)
    return Failure(message)


class SessionState(enum.Enum):
    """The lifecycle of a connection: `Connect` first, then everything else."""

    AWAITING_CONNECT = "awaiting Connect"
    CONNECTED = "connected"


@dataclasses.dataclass(slots=True)
class SessionQuery:
    """One subscribed query of the connection."""

    query_id: QueryId
    key: QueryKey
    result: QueryResult | None = None  # the result the client has (or will get next)
    sent_digest: bytes | None = None  # None: nothing sent for this query yet
    rejected: Failure | None = None  # refused before running (e.g. args too large)


@dataclasses.dataclass(frozen=True, slots=True)
class KeyChange:
    """A query's subscription moved from `old` to `new` (None: added / removed)."""

    query_id: QueryId
    old: QueryKey | None
    new: QueryKey | None


def _modification(
    query_id: QueryId, result: QueryResult, encoded: bytes | None
) -> QueryUpdated | QueryFailed:
    if result.error is None:
        return QueryUpdated(query_id, result.value, result.log_lines, result.journal, encoded)
    failure = failure_of(result.error)
    return QueryFailed(
        query_id, failure.message, result.log_lines, result.journal, failure.data, encoded
    )


def encoded_of(result: QueryResult) -> bytes:
    """What is sent for `result`, but its queryId (memoized on the shared result: the
    sessions subscribed to one query encode its result once)."""
    if result.encoded is None:
        result.encoded = encode_modification_fields(_modification(QueryId(0), result, None))
    return result.encoded


def digest_of(result: QueryResult) -> bytes:
    """The hash of what is sent for `result` (memoized on the shared result)."""
    if result.digest is None:
        result.digest = hashlib.blake2b(encoded_of(result), digest_size=16).digest()
    return result.digest


def modification_for(query_id: QueryId, result: QueryResult) -> QueryUpdated | QueryFailed:
    """The QueryUpdated / QueryFailed telling a client about `result`, its encoding shared
    (and the message itself, memoized on the result per queryId: the sockets a result is
    pushed to mostly number the query alike)."""
    messages = result.messages
    if messages is None:
        messages = result.messages = {}
    message: QueryUpdated | QueryFailed | None = messages.get(query_id)
    if message is None:
        message = messages[query_id] = _modification(query_id, result, encoded_of(result))
    return message


class SyncSession:
    """Per-connection protocol state (no I/O; see the module docstring)."""

    def __init__(self, *, max_args_bytes: int = 16 * 1024 * 1024) -> None:
        self.state = SessionState.AWAITING_CONNECT
        self.session_id = ""
        self.max_args_bytes = max_args_bytes
        self.caller = ANONYMOUS_CALLER
        self.version = StateVersion()  # the endVersion of the last Transition
        self.queries: dict[QueryId, SessionQuery] = {}
        self._query_set_version = QuerySetVersion(0)
        self._identity_version = IdentityVersion(0)
        self._removed: dict[QueryId, None] = {}  # announced queries removed since
        self._rerun_all = False
        self._transition_wanted = False
        self._min_ts = 0  # the next Transition's ts must reach this (a mutation's commit)
        self._key_changes: list[KeyChange] = []

    # -- client messages ---------------------------------------------------------------

    def connect(self, message: Connect) -> None:
        if self.state is not SessionState.AWAITING_CONNECT:
            raise ProtocolError("Connect was sent twice on one socket")
        self.state = SessionState.CONNECTED
        self.session_id = message.session_id

    def require_connected(self, kind: str) -> None:
        if self.state is not SessionState.CONNECTED:
            raise ProtocolError(f"{kind} before Connect: the first message must be Connect")

    def modify_query_set(self, message: ModifyQuerySet) -> None:
        """Apply a query set change (sent to the client at the next Transition)."""
        self.require_connected("ModifyQuerySet")
        if message.base_version != self._query_set_version:
            raise ProtocolError(
                f"BaseVersionMismatch: ModifyQuerySet.baseVersion is {message.base_version}, "
                f"but the query set is at version {self._query_set_version}"
            )
        if message.new_version <= message.base_version:
            raise ProtocolError(
                f"ModifyQuerySet.newVersion ({message.new_version}) must be greater than "
                f"baseVersion ({message.base_version})"
            )
        queries = dict(self.queries)
        removed = dict(self._removed)
        changes: list[KeyChange] = []
        for modification in message.modifications:
            query_id = modification.query_id
            if isinstance(modification, RemoveQuery):
                query = queries.pop(query_id, None)
                if query is None:
                    raise ProtocolError(f"Remove of query {query_id}, which is not in the set")
                if query.sent_digest is not None:
                    removed[query_id] = None
                changes.append(KeyChange(query_id, query.key, None))
                continue
            if query_id in queries:
                raise ProtocolError(f"Add of query {query_id}, which is already in the set")
            key = QueryKey(
                path=canonical_path(modification.udf_path),
                args=canonical_json(modification.args),
                identity=identity_key(self.caller),
                internal=self.caller.admin,
                journal=modification.journal,
            )
            query = SessionQuery(query_id, key)
            if len(key.args) > self.max_args_bytes:
                query.rejected = Failure(
                    f"Arguments of {key.path} are too large ({len(key.args)} bytes; "
                    f"the limit is {self.max_args_bytes} bytes)"
                )
            queries[query_id] = query
            changes.append(KeyChange(query_id, None, key))
        self.queries, self._removed = queries, removed
        self._key_changes.extend(changes)
        self._query_set_version = message.new_version

    def check_authenticate(self, message: Authenticate) -> None:
        """Validate an Authenticate's version before its token is verified."""
        self.require_connected("Authenticate")
        if message.base_version != self._identity_version:
            raise ProtocolError(
                f"Authenticate.baseVersion is {message.base_version}, but "
                f"{self._identity_version} Authenticate messages were processed"
            )

    def set_caller(self, caller: Caller) -> None:
        """Take the caller a verified Authenticate established; every query re-runs."""
        self._identity_version = IdentityVersion(self._identity_version + 1)
        if caller == self.caller:
            self._transition_wanted = True
            return
        self.caller = caller
        identity = identity_key(caller)
        for query in self.queries.values():
            key = query.key._replace(identity=identity, internal=caller.admin)
            self._key_changes.append(KeyChange(query.query_id, query.key, key))
            query.key = key
        self._rerun_all = True

    @property
    def identity_version(self) -> IdentityVersion:
        return self._identity_version

    def request_transition(self, min_ts: int = 0) -> None:
        """Send a Transition soon (after a mutation or action), reaching at least `min_ts`."""
        self._transition_wanted = True
        self._min_ts = max(self._min_ts, min_ts)

    def take_key_changes(self) -> list[KeyChange]:
        """Subscription key changes since the last call, for the subscription manager."""
        changes, self._key_changes = self._key_changes, []
        return changes

    # -- updates -----------------------------------------------------------------------

    @property
    def min_ts(self) -> int:
        return self._min_ts

    def has_work(self, valid: Callable[[QueryResult], bool]) -> bool:
        """Whether an update would tell the client something (or one was requested)."""
        return (
            self._transition_wanted
            or self._rerun_all
            or bool(self._removed)
            or self._query_set_version != self.version.query_set
            or self._identity_version != self.version.identity
            or any(self._needs_result(query, valid) for query in self.queries.values())
        )

    def _needs_result(self, query: SessionQuery, valid: Callable[[QueryResult], bool]) -> bool:
        if query.rejected is not None:
            return query.sent_digest is None
        return self._rerun_all or query.result is None or not valid(query.result)

    def plan_update(self, valid: Callable[[QueryResult], bool]) -> list[tuple[QueryId, QueryKey]]:
        """The queries needing a result at the snapshot about to be taken."""
        return [
            (query_id, query.key)
            for query_id, query in self.queries.items()
            if query.rejected is None and self._needs_result(query, valid)
        ]

    def complete_update(self, ts: int, results: Mapping[QueryId, QueryResult]) -> Transition | None:
        """Record the results obtained at snapshot `ts`; the Transition to send, if any."""
        if ts < self.version.ts:
            raise RuntimeError(f"snapshot ts {ts} is older than the client's ts {self.version.ts}")
        modifications: list[StateModification] = [QueryRemoved(q) for q in self._removed]
        self._removed = {}
        for query_id, query in self.queries.items():
            result = results.get(query_id)
            if result is not None:
                query.result = result
                if result.journal != query.key.journal:
                    key = query.key.with_journal(result.journal)
                    self._key_changes.append(KeyChange(query_id, query.key, key))
                    query.key = key
                digest = digest_of(result)
                if digest != query.sent_digest:
                    modifications.append(modification_for(query_id, result))
                    query.sent_digest = digest
            elif query.rejected is not None and query.sent_digest is None:
                failure = query.rejected
                modifications.append(QueryFailed(query_id, failure.message, (), None, failure.data))
                query.sent_digest = b"rejected"
        self._rerun_all = False
        end = StateVersion(self._query_set_version, self._identity_version, ts)
        wanted = self._transition_wanted and ts >= self._min_ts
        same_sets = (end.query_set, end.identity) == (
            self.version.query_set,
            self.version.identity,
        )
        if not modifications and not wanted and same_sets:
            return None
        if ts >= self._min_ts:
            self._transition_wanted = False
        transition = Transition(self.version, end, tuple(modifications))
        self.version = end
        return transition

    def subscribed_keys(self) -> list[QueryKey]:
        """Every key the session subscribes to (to unsubscribe when it closes)."""
        return [query.key for query in self.queries.values()]
