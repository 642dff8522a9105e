"""The sync protocol's messages as typed data, and their JSON codec with the wire names.

Every frame of `/api/sync` is one JSON object with a `"type"`. Clients send `Connect`,
`ModifyQuerySet` (of `Add` / `Remove`), `Mutation`, `Action`, `Authenticate` and `Event`;
the server sends `Transition` (of `QueryUpdated` / `QueryFailed` / `QueryRemoved`),
`MutationResponse`, `ActionResponse`, `AuthError`, `FatalError` and `Ping`.

Decoding is lenient the way Convex's serde parsers are: unknown fields are ignored and
optional fields may be missing. A frame that is not JSON, has an unknown `type` or lacks a
required field raises `ProtocolError`. Function arguments stay encoded JSON here (they are
checked per request, so a bad argument fails that request, not the socket); values the
server sends are Convex values, encoded by `encode_server_message`. A Transition is
assembled from encoded pieces: a query's modification without its `queryId`
(`encode_modification_fields`) can be encoded once and reused by every socket it goes to.

Timestamps travel as `EncodedTs`: base64 (standard, padded) of the u64 little-endian.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import functools
import struct
from collections.abc import Callable
from typing import Any, Literal, NamedTuple, NewType, TypeAlias, TypeVar

from owlat.runtime.errors import UserError
from owlat.runtime.types import JSONValue, Value
from owlat.runtime.values import convex_to_json, dumps, loads

QueryId = NewType("QueryId", int)
QuerySetVersion = NewType("QuerySetVersion", int)
IdentityVersion = NewType("IdentityVersion", int)
RequestId = NewType("RequestId", int)

_U32_MAX = 2**32 - 1
_I64_MAX = 2**63 - 1


class ProtocolError(UserError):
    """The client broke the sync protocol."""

    code = "BadClientMessage"


class Absent:
    """Marks an optional wire field that is left out.

    `None` is not enough: `errorData` may legitimately be `null` (a `ConvexError(None)`),
    and its mere presence tells the clients that the error is a ConvexError. Test with
    `isinstance(value, Absent)`; `ABSENT` is the one instance.
    """

    def __repr__(self) -> str:
        return "ABSENT"


ABSENT = Absent()


# -- timestamps ------------------------------------------------------------------------


def encode_ts(ts: int) -> str:
    """`EncodedTs`: base64 of the 8-byte little-endian u64."""
    return base64.b64encode(struct.pack("<Q", ts)).decode("ascii")


def decode_ts(text: object, field: str = "ts") -> int:
    """The u64 of an `EncodedTs` (must be ≤ i64::MAX, as Convex's timestamps are)."""
    if not isinstance(text, str):
        raise ProtocolError(f"{field} must be a base64 string, got {_json_type(text)}")
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ProtocolError(f"{field} is not valid base64: {text[:40]!r}") from None
    if len(raw) != 8:
        raise ProtocolError(f"{field} must encode 8 bytes, not {len(raw)}")
    (ts,) = struct.unpack("<Q", raw)
    if ts > _I64_MAX:
        raise ProtocolError(f"{field} is larger than the largest timestamp")
    return int(ts)


# -- client → server ---------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Connect:
    session_id: str
    connection_count: int = 0
    last_close_reason: str | None = None
    max_observed_timestamp: int | None = None
    client_ts: float | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class AddQuery:
    query_id: QueryId
    udf_path: str
    args: JSONValue  # the encoded args object (the `[{...}]` wrapper removed)
    journal: str | None = None
    component_path: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class RemoveQuery:
    query_id: QueryId


QuerySetModification: TypeAlias = AddQuery | RemoveQuery


@dataclasses.dataclass(frozen=True, slots=True)
class ModifyQuerySet:
    base_version: QuerySetVersion
    new_version: QuerySetVersion
    modifications: tuple[QuerySetModification, ...] = ()


@dataclasses.dataclass(frozen=True, slots=True)
class FunctionRequest:
    """A call of a function by a client: `Mutation` or `Action` (the same fields)."""

    request_id: RequestId
    udf_path: str
    args: JSONValue
    component_path: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Mutation(FunctionRequest):
    """Run a mutation: one at a time per socket, in order; idempotent per request id."""


@dataclasses.dataclass(frozen=True, slots=True)
class Action(FunctionRequest):
    """Run an action: concurrently with the socket's other actions."""


TokenType: TypeAlias = Literal["User", "Admin", "None"]


@dataclasses.dataclass(frozen=True, slots=True)
class Authenticate:
    base_version: IdentityVersion
    token_type: TokenType
    value: str | None = None
    impersonating: JSONValue | None = None  # npm `impersonating`, Rust `acting_as`


@dataclasses.dataclass(frozen=True, slots=True)
class Event:
    event_type: str
    event: JSONValue = None


ClientMessage: TypeAlias = Connect | ModifyQuerySet | Mutation | Action | Authenticate | Event
_Request = TypeVar("_Request", bound=FunctionRequest)


# -- server → client ---------------------------------------------------------------------


class StateVersion(NamedTuple):
    """What a client has seen: its query set version, identity version and snapshot ts.

    Ordered lexicographically as (query_set, identity, ts), as the server orders them. A
    named tuple, not a frozen dataclass: one is made (and hashed, by `_version_bytes`) per
    socket per pushed Transition, and a tuple is made and hashed in C.
    """

    query_set: QuerySetVersion = QuerySetVersion(0)
    identity: IdentityVersion = IdentityVersion(0)
    ts: int = 0


@dataclasses.dataclass(frozen=True, slots=True)
class QueryUpdated:
    """`encoded`, when known, is `encode_modification_fields(self)`: a result pushed to many
    sockets is encoded once and each Transition reuses the bytes."""

    query_id: QueryId
    value: Value
    log_lines: tuple[str, ...] = ()
    journal: str | None = None
    encoded: bytes | None = dataclasses.field(default=None, compare=False, repr=False)


@dataclasses.dataclass(frozen=True, slots=True)
class QueryFailed:
    """`encoded`: as `QueryUpdated.encoded`."""

    query_id: QueryId
    error_message: str
    log_lines: tuple[str, ...] = ()
    journal: str | None = None
    error_data: Value | Absent = ABSENT
    encoded: bytes | None = dataclasses.field(default=None, compare=False, repr=False)


@dataclasses.dataclass(frozen=True, slots=True)
class QueryRemoved:
    query_id: QueryId


StateModification: TypeAlias = QueryUpdated | QueryFailed | QueryRemoved


@dataclasses.dataclass(slots=True)
class Transition:
    """Not frozen: one is made per socket per push, and a frozen dataclass's `__init__`
    costs about three times as much (an `object.__setattr__` per field). Treat it as
    immutable all the same."""

    start_version: StateVersion
    end_version: StateVersion
    modifications: tuple[StateModification, ...] = ()
    client_clock_skew: int | None = None  # milliseconds
    server_ts: int | None = None  # nanoseconds, sent as a plain JSON number


@dataclasses.dataclass(frozen=True, slots=True)
class MutationResponse:
    """`result` is the value on success and the error message on failure; `ts` is the
    commit timestamp of a success (None on failure)."""

    request_id: RequestId
    success: bool
    result: Value
    ts: int | None = None
    log_lines: tuple[str, ...] = ()
    error_data: Value | Absent = ABSENT


@dataclasses.dataclass(frozen=True, slots=True)
class ActionResponse:
    request_id: RequestId
    success: bool
    result: Value
    log_lines: tuple[str, ...] = ()
    error_data: Value | Absent = ABSENT


@dataclasses.dataclass(frozen=True, slots=True)
class AuthError:
    error: str
    base_version: IdentityVersion
    auth_update_attempted: bool


@dataclasses.dataclass(frozen=True, slots=True)
class FatalError:
    error: str


@dataclasses.dataclass(frozen=True, slots=True)
class Ping:
    pass


ServerMessage: TypeAlias = (
    Transition | MutationResponse | ActionResponse | AuthError | FatalError | Ping
)


# -- decoding ----------------------------------------------------------------------------


_JSON_TYPES = {bool: "a boolean", int: "a number", float: "a number", str: "a string"}


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    return _JSON_TYPES.get(type(value), "an array" if isinstance(value, list) else "an object")


class _Fields:
    """Typed access to the fields of one decoded message, naming it in every error."""

    def __init__(self, kind: str, data: dict[str, Any]) -> None:
        self.kind = kind
        self.data = data

    def _fail(self, name: str, expected: str) -> ProtocolError:
        got = _json_type(self.data[name]) if name in self.data else "nothing"
        return ProtocolError(f"{self.kind}.{name} must be {expected}, got {got}")

    def u32(self, name: str, default: int | None = None) -> int:
        value = self.data.get(name)
        if value is None and default is not None:
            return default
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or value != int(value)
            or not 0 <= value <= _U32_MAX
        ):
            raise self._fail(name, "a whole number between 0 and 2^32-1")
        return int(value)

    def string(self, name: str) -> str:
        value = self.data.get(name)
        if not isinstance(value, str):
            raise self._fail(name, "a string")
        return value

    def optional_string(self, name: str) -> str | None:
        value = self.data.get(name)
        if value is not None and not isinstance(value, str):
            raise self._fail(name, "a string or null")
        return value

    def args(self, name: str = "args") -> JSONValue:
        """Function args: Convex sends `[{...}]`; a bare object or `[]` is accepted too."""
        value = self.data.get(name, [])
        if isinstance(value, list):
            if len(value) > 1:
                raise self._fail(name, "an array holding one arguments object")
            return value[0] if value else {}
        return value


