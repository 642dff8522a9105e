"""owlat.app's functions and helpers say which ctx they take (issue 15 item 7)."""

from __future__ import annotations

import ast
import gc
from pathlib import Path

import owlat.app

APP = Path(owlat.app.__file__).resolve().parent


def test_no_ctx_is_typed_any() -> None:
    """A `ctx` is a QueryCtx, MutationCtx or ActionCtx (or rendering's own context), never
    `Any`: mypy then refuses a write from a query's helper or `ctx.db` in an action."""
    untyped = []
    for path in sorted(APP.rglob("*.py")):
        for node in ast.walk(_parsed(path)):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for arg in node.args.args + node.args.kwonlyargs:
                annotation = None if arg.annotation is None else ast.unparse(arg.annotation)
                if arg.arg == "ctx" and annotation in (None, "Any", "object"):
                    untyped.append(f"{path.relative_to(APP)}:{node.lineno} {node.name}")
    assert untyped == []


def _parsed(path: Path) -> ast.Module:
    """`path`'s syntax tree, parsed with the garbage collector off: a finalizer of an
    earlier test's leftovers running inside the parser trips CPython 3.11's AST
    recursion-depth check (SystemError "AST constructor recursion depth mismatch")."""
    gc.disable()
    try:
        return ast.parse(path.read_text(), str(path))
    finally:
        gc.enable()
