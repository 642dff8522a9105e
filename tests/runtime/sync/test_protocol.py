"""The sync protocol's codec: lenient decoding, exact wire names, EncodedTs."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from owlat.runtime.sync.protocol import (
    ABSENT,
    Action,
    ActionResponse,
    AddQuery,
    Authenticate,
    AuthError,
    Connect,
    Event,
    FatalError,
    IdentityVersion,
    ModifyQuerySet,
    Mutation,
    MutationResponse,
    Ping,
    ProtocolError,
    QueryFailed,
    QueryId,
    QueryRemoved,
    QuerySetVersion,
    QueryUpdated,
    RemoveQuery,
    RequestId,
    StateVersion,
    Transition,
    decode_client_message,
    decode_ts,
    encode_server_message,
    encode_ts,
)
from owlat.runtime.types import Int64


def wire(message: Any) -> dict[str, Any]:
    decoded: dict[str, Any] = json.loads(encode_server_message(message))
    return decoded


def test_encoded_ts_matches_the_reference_examples() -> None:
    assert encode_ts(0) == "AAAAAAAAAAA="
    assert encode_ts(1732430000123456789) == "Fa2WA+jTChg="
    assert decode_ts("Fa2WA+jTChg=") == 1732430000123456789


@given(st.integers(min_value=0, max_value=2**63 - 1))
def test_encoded_ts_round_trips(ts: int) -> None:
    assert decode_ts(encode_ts(ts)) == ts


@pytest.mark.parametrize(
    ("text", "problem"),
    [("AAAA", "8 bytes"), ("not base64!", "base64"), (encode_ts(2**63), "largest"), (5, "string")],
)
def test_bad_encoded_ts_is_a_protocol_error(text: Any, problem: str) -> None:
    with pytest.raises(ProtocolError, match=problem):
        decode_ts(text)


def test_connect_from_the_npm_and_rust_clients() -> None:
    npm = decode_client_message(
        '{"type":"Connect","sessionId":"s","connectionCount":2,"lastCloseReason":"x",'
        '"maxObservedTimestamp":"Fa2WA+jTChg=","clientTs":1732430000001}'
    )
    assert npm == Connect("s", 2, "x", 1732430000123456789, 1732430000001.0)
    rust = decode_client_message(
        '{"type":"Connect","sessionId":"s","connectionCount":0,"lastCloseReason":null,'
        '"clientTs":0,"someFutureField":true}'
    )
    assert rust == Connect("s", 0, None, None, 0.0)


def test_modify_query_set_unwraps_args_and_keeps_journals() -> None:
    message = decode_client_message(
        json.dumps(
            {
                "type": "ModifyQuerySet",
                "baseVersion": 1,
                "newVersion": 2,
                "modifications": [
                    {"type": "Add", "queryId": 0, "udfPath": "m:f", "args": [{"a": 1}]},
                    {
                        "type": "Add",
                        "queryId": 1,
                        "udfPath": "m:g",
                        "args": [],
                        "journal": "j",
                        "componentPath": None,
                    },
                    {"type": "Remove", "queryId": 3},
                ],
            }
        )
    )
    assert message == ModifyQuerySet(
        QuerySetVersion(1),
        QuerySetVersion(2),
        (
            AddQuery(QueryId(0), "m:f", {"a": 1}),
            AddQuery(QueryId(1), "m:g", {}, "j"),
            RemoveQuery(QueryId(3)),
        ),
    )


def test_requests_auth_and_events() -> None:
    assert decode_client_message(
        '{"type":"Mutation","requestId":4,"udfPath":"m:f","args":[{"x":"y"}]}'
    ) == Mutation(RequestId(4), "m:f", {"x": "y"})
    assert decode_client_message(
        '{"type":"Action","requestId":5,"udfPath":"m:a","args":[{}]}'
    ) == Action(RequestId(5), "m:a", {})
    assert decode_client_message(
        '{"type":"Authenticate","baseVersion":0,"tokenType":"User","value":"jwt"}'
    ) == Authenticate(IdentityVersion(0), "User", "jwt")
    assert decode_client_message(
        '{"type":"Authenticate","baseVersion":1,"tokenType":"None"}'
    ) == Authenticate(IdentityVersion(1), "None")
    admin = decode_client_message(
        '{"type":"Authenticate","baseVersion":0,"tokenType":"Admin","value":"k",'
        '"impersonating":{"subject":"u"}}'
    )
    assert admin == Authenticate(IdentityVersion(0), "Admin", "k", {"subject": "u"})
    assert decode_client_message('{"type":"Event","eventType":"ClientConnect"}') == Event(
        "ClientConnect", None
    )


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
        ('{"type": "Subscribe"}', "Unknown message type 'Subscribe'"),
        ('{"no": "type"}', "Unknown message type None"),
        ('{"type":"Mutation","udfPath":"m:f","args":[{}]}', "Mutation.requestId"),
        ('{"type":"Mutation","requestId":-1,"udfPath":"m:f"}', "Mutation.requestId"),
        ('{"type":"Mutation","requestId":1.5,"udfPath":"m:f"}', "Mutation.requestId"),
        ('{"type":"Mutation","requestId":1,"udfPath":7}', "Mutation.udfPath"),
        ('{"type":"Mutation","requestId":1,"udfPath":"m:f","args":[{},{}]}', "Mutation.args"),
        ('{"type":"Connect"}', "Connect.sessionId"),
        ('{"type":"ModifyQuerySet","baseVersion":0,"newVersion":1,"modifications":{}}', "array"),
        (
            '{"type":"ModifyQuerySet","baseVersion":0,"newVersion":1,'
            '"modifications":[{"type":"Replace"}]}',
            "Replace",
        ),
        ('{"type":"Authenticate","baseVersion":0,"tokenType":"Magic"}', "tokenType"),
        ('{"type":"Authenticate","baseVersion":0,"tokenType":"User"}', "value"),
    ],
)
def test_malformed_messages_name_their_problem(text: str, problem: str) -> None:
    with pytest.raises(ProtocolError, match=problem):
        decode_client_message(text)


def test_transition_wire_names() -> None:
    transition = Transition(
        StateVersion(),
        StateVersion(QuerySetVersion(2), IdentityVersion(1), 1732430000123456789),
        (
            QueryUpdated(QueryId(0), [1.0, Int64(2)], ("[LOG] hi",)),
            QueryFailed(QueryId(1), "boom", (), "j"),
            QueryFailed(QueryId(2), "no", (), None, None),
            QueryRemoved(QueryId(3)),
        ),
    )
    assert wire(transition) == {
        "type": "Transition",
        "startVersion": {"querySet": 0, "identity": 0, "ts": "AAAAAAAAAAA="},
        "endVersion": {"querySet": 2, "identity": 1, "ts": "Fa2WA+jTChg="},
        "modifications": [
            {
                "type": "QueryUpdated",
                "queryId": 0,
                "value": [1.0, {"$integer": "AgAAAAAAAAA="}],
                "logLines": ["[LOG] hi"],
                "journal": None,
            },
            {
                "type": "QueryFailed",
                "queryId": 1,
                "errorMessage": "boom",
                "logLines": [],
                "journal": "j",
            },
            {
                "type": "QueryFailed",
                "queryId": 2,
                "errorMessage": "no",
                "logLines": [],
                "journal": None,
                "errorData": None,
            },
            {"type": "QueryRemoved", "queryId": 3},
        ],
    }


def test_responses_wire_names() -> None:
    assert wire(MutationResponse(RequestId(1), True, None, 1, ("[LOG] x",))) == {
        "type": "MutationResponse",
        "requestId": 1,
        "success": True,
        "result": None,
        "ts": "AQAAAAAAAAA=",
        "logLines": ["[LOG] x"],
    }
    assert wire(MutationResponse(RequestId(2), False, "bad", None, (), {"code": "X"})) == {
        "type": "MutationResponse",
        "requestId": 2,
        "success": False,
        "result": "bad",
        "ts": None,
        "logLines": [],
        "errorData": {"code": "X"},
    }
    assert wire(ActionResponse(RequestId(3), True, b"\x01", (), ABSENT)) == {
        "type": "ActionResponse",
        "requestId": 3,
        "success": True,
        "result": {"$bytes": "AQ=="},
        "logLines": [],
    }
    assert wire(AuthError("nope", IdentityVersion(0), True)) == {
        "type": "AuthError",
        "error": "nope",
        "baseVersion": 0,
        "authUpdateAttempted": True,
    }
    assert wire(FatalError("dead")) == {"type": "FatalError", "error": "dead"}
    assert wire(Ping()) == {"type": "Ping"}


def test_state_versions_order_lexicographically() -> None:
    v1 = StateVersion(QuerySetVersion(1), IdentityVersion(5), 100)
    v2 = StateVersion(QuerySetVersion(2), IdentityVersion(0), 0)
    assert v1 < v2
    assert StateVersion(QuerySetVersion(2), IdentityVersion(0), 5) > v2