def _decode_connect(f: _Fields) -> Connect:
    observed, client_ts = f.data.get("maxObservedTimestamp"), f.data.get("clientTs")
    return Connect(
        session_id=f.string("sessionId"),
        connection_count=f.u32("connectionCount", 0),
        last_close_reason=f.optional_string("lastCloseReason"),
        max_observed_timestamp=(
            None if observed is None else decode_ts(observed, "Connect.maxObservedTimestamp")
        ),
        client_ts=float(client_ts) if isinstance(client_ts, int | float) else None,
    )


def _decode_modification(item: object) -> QuerySetModification:
    if not isinstance(item, dict):
        raise ProtocolError(f"A query set modification must be an object, got {_json_type(item)}")
    f = _Fields(f"ModifyQuerySet.{item.get('type')}", item)
    kind = item.get("type")
    if kind == "Add":
        return AddQuery(
            query_id=QueryId(f.u32("queryId")),
            udf_path=f.string("udfPath"),
            args=f.args(),
            journal=f.optional_string("journal"),
            component_path=f.optional_string("componentPath"),
        )
    if kind == "Remove":
        return RemoveQuery(QueryId(f.u32("queryId")))
    raise ProtocolError(f'Unknown query set modification type {kind!r} (expected "Add"/"Remove")')


