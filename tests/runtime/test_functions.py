"""Function registry, wire paths, visibility, kinds, argument and return validation."""

from __future__ import annotations

from typing import Any

import pytest

from owlat.runtime import ConvexError, Int64, api, internal, v
from owlat.runtime.app_package import load_app_package
from owlat.runtime.application import Application
from owlat.runtime.errors import (
    ArgumentValidationError,
    FunctionNotFoundError,
    SchemaError,
    ValidationError,
    WrongFunctionKindError,
)
from owlat.runtime.functions import (
    FunctionKind,
    camel_case,
    canonical_path,
    function_path,
    internal_mutation,
    path_of,
    query,
)
from owlat.runtime.testing import in_mutation


@pytest.mark.parametrize(
    ("module", "name", "path"),
    [
        ("mailing_lists", "list_from_session", "mailingLists:listFromSession"),
        ("contacts", "get", "contacts:get"),
        ("admin.user_tools", "reset_all", "admin/userTools:resetAll"),
        ("email_templates", "_private_helper", "emailTemplates:_privateHelper"),
    ],
)
def test_one_rule_derives_wire_paths(module: str, name: str, path: str) -> None:
    assert function_path(module, name) == path


def test_camel_case_and_canonical_paths() -> None:
    assert camel_case("a_b_c") == "aBC"
    assert canonical_path("messages.js:list") == "messages:list"
    assert canonical_path("dir/messages") == "dir/messages:default"


def test_lazy_references_build_the_same_paths() -> None:
    assert path_of(api.mailing_lists.list_from_session) == "mailingLists:listFromSession"
    assert path_of(internal.campaigns.send_batch) == "campaigns:sendBatch"
    with pytest.raises(TypeError, match="module and a function"):
        path_of(api.contacts)


def test_fixture_app_registry() -> None:
    package = load_app_package("tests.fixtures.app")
    paths = {definition.path for definition in package.functions}
    assert {
        "messages:send",
        "messages:list",
        "messages:countAll",
        "counters:increment",
        "counters:incrementMany",
    } <= paths
    definition = package.functions.get("messages:countAll")
    assert definition is not None and definition.internal
    assert package.functions.get("messages.js:countAll") is definition


def test_app_package_without_schema_is_rejected() -> None:
    with pytest.raises(SchemaError, match="needs a schema.py"):
        load_app_package("tests.fixtures")
    with pytest.raises(SchemaError, match="cannot be imported"):
        load_app_package("tests.no_such_app")


async def test_unknown_path_and_internal_function_from_public_caller(app: Application) -> None:
    with pytest.raises(
        FunctionNotFoundError, match=r"^Could not find public function for 'messages:lis'\.$"
    ):
        await app.run(FunctionKind.QUERY, "messages:lis", {})
    with pytest.raises(FunctionNotFoundError, match="public function for 'messages:countAll'"):
        await app.run(FunctionKind.QUERY, "messages:countAll", {})
    assert (await app.run(FunctionKind.QUERY, "messages:countAll", {}, internal=True)).value == 0.0


async def test_wrong_kind_uses_convex_message(app: Application) -> None:
    with pytest.raises(
        WrongFunctionKindError,
        match=r"^Trying to execute messages:send as Query, but it is defined "
        r"as Mutation\.$",
    ):
        await app.run(FunctionKind.QUERY, "messages:send", {"channel": "c", "body": "b"})


async def test_a_function_called_before_is_checked_again_on_every_call(app: Application) -> None:
    """Resolved paths are kept: visibility and kind are still checked per call."""
    assert (await app.run(FunctionKind.QUERY, "messages:countAll", {}, internal=True)).value == 0.0
    with pytest.raises(FunctionNotFoundError, match="public function for 'messages:countAll'"):
        await app.run(FunctionKind.QUERY, "messages:countAll", {})
    await app.run(FunctionKind.MUTATION, "messages:send", {"channel": "c", "body": "b"})
    with pytest.raises(WrongFunctionKindError, match="defined as Mutation"):
        await app.run(FunctionKind.QUERY, "messages:send", {"channel": "c", "body": "b"})


