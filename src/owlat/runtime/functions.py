"""Function definitions, their wire paths, and the registry of an app's functions.

Decorators (`@query(args={...})`, `@mutation`, `@action`, and the `internal_` variants) turn
an `async def handler(ctx, args)` into a `FunctionDefinition`. When an app package is
loaded, every definition found at module level gets its *path*, derived by one rule:
the module's path inside the package and the attribute name, each converted to camelCase —
`mailing_lists.list_from_session` is `mailingLists:listFromSession`, `admin/user_tools.py`'s
`reset` is `admin/userTools:reset`.

Functions refer to each other through lazy references, `api.contacts.create_from_session`
or `internal.campaigns.send_batch`, which build the same path without importing anything.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol, overload

from owlat.runtime.errors import FunctionNotFoundError, WrongFunctionKindError
from owlat.runtime.values import ObjectValidator, Validator, v


class FunctionKind(enum.Enum):
    QUERY = "query"
    MUTATION = "mutation"
    ACTION = "action"

    @property
    def title(self) -> str:
        return self.value.capitalize()


Handler = Callable[[Any, Any], Awaitable[Any]]


@dataclasses.dataclass(eq=False)
class FunctionDefinition:
    """A registered function: kind, visibility, validators and handler."""

    kind: FunctionKind
    internal: bool
    handler: Handler
    args: ObjectValidator | None
    returns: Validator | None
    path: str = ""  # set when the app package is loaded
    # `kind.value`, read on every call (metrics): an attribute costs less than the enum's
    kind_name: str = dataclasses.field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.kind_name = self.kind.value

    @property
    def visibility(self) -> str:
        return "internal" if self.internal else "public"

    async def __call__(self, ctx: Any, args: Any) -> Any:
        return await self.handler(ctx, args)


def _args_validator(
    args: Mapping[str, Validator] | ObjectValidator | None,
) -> ObjectValidator | None:
    if args is None or isinstance(args, ObjectValidator):
        return args
    if isinstance(args, Mapping):
        return v.object(dict(args))
    raise TypeError(f"args must be a dict of validators or v.object(...), got {args!r}")


class FunctionDecorator(Protocol):
    """`@query`, `@mutation`, ...: bare, or called with `args=` / `returns=` first."""

    @overload
    def __call__(self, handler: Handler, /) -> FunctionDefinition: ...

    @overload
    def __call__(
        self,
        *,
        args: Mapping[str, Validator] | ObjectValidator | None = None,
        returns: Validator | None = None,
    ) -> Callable[[Handler], FunctionDefinition]: ...


def _decorator(kind: FunctionKind, internal: bool) -> FunctionDecorator:
    @overload
    def define(handler: Handler, /) -> FunctionDefinition: ...

    @overload
    def define(
        *,
        args: Mapping[str, Validator] | ObjectValidator | None = None,
        returns: Validator | None = None,
    ) -> Callable[[Handler], FunctionDefinition]: ...

    def define(
        handler: Handler | None = None,
        /,
        *,
        args: Mapping[str, Validator] | ObjectValidator | None = None,
        returns: Validator | None = None,
    ) -> FunctionDefinition | Callable[[Handler], FunctionDefinition]:
        validator = _args_validator(args)

        def wrap(fn: Handler) -> FunctionDefinition:
            if not callable(fn):
                raise TypeError(f"@{kind.value} decorates an async function, got {fn!r}")
            return FunctionDefinition(kind, internal, fn, validator, returns)

        return wrap(handler) if handler is not None else wrap

    define.__name__ = f"{'internal_' if internal else ''}{kind.value}"
    define.__doc__ = (
        f"Define {'an internal' if internal else 'a public'} {kind.value}: "
        f"`@{define.__name__}(args={{...}})` above `async def handler(ctx, args)`."
    )
    return define


query = _decorator(FunctionKind.QUERY, internal=False)
mutation = _decorator(FunctionKind.MUTATION, internal=False)
action = _decorator(FunctionKind.ACTION, internal=False)
internal_query = _decorator(FunctionKind.QUERY, internal=True)
internal_mutation = _decorator(FunctionKind.MUTATION, internal=True)
internal_action = _decorator(FunctionKind.ACTION, internal=True)


# -- paths -----------------------------------------------------------------------------


def camel_case(name: str) -> str:
    """`list_from_session` → `listFromSession` (leading underscores are kept)."""
    stripped = name.lstrip("_")
    head, *rest = stripped.split("_")
    return (
        name[: len(name) - len(stripped)]
        + head
        + "".join(part[:1].upper() + part[1:] for part in rest)
    )


def function_path(module: str, name: str) -> str:
    """The wire path of function `name` in dotted module `module` (relative to the app)."""
    return "/".join(camel_case(part) for part in module.split(".")) + ":" + camel_case(name)


def canonical_path(path: str) -> str:
    """Normalize a client's udfPath: `a/b.js:fn` → `a/b:fn`; no `:` means `:default`."""
    module, sep, name = path.partition(":")
    if not sep:
        name = "default"
    if module.endswith(".js"):
        module = module[:-3]
    return f"{module}:{name}"


