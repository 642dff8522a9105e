"""Loading an app package: its schema, its functions, and optionally http, crons, triggers.

An app package is any importable Python package with a `schema.py` exposing `schema`
(from `define_schema`), function modules (module-level `@query`/`@mutation`/`@action`
definitions), and optionally `http.py` exposing `http` (an HttpRouter), `crons.py`
exposing `crons` and `triggers.py` exposing `triggers` (runtime/triggers.py). Each function
is registered once, under the module that defines its handler, so re-exporting a function
elsewhere does not give it a second path.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from types import ModuleType
from typing import Any

from owlat.runtime.errors import SchemaError
from owlat.runtime.functions import FunctionDefinition, FunctionRegistry, function_path
from owlat.runtime.schema import SchemaDefinition
from owlat.runtime.triggers import Triggers, check_triggers


@dataclasses.dataclass
class AppPackage:
    """What an app package defines."""

    name: str
    schema: SchemaDefinition
    functions: FunctionRegistry
    http: Any = None
    crons: Any = None
    triggers: Triggers | None = None


def _modules(package: ModuleType) -> list[ModuleType]:
    modules = [package]
    path = getattr(package, "__path__", None)
    if path is None:
        raise SchemaError(
            f"App {package.__name__!r} must be a package (a folder with __init__.py), not a module"
        )
    for info in pkgutil.walk_packages(path, prefix=package.__name__ + "."):
        modules.append(importlib.import_module(info.name))
    return modules


def load_app_package(name: str) -> AppPackage:
    """Import app package `name` and collect its schema, functions, http and crons."""
    try:
        package = importlib.import_module(name)
    except ModuleNotFoundError as error:
        if error.name is not None and name.startswith(error.name):
            raise SchemaError(f"App package {name!r} cannot be imported: {error}") from error
        raise
    registry = FunctionRegistry()
    found: dict[str, ModuleType] = {}
    for module in _modules(package):
        relative = module.__name__[len(name) + 1 :]
        found[relative] = module
        for attribute, value in vars(module).items():
            if (
                isinstance(value, FunctionDefinition)
                and getattr(value.handler, "__module__", None) == module.__name__
            ):
                registry.add(function_path(relative, attribute), value)
    schema_module = found.get("schema")
    schema = getattr(schema_module, "schema", None)
    if not isinstance(schema, SchemaDefinition):
        raise SchemaError(
            f"App package {name!r} needs a schema.py that defines `schema = define_schema({{...}})`"
        )
    http = getattr(found.get("http"), "http", None)
    crons = getattr(found.get("crons"), "crons", None)
    triggers = check_triggers(
        getattr(found.get("triggers"), "triggers", None), frozenset(schema.tables)
    )
    return AppPackage(name, schema, registry, http, crons, triggers)
