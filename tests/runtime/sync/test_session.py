"""The per-connection state machine, driven message by message without any I/O."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from owlat.runtime.auth import Caller
from owlat.runtime.database.commits import ReadSet
from owlat.runtime.errors import ConvexError
from owlat.runtime.subscriptions import QueryKey, QueryResult
from owlat.runtime.sync.protocol import (
    AddQuery,
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
    StateVersion,
    Transition,
)
from owlat.runtime.sync.session import SyncSession


def connected(**options: Any) -> SyncSession:
    session = SyncSession(**options)
    session.connect(Connect("session-1"))
    return session


def modify(base: int, new: int, *modifications: AddQuery | RemoveQuery) -> ModifyQuerySet:
    return ModifyQuerySet(QuerySetVersion(base), QuerySetVersion(new), modifications)


def add(query_id: int, path: str = "messages:list", **args: Any) -> AddQuery:
    return AddQuery(QueryId(query_id), path, args or {"channel": "a"})


def result_for(key: QueryKey, ts: int, value: Any = None, **fields: Any) -> QueryResult:
    return QueryResult(
        key=key,
        ts=ts,
        value=value,
        error=fields.get("error"),
        log_lines=fields.get("log_lines", ()),
        journal=fields.get("journal"),
        read_set=ReadSet(),
    )


def always_valid(result: QueryResult) -> bool:
    return True


def never_valid(result: QueryResult) -> bool:
    return False


def run_update(
    session: SyncSession,
    ts: int,
    values: dict[int, Any],
    valid: Callable[[QueryResult], bool] = always_valid,
) -> Transition | None:
    """Answer the session's plan with `values` (an exception value means a failure)."""
    results = {}
    for query_id, key in session.plan_update(valid):
        value = values[query_id]
        if isinstance(value, Exception):
            results[query_id] = result_for(key, ts, error=value)
        else:
            results[query_id] = result_for(key, ts, value)
    return session.complete_update(ts, results)


def test_messages_before_connect_and_a_second_connect_are_refused() -> None:
    session = SyncSession()
    with pytest.raises(ProtocolError, match="first message must be Connect"):
        session.modify_query_set(modify(0, 1))
    session.connect(Connect("s"))
    with pytest.raises(ProtocolError, match="twice"):
        session.connect(Connect("s"))


def test_first_transition_starts_at_zero_and_chains() -> None:
    session = connected()
    session.modify_query_set(modify(0, 1, add(0)))
    assert session.has_work(always_valid)
    first = run_update(session, 10, {0: ["m1"]})
    assert first == Transition(
        StateVersion(),
        StateVersion(QuerySetVersion(1), IdentityVersion(0), 10),
        (QueryUpdated(QueryId(0), ["m1"]),),
    )
    assert not session.has_work(always_valid)
    session.modify_query_set(modify(1, 3, add(1, channel="b")))
    second = run_update(session, 12, {1: []})
    assert second is not None
    assert second.start_version == first.end_version
    assert second.end_version == StateVersion(QuerySetVersion(3), IdentityVersion(0), 12)
    assert second.modifications == (QueryUpdated(QueryId(1), []),)


@pytest.mark.parametrize(("base", "new"), [(1, 2), (0, 0)])
def test_query_set_versions_must_follow_on(base: int, new: int) -> None:
    session = connected()
    with pytest.raises(ProtocolError):
        session.modify_query_set(modify(base, new))


def test_adding_an_existing_id_or_removing_an_unknown_one_is_refused() -> None:
    session = connected()
    session.modify_query_set(modify(0, 1, add(0)))
    with pytest.raises(ProtocolError, match="already in the set"):
        session.modify_query_set(modify(1, 2, add(0)))
    with pytest.raises(ProtocolError, match="not in the set"):
        session.modify_query_set(modify(1, 2, RemoveQuery(QueryId(7))))
    # a refused message changes nothing: version 1 is still the base
    session.modify_query_set(modify(1, 2, RemoveQuery(QueryId(0))))


def test_a_failed_modification_leaves_the_whole_message_unapplied() -> None:
    session = connected()
    with pytest.raises(ProtocolError):
        session.modify_query_set(modify(0, 1, add(0), RemoveQuery(QueryId(5))))
    assert session.queries == {}
    session.modify_query_set(modify(0, 1, add(0)))


