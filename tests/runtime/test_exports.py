"""The public API of owlat.runtime is one explicit list, and owlat.app uses only it."""

from __future__ import annotations

import ast
from pathlib import Path

import owlat.runtime

SRC = Path(owlat.runtime.__file__).resolve().parents[1]


def test_all_lists_exactly_the_public_names() -> None:
    public = {name for name in vars(owlat.runtime) if not name.startswith("_")}
    modules = {name for name in public if type(getattr(owlat.runtime, name)).__name__ == "module"}
    assert sorted(owlat.runtime.__all__) == sorted(public - modules - {"annotations"})
    assert len(set(owlat.runtime.__all__)) == len(owlat.runtime.__all__)


def test_app_imports_only_the_public_runtime_api() -> None:
    offenders = []
    for path in (SRC / "app").rglob("*.py"):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.ImportFrom)
                and node.module
                and node.module.startswith("owlat.runtime.")
            ):
                offenders.append(f"{path.relative_to(SRC)}: from {node.module} import ...")
            if isinstance(node, ast.Import):
                offenders += [
                    f"{path.relative_to(SRC)}: import {alias.name}"
                    for alias in node.names
                    if alias.name.startswith("owlat.runtime.")
                ]
    assert offenders == []


def test_runtime_does_not_import_the_app() -> None:
    for path in (SRC / "runtime").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = (
                [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else [alias.name for alias in getattr(node, "names", [])]
                if isinstance(node, ast.Import)
                else []
            )
            assert not any(name.startswith("owlat.app") for name in names), path


def test_app_answers_json_with_the_runtime_json_response() -> None:
    """Starlette's JSONResponse writes `120.0`; owlat.runtime's writes `120`, as Convex's
    HTTP actions (JavaScript) do."""
    offenders = []
    for path in (SRC / "app").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if (
                isinstance(node, ast.ImportFrom)
                and (node.module or "").startswith("starlette")
                and any(alias.name == "JSONResponse" for alias in node.names)
            ):
                offenders.append(str(path.relative_to(SRC)))
    assert offenders == []
