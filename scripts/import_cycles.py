#!/usr/bin/env python3
"""Import cycles among owlat's modules, from the source's AST.

    python scripts/import_cycles.py [--all]

By default only imports that run when a module is imported count: module-level `import`
and `from ... import` statements, outside `if TYPE_CHECKING:` blocks (imports inside
functions run later, when called), and the packages whose `__init__` such an import runs
first (`import a.b.c` runs `a.b`). `--all` counts every import, type-only and deferred ones
too: the cycles a reader meets, not only the ones Python runs. Prints each strongly
connected group of two or more modules and exits 1 when there is one.
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Iterator
from pathlib import Path

SOURCE = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "owlat"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SOURCE).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def import_nodes(tree: ast.Module, every: bool) -> Iterator[ast.Import | ast.ImportFrom]:
    if every:
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                yield node
        return
    pending: list[ast.stmt] = list(tree.body)
    while pending:
        node = pending.pop()
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif isinstance(node, ast.If) and not is_type_checking(node.test):
            pending.extend(node.body + node.orelse)
        elif isinstance(node, ast.Try):
            pending.extend(node.body + node.orelse + node.finalbody)
            for handler in node.handlers:
                pending.extend(handler.body)


def imported(name: str, node: ast.Import | ast.ImportFrom, modules: set[str]) -> set[str]:
    """The owlat modules `node` (in module `name`) loads."""
    if isinstance(node, ast.Import):
        targets = [alias.name for alias in node.names]
    else:
        if node.level:
            raise SystemExit(f"{name}: relative import; owlat imports absolutely")
        base = node.module or ""
        targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
    found = set()
    for target in targets:
        while target and target not in modules:
            target = target.rpartition(".")[0]
        if target and target.startswith(PACKAGE) and target != name:
            found.add(target)
    return found


def packages_of(module: str, modules: set[str]) -> set[str]:
    """The packages above `module` (`a` and `a.b` for `a.b.c`) that are owlat modules."""
    parts = module.split(".")
    return {".".join(parts[:end]) for end in range(1, len(parts))} & modules


def graph(every: bool) -> dict[str, set[str]]:
    files = {module_name(path): path for path in (SOURCE / PACKAGE).rglob("*.py")}
    modules = set(files)
    edges: dict[str, set[str]] = {}
    for name, path in files.items():
        tree = ast.parse(path.read_text(), str(path))
        edges[name] = set()
        for node in import_nodes(tree, every):
            edges[name] |= imported(name, node, modules)
        if not every:  # importing a.b.c runs the __init__ of a.b (and a) first
            edges[name] |= {
                package for target in edges[name] for package in packages_of(target, modules)
            }
        # importing a.b.c runs a and a.b first: a package's __init__ is not a cycle of its own
        edges[name] = {target for target in edges[name] if not name.startswith(target + ".")}
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of two or more modules (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(edges.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--all", action="store_true", help="count type-only and deferred imports")
    options = parser.parse_args()
    found = cycles(graph(options.all))
    kind = "import cycles (every import)" if options.all else "import cycles at import time"
    for component in found:
        print(f"{len(component)} modules: " + ", ".join(component))
    print(f"{len(found)} {kind}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