class FunctionReference:
    """A lazy reference to a function by path (what `api.x.y` evaluates to)."""

    __slots__ = ("internal", "path")

    def __init__(self, path: str, internal: bool) -> None:
        self.path = path
        self.internal = internal

    def __repr__(self) -> str:
        return f"{'internal' if self.internal else 'api'}[{self.path!r}]"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FunctionReference) and (self.path, self.internal) == (
            other.path,
            other.internal,
        )

    def __hash__(self) -> int:
        return hash(self.path)


class _ReferenceBuilder:
    """`api.module.function`, `api.dir.module.function`: attributes accumulate the path."""

    __slots__ = ("_internal", "_parts")

    def __init__(self, internal: bool, parts: tuple[str, ...] = ()) -> None:
        self._internal = internal
        self._parts = parts

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        parts = (*self._parts, name)
        return _ReferenceBuilder(self._internal, parts)

    def __getitem__(self, name: str) -> Any:
        return self.__getattr__(name)

    def to_reference(self) -> FunctionReference:
        if len(self._parts) < 2:
            raise TypeError(
                "A function reference needs a module and a function: api.module.function"
            )
        return FunctionReference(
            function_path(".".join(self._parts[:-1]), self._parts[-1]), self._internal
        )

    def __repr__(self) -> str:
        return f"{'internal' if self._internal else 'api'}.{'.'.join(self._parts)}"


api: Any = _ReferenceBuilder(internal=False)
internal: Any = _ReferenceBuilder(internal=True)

FunctionLike = FunctionReference | FunctionDefinition | str | Any


def path_of(function: FunctionLike) -> str:
    """The path of a reference, definition, `api.x.y` builder or path string."""
    if isinstance(function, str):
        return function
    if isinstance(function, FunctionReference):
        return function.path
    if isinstance(function, _ReferenceBuilder):
        return function.to_reference().path
    if isinstance(function, FunctionDefinition):
        if not function.path:
            raise FunctionNotFoundError("This function is not registered in the loaded app")
        return function.path
    raise TypeError(f"Expected a function reference (api.x.y), got {function!r}")


# -- registry --------------------------------------------------------------------------


class FunctionRegistry:
    """Every function of an app, by path."""

    def __init__(self) -> None:
        self._functions: dict[str, FunctionDefinition] = {}

    def add(self, path: str, definition: FunctionDefinition) -> None:
        if path in self._functions and self._functions[path] is not definition:
            raise ValueError(f"Two functions share the path {path!r}")
        definition.path = path
        self._functions[path] = definition

    def __iter__(self) -> Any:
        return iter(self._functions.values())

    def __len__(self) -> int:
        return len(self._functions)

    def get(self, path: str) -> FunctionDefinition | None:
        definition = self._functions.get(path)
        return definition if definition is not None else self._functions.get(canonical_path(path))

    def resolve(
        self, path: str, kind: FunctionKind | None, *, allow_internal: bool
    ) -> FunctionDefinition:
        """The function at `path`, checking visibility and (if given) kind."""
        definition = self._functions.get(path) or self.get(path)  # canonical: one dict lookup
        if definition is None or (definition.internal and not allow_internal):
            raise FunctionNotFoundError(
                f"Could not find public function for '{path}'."
                if not allow_internal
                else f"Could not find function for '{path}'."
            )
        if kind is not None and definition.kind is not kind:
            raise WrongFunctionKindError(
                f"Trying to execute {path} as {kind.title}, but it is defined as "
                f"{definition.kind.title}."
            )
        return definition
