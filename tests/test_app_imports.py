"""The desktop app's import graph has no circle, and the app starts no bare Python thread.

Type-checking-only imports count: `if TYPE_CHECKING: from .layered import LayeredCanvas`
in tools.py still made layered <-> tools a circle for an import checker (issue 21).
The import-linter contract "app-no-cycles" (pyproject.toml) checks the circles between
sibling modules and packages; this module-by-module check stays for the one kind that
contract does not see: a circle through a package's own __init__ (controllers/__init__.py
importing a controller that imports the base class from it).
A bare `threading.Thread` runs Python outside Qt's threads; the app's threads are
`PythonThread`s (threads.py, issue 20).
"""

from __future__ import annotations

import ast
from pathlib import Path

import grimp

import editedid_desktop

PACKAGE = "editedid_desktop"
PACKAGE_DIR = Path(editedid_desktop.__file__).parent


def import_cycles(graph: grimp.ImportGraph, package: str = PACKAGE) -> list[tuple[str, ...]]:
    """Every circle of direct imports between modules of `package`, each listed once
    (starting at its smallest module name) as the modules in import order."""
    cycles: set[tuple[str, ...]] = set()
    modules = {m for m in graph.modules if m == package or m.startswith(package + ".")}
    for importer in sorted(modules):
        for imported in graph.find_modules_directly_imported_by(importer):
            if imported not in modules:
                continue
            back = graph.find_shortest_chain(importer=imported, imported=importer)
            if back is not None:  # importer -> imported -> ... -> importer
                cycle = (importer, *back[:-1])
                start = cycle.index(min(cycle))
                cycles.add(cycle[start:] + cycle[:start])
    return sorted(cycles)


def _describe(graph: grimp.ImportGraph, cycle: tuple[str, ...]) -> str:
    steps = []
    for importer, imported in zip(cycle, cycle[1:] + cycle[:1], strict=True):
        details = graph.get_import_details(importer=importer, imported=imported)
        lines = ", ".join(str(d["line_number"]) for d in details)
        steps.append(f"  {importer} (line {lines}) -> {imported}")
    return "\n".join(steps)


def test_the_app_has_no_import_cycle():
    graph = grimp.build_graph(PACKAGE, cache_dir=None)  # TYPE_CHECKING imports included
    cycles = import_cycles(graph)
    assert not cycles, f"{len(cycles)} import circle(s) in {PACKAGE}:\n" + "\n\n".join(
        _describe(graph, cycle) for cycle in cycles
    )


def test_import_cycles_finds_a_circle_and_lists_it_once():
    """The finder itself, on a made-up graph: a -> b -> c -> a, a -> d (no circle)."""
    graph = grimp.ImportGraph()
    for module in ("p", "p.a", "p.b", "p.c", "p.d"):
        graph.add_module(module)
    for importer, imported in (("p.a", "p.b"), ("p.b", "p.c"), ("p.c", "p.a"), ("p.a", "p.d")):
        graph.add_import(importer=importer, imported=imported)
    assert import_cycles(graph, "p") == [("p.a", "p.b", "p.c")]


def test_import_cycles_sees_a_circle_through_a_package_init():
    """p (its __init__) -> p.a -> p: a circle acyclic_siblings does not report."""
    graph = grimp.ImportGraph()
    for module in ("p", "p.a", "p.b"):
        graph.add_module(module)
    for importer, imported in (("p", "p.a"), ("p.a", "p"), ("p.b", "p")):
        graph.add_import(importer=importer, imported=imported)
    assert import_cycles(graph, "p") == [("p", "p.a")]


def bare_thread_calls(source: str) -> list[int]:
    """Lines calling threading.Thread(...), as `threading.Thread` or an imported `Thread`."""
    tree = ast.parse(source)
    names = {"Thread"} & {
        alias.asname or alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module == "threading"
        for alias in node.names
        if alias.name == "Thread"
    }
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        dotted = (
            isinstance(func, ast.Attribute)
            and func.attr == "Thread"
            and isinstance(func.value, ast.Name)
            and func.value.id == "threading"
        )
        if dotted or (isinstance(func, ast.Name) and func.id in names):
            found.append(node.lineno)
    return found


def test_the_app_starts_no_bare_python_thread():
    offenders = []
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        source = path.read_text(encoding="utf-8")
        lines = bare_thread_calls(source)
        if "threading.Thread(" in source and not lines:  # e.g. a call split over lines
            lines = [0]
        offenders += [f"{path.relative_to(PACKAGE_DIR.parent)}:{line}" for line in lines]
    assert not offenders, "bare threading.Thread (use threads.PythonThread): " + ", ".join(
        offenders
    )


def test_bare_thread_calls_sees_both_spellings():
    assert bare_thread_calls("import threading\nthreading.Thread(target=f).start()\n") == [2]
    assert bare_thread_calls("from threading import Thread\n\nThread(target=f)\n") == [3]
    assert bare_thread_calls("import threading\nthreading.Event()\nThread = 1\n") == []