def test_removal_is_announced_only_for_queries_the_client_was_told_about() -> None:
    session = connected()
    session.modify_query_set(modify(0, 1, add(0)))
    run_update(session, 5, {0: 1.0})
    session.modify_query_set(modify(1, 2, RemoveQuery(QueryId(0)), add(1)))
    session.modify_query_set(modify(2, 3, RemoveQuery(QueryId(1))))
    transition = run_update(session, 5, {})
    assert transition is not None
    assert transition.modifications == (QueryRemoved(QueryId(0)),)
    assert transition.end_version.query_set == 3


def test_an_unchanged_result_is_not_sent_again_but_the_version_moves() -> None:
    session = connected()
    session.modify_query_set(modify(0, 1, add(0), add(1, channel="b")))
    run_update(session, 5, {0: ["x"], 1: ["y"]})
    assert session.has_work(never_valid) and not session.has_work(always_valid)
    transition = run_update(session, 9, {0: ["x"], 1: ["y", "z"]}, never_valid)
    assert transition is not None
    assert transition.modifications == (QueryUpdated(QueryId(1), ["y", "z"]),)
    assert transition.end_version.ts == 9
    # re-runs with the same results tell the client nothing: no Transition
    assert run_update(session, 11, {0: ["x"], 1: ["y", "z"]}, never_valid) is None
    assert session.version.ts == 9


def test_log_lines_count_in_the_digest() -> None:
    session = connected()
    session.modify_query_set(modify(0, 1, add(0)))
    run_update(session, 5, {0: 1.0})
    key = session.queries[QueryId(0)].key
    transition = session.complete_update(
        6, {QueryId(0): result_for(key, 6, 1.0, log_lines=("[LOG] x",))}
    )
    assert transition is not None
    assert transition.modifications == (QueryUpdated(QueryId(0), 1.0, ("[LOG] x",)),)


def test_failures_carry_convex_error_data_only_for_convex_errors() -> None:
    session = connected()
    session.modify_query_set(modify(0, 1, add(0), add(1, channel="b")))
    transition = run_update(session, 5, {0: ConvexError({"code": "NOPE"}), 1: RuntimeError("boom")})
    assert transition is not None
    failed_convex, failed_plain = transition.modifications
    assert isinstance(failed_convex, QueryFailed) and isinstance(failed_plain, QueryFailed)
    assert failed_convex.error_data == {"code": "NOPE"}
    assert failed_convex.error_message == 'Uncaught ConvexError: {"code":"NOPE"}'
    assert failed_plain.error_message == "Uncaught Error: boom"
    assert failed_plain.error_data is not None and repr(failed_plain.error_data) == "ABSENT"


def test_a_requested_transition_goes_out_even_when_empty_and_waits_for_its_ts() -> None:
    session = connected()
    session.modify_query_set(modify(0, 1))
    run_update(session, 5, {})
    session.request_transition(min_ts=8)
    assert session.has_work(always_valid)
    early = run_update(session, 7, {})
    assert early is None  # 7 is before the mutation's commit: not enough
    assert session.has_work(always_valid)
    transition = run_update(session, 8, {})
    assert transition is not None and transition.modifications == ()
    assert transition.end_version.ts == 8
    assert not session.has_work(always_valid)


def test_authenticate_versions_and_identity_change_rerun_everything() -> None:
    session = connected()
    session.modify_query_set(modify(0, 1, add(0)))
    run_update(session, 5, {0: None})
    session.take_key_changes()
    with pytest.raises(ProtocolError, match="baseVersion is 1"):
        session.check_authenticate(Authenticate(IdentityVersion(1), "None"))
    session.check_authenticate(Authenticate(IdentityVersion(0), "User", "token"))
    session.set_caller(Caller({"subject": "u1", "tokenIdentifier": "i|u1"}))
    changes = session.take_key_changes()
    assert [(c.old is not None, c.new is not None) for c in changes] == [(True, True)]
    assert changes[0].new is not None and changes[0].new.identity is not None
    assert [query_id for query_id, _ in session.plan_update(always_valid)] == [0]
    transition = run_update(session, 6, {0: "u1"})
    assert transition is not None
    assert transition.start_version.identity == 0 and transition.end_version.identity == 1
    assert transition.modifications == (QueryUpdated(QueryId(0), "u1"),)
    session.check_authenticate(Authenticate(IdentityVersion(1), "User", "same token"))
    session.set_caller(Caller({"subject": "u1", "tokenIdentifier": "i|u1"}))
    refreshed = run_update(session, 6, {})
    assert refreshed is not None and refreshed.end_version.identity == 2
    assert refreshed.modifications == ()


