"""The package structure: no import circles between inkless modules.

Every import counts — at the top of a module, inside a function, or for type checking only — because each
is a dependency of one module on another; a circle means neither can be understood, tested or moved alone.
"""

from __future__ import annotations

import ast
from pathlib import Path

import inkless

SRC = Path(inkless.__file__).resolve().parent.parent

# Known and explained: config validates the SIP and SMTP settings by calling their option parsers, which
# name the Settings type for type checking only (no import at run time in that direction).
KNOWN = {frozenset({"inkless.config", "inkless.fax.sip.options", "inkless.mail.options"})}


def _modules() -> dict[str, Path]:
    found = {}
    for path in (SRC / "inkless").rglob("*.py"):
        parts = path.relative_to(SRC).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            candidates = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for candidate in candidates:
            while candidate and candidate not in modules:
                candidate = candidate.rpartition(".")[0]
            if candidate and candidate != name and candidate.startswith("inkless"):
                targets.add(candidate)
    return targets


def _circles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(frozenset(component))
    return found


def test_the_finder_sees_a_circle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _circles(graph) == [frozenset({"a", "b", "c"})]


def test_no_import_circles_between_modules() -> None:
    modules = _modules()
    graph = {name: _imports(name, path, modules) for name, path in modules.items()}
    assert "inkless.federation.client" in graph["inkless.delivery.transport_http"]  # the walk sees imports
    circles = [sorted(c) for c in _circles(graph) if c not in KNOWN]
    assert circles == []


def test_federation_imports_neither_directory_nor_delivery() -> None:
    modules = _modules()
    for name, path in modules.items():
        if name.startswith("inkless.federation"):
            imported = _imports(name, path, modules)
            assert {m for m in imported if m.startswith(("inkless.directory", "inkless.delivery"))} == set(), name