def _decode_modify_query_set(f: _Fields) -> ModifyQuerySet:
    modifications = f.data.get("modifications", [])
    if not isinstance(modifications, list):
        raise f._fail("modifications", "an array")
    return ModifyQuerySet(
        base_version=QuerySetVersion(f.u32("baseVersion")),
        new_version=QuerySetVersion(f.u32("newVersion")),
        modifications=tuple(_decode_modification(item) for item in modifications),
    )


def _request_decoder(kind: type[_Request]) -> Callable[[_Fields], _Request]:
    """The decoder of `Mutation` or `Action`."""

    def decode(f: _Fields) -> _Request:
        return kind(
            request_id=RequestId(f.u32("requestId")),
            udf_path=f.string("udfPath"),
            args=f.args(),
            component_path=f.optional_string("componentPath"),
        )

    return decode


def _decode_authenticate(f: _Fields) -> Authenticate:
    token_type = f.data.get("tokenType")
    if token_type not in ("User", "Admin", "None"):
        raise f._fail("tokenType", '"User", "Admin" or "None"')
    value = f.optional_string("value")
    if token_type != "None" and value is None:
        raise f._fail("value", "a token string")
    impersonating = f.data.get("impersonating", f.data.get("actingAs", f.data.get("acting_as")))
    return Authenticate(
        base_version=IdentityVersion(f.u32("baseVersion")),
        token_type=token_type,
        value=value if token_type != "None" else None,
        impersonating=impersonating,
    )


def _decode_event(f: _Fields) -> Event:
    event_type = f.data.get("eventType")
    return Event(event_type=str(event_type), event=f.data.get("event"))


_DECODERS: dict[str, Callable[[_Fields], ClientMessage]] = {
    "Connect": _decode_connect,
    "ModifyQuerySet": _decode_modify_query_set,
    "Mutation": _request_decoder(Mutation),
    "Action": _request_decoder(Action),
    "Authenticate": _decode_authenticate,
    "Event": _decode_event,
}