def test_admin_callers_get_internal_keys() -> None:
    session = connected()
    session.check_authenticate(Authenticate(IdentityVersion(0), "Admin", "key"))
    session.set_caller(Caller(None, admin=True))
    session.modify_query_set(modify(0, 1, add(0, "messages:countAll")))
    (change,) = session.take_key_changes()
    assert change.new is not None and change.new.internal


def test_journals_follow_results_and_move_the_subscription() -> None:
    session = connected()
    session.modify_query_set(modify(0, 1, add(0, "messages:page", paginationOpts={})))
    session.take_key_changes()
    ((query_id, key),) = session.plan_update(always_valid)
    assert key.journal is None
    page = {"page": [], "isDone": True, "continueCursor": "c"}
    journal = '{"endCursor":"c"}'
    transition = session.complete_update(5, {query_id: result_for(key, 5, page, journal=journal)})
    assert transition is not None
    assert transition.modifications == (QueryUpdated(QueryId(0), page, (), journal),)
    (change,) = session.take_key_changes()
    assert change.old == key and change.new == key.with_journal(journal)


def test_oversized_query_args_fail_that_query_only() -> None:
    session = connected(max_args_bytes=50)
    session.modify_query_set(modify(0, 1, add(0, channel="x" * 100), add(1)))
    assert [query_id for query_id, _ in session.plan_update(always_valid)] == [1]
    transition = run_update(session, 3, {1: []})
    assert transition is not None
    rejected, updated = sorted(transition.modifications, key=lambda m: m.query_id)
    assert isinstance(rejected, QueryFailed) and "too large" in rejected.error_message
    assert updated == QueryUpdated(QueryId(1), [])
    assert not session.has_work(always_valid)


def test_the_path_is_canonicalized_for_the_key() -> None:
    session = connected()
    session.modify_query_set(modify(0, 1, add(0, "messages.js:list"), add(1, "messages")))
    keys = [key.path for _, key in session.plan_update(always_valid)]
    assert keys == ["messages:list", "messages:default"]


def test_sessions_sent_one_result_each_get_their_own_query_id_and_versions() -> None:
    """The message for a result is shared by the sessions numbering the query alike, and
    only by them: each Transition carries the session's own queryId and versions."""
    sessions = [connected() for _ in range(4)]
    for k, session in enumerate(sessions):  # query ids 0, 1, 0, 1; query set versions 1-4
        session.modify_query_set(modify(0, 1 + k, add(k % 2)))
    key = sessions[0].plan_update(always_valid)[0][1]
    shared = result_for(key, 5, ["m"])
    transitions = []
    for k, session in enumerate(sessions):
        if k == 3:  # one session is a Transition behind: its startVersion differs
            session.complete_update(4, {QueryId(1): result_for(key, 4, [])})
        ((query_id, _),) = session.plan_update(never_valid)
        transition = session.complete_update(5, {query_id: shared})
        assert transition is not None
        transitions.append(transition)
    for k, transition in enumerate(transitions):
        assert transition.modifications == (QueryUpdated(QueryId(k % 2), ["m"]),)
        assert transition.end_version == StateVersion(QuerySetVersion(1 + k), IdentityVersion(0), 5)
    assert [t.start_version for t in transitions] == [
        StateVersion(),
        StateVersion(),
        StateVersion(),
        StateVersion(QuerySetVersion(4), IdentityVersion(0), 4),
    ]
    assert transitions[0].modifications[0] is transitions[2].modifications[0]
    assert transitions[1].modifications[0] is not transitions[0].modifications[0]