async def test_kind_none_runs_any_function(app: Application) -> None:
    result = await app.run(None, "messages:send", {"channel": "c", "body": "b"})
    assert isinstance(result.value, str)


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        ({"channel": "c"}, "missing the required field `body`"),
        ({"channel": "c", "body": 5}, "Path: .body"),
        ({"channel": "c", "body": "b", "other": 1}, "extra field `other`"),
        ([], "must be an object"),
    ],
)
async def test_argument_validation_names_path_and_field(
    app: Application, args: object, fragment: str
) -> None:
    with pytest.raises(ArgumentValidationError) as error:
        await app.run_mutation("messages:send", args)
    assert error.value.message.startswith("ArgumentValidationError: ")
    assert fragment in error.value.message
    assert "messages:send" in error.value.message
    assert (await app.run_query("messages:list", {"channel": "c"})).value == []


async def test_v_id_argument_rejects_ids_of_other_tables(app: Application) -> None:
    async def make_counter(ctx: Any) -> Any:
        return await ctx.db.insert("counters", {"name": "x", "count": 1})

    counter_id = await in_mutation(app, make_counter)
    with pytest.raises(ArgumentValidationError, match='v.id\\("messages"\\)'):
        await app.run_query("messages:get", {"id": counter_id})
    with pytest.raises(ArgumentValidationError, match="Path: .id"):
        await app.run_query("messages:get", {"id": "garbage"})


async def test_convex_error_carries_data(app: Application) -> None:
    with pytest.raises(ConvexError) as error:
        await app.run_mutation("messages:send", {"channel": "c", "body": ""})
    assert error.value.data == {"code": "EMPTY_BODY", "message": "A message needs a body"}


async def test_actions_reach_the_database_only_through_run_functions(app: Application) -> None:
    result = await app.run_action("counters:incrementMany", {"name": "n", "times": 3})
    assert result.value == 3.0
    assert result.ts is None
    assert (await app.run_query("counters:get", {"name": "n"})).value == 3.0


async def test_returns_validator_and_result_normalization(app: Application) -> None:
    @query(args={}, returns=v.string())
    async def bad_return(ctx: object, args: object) -> object:
        return 5

    @query(args={})
    async def int_result(ctx: object, args: object) -> object:
        return {"n": 3, "big": Int64(2), "tuple": (1, 2)}

    app.package.functions.add("adhoc:badReturn", bad_return)
    app.package.functions.add("adhoc:intResult", int_result)
    with pytest.raises(ValidationError, match="ReturnsValidationError"):
        await app.run_query("adhoc:badReturn", {})
    value = (await app.run_query("adhoc:intResult", {})).value
    assert value == {"n": 3.0, "big": Int64(2), "tuple": [1.0, 2.0]}
    assert isinstance(value["n"], float) and isinstance(value["big"], Int64)


async def test_log_lines_capture_print(app: Application) -> None:
    @query(args={})
    async def chatty(ctx: object, args: object) -> None:
        print("hello", 42)
        print("second line")

    app.package.functions.add("adhoc:chatty", chatty)
    result = await app.run_query("adhoc:chatty", {})
    assert result.log_lines == ("[LOG] hello 42", "[LOG] second line")


async def test_a_failed_call_has_an_outcome_with_its_log_lines_and_read_set(
    app: Application,
) -> None:
    @query(args={})
    async def fails(ctx: Any, args: object) -> None:
        print("looking")
        await ctx.db.query("messages").collect()
        raise ConvexError("nope")

    app.package.functions.add("adhoc:fails", fails)
    outcome = await app.execute(FunctionKind.QUERY, "adhoc:fails", {})
    assert isinstance(outcome.error, ConvexError) and outcome.value is None
    assert outcome.log_lines == ("[LOG] looking",)
    assert outcome.read_set is not None
    assert outcome.read_set.intervals("messages", "by_creation_time")
    with pytest.raises(ConvexError, match="nope"):
        await app.run_query("adhoc:fails", {})
    unknown = await app.execute(None, "adhoc:missing", {})
    assert isinstance(unknown.error, FunctionNotFoundError) and unknown.log_lines == ()


async def test_ctx_state_lasts_one_call_and_is_not_shared_with_nested_calls(
    app: Application,
) -> None:
    @internal_mutation
    async def inner(ctx: Any, args: object) -> Any:
        return sorted(ctx.state)

    @internal_mutation
    async def outer(ctx: Any, args: object) -> Any:
        seen = sorted(ctx.state)
        ctx.state["mark"] = 1
        return [seen, await ctx.run_mutation("adhoc:inner", {}), sorted(ctx.state)]

    app.package.functions.add("adhoc:inner", inner)
    app.package.functions.add("adhoc:outer", outer)
    for _ in range(2):
        outcome = await app.run_mutation("adhoc:outer", {}, internal=True)
        assert outcome.value == [[], [], ["mark"]]