def decode_client_message(text: str | bytes) -> ClientMessage:
    """Parse one client frame; raises `ProtocolError` with a message naming the problem."""
    try:
        data = loads(text)
    except UserError as error:
        raise ProtocolError(f"The message is not valid JSON: {error.message}") from None
    if not isinstance(data, dict):
        raise ProtocolError(f"A message must be a JSON object, got {_json_type(data)}")
    kind = data.get("type")
    decoder = _DECODERS.get(kind) if isinstance(kind, str) else None
    if decoder is None:
        raise ProtocolError(
            f"Unknown message type {kind!r} (expected one of {', '.join(_DECODERS)})"
        )
    return decoder(_Fields(str(kind), data))


# -- encoding ----------------------------------------------------------------------------


@functools.lru_cache(maxsize=256)  # the sockets woken by one commit share their versions
def _version_bytes(version: StateVersion) -> bytes:
    return b'{"querySet":%d,"identity":%d,"ts":"%b"}' % (
        version.query_set,
        version.identity,
        encode_ts(version.ts).encode("ascii"),
    )


def _with_error_data(body: dict[str, Any], error_data: Value | Absent) -> dict[str, Any]:
    if not isinstance(error_data, Absent):
        body["errorData"] = convex_to_json(error_data)
    return body


def encode_modification_fields(modification: QueryUpdated | QueryFailed) -> bytes:
    """A `QueryUpdated` / `QueryFailed` encoded without its `queryId`: the members of its
    JSON object after `{"queryId":<id>,`, up to the closing brace. Every socket sent the same
    result sends these bytes."""
    if isinstance(modification, QueryUpdated):
        body: dict[str, Any] = {
            "type": "QueryUpdated",
            "value": convex_to_json(modification.value),
            "logLines": list(modification.log_lines),
            "journal": modification.journal,
        }
    else:
        body = _with_error_data(
            {
                "type": "QueryFailed",
                "errorMessage": modification.error_message,
                "logLines": list(modification.log_lines),
                "journal": modification.journal,
            },
            modification.error_data,
        )
    return dumps(body)[1:]


def _modification_bytes(modification: StateModification) -> bytes:
    if isinstance(modification, QueryRemoved):
        return b'{"type":"QueryRemoved","queryId":%d}' % modification.query_id
    fields = modification.encoded
    if fields is None:
        fields = encode_modification_fields(modification)
    return b'{"queryId":%d,%b' % (modification.query_id, fields)


def encode_transition(message: Transition) -> bytes:
    """A Transition assembled from encoded pieces (the modifications' fields are reused)."""
    extra = b""
    if message.client_clock_skew is not None:
        extra += b',"clientClockSkew":%d' % message.client_clock_skew
    if message.server_ts is not None:
        extra += b',"serverTs":%d' % message.server_ts
    return b'{"type":"Transition","startVersion":%b,"endVersion":%b,"modifications":[%b]%b}' % (
        _version_bytes(message.start_version),
        _version_bytes(message.end_version),
        b",".join([_modification_bytes(item) for item in message.modifications]),
        extra,
    )


def _message_json(
    message: MutationResponse | ActionResponse | AuthError | FatalError | Ping,
) -> dict[str, Any]:
    """The JSON object of a server message other than a Transition."""
    if isinstance(message, MutationResponse | ActionResponse):
        body: dict[str, Any] = {
            "type": type(message).__name__,
            "requestId": message.request_id,
            "success": message.success,
            "result": convex_to_json(message.result),
            "logLines": list(message.log_lines),
        }
        if isinstance(message, MutationResponse):  # a success's commit ts; null on failure
            body["ts"] = (
                None if message.ts is None or not message.success else encode_ts(message.ts)
            )
        return _with_error_data(body, message.error_data)
    if isinstance(message, AuthError):
        return {
            "type": "AuthError",
            "error": message.error,
            "baseVersion": message.base_version,
            "authUpdateAttempted": message.auth_update_attempted,
        }
    if isinstance(message, FatalError):
        return {"type": "FatalError", "error": message.error}
    return {"type": "Ping"}


def encode_server_message(message: ServerMessage) -> bytes:
    """The text frame (UTF-8) of a server message."""
    if isinstance(message, Transition):
        return encode_transition(message)
    return dumps(_message_json(message))
