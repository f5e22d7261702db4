"""The architecture, held by tests: dependencies point one way, and no module imports itself round.

The graph is built from the source (every ``import`` and ``from ... import``, at any depth, since a
function-level import is a dependency too), so a new module is checked without being listed.
"""
from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: Each package's layer, top to bottom: an import may only point to a lower layer (or stay inside its
#: own package). The root wires processes; the apps are peers that never import each other; the ops
#: service sits over the message path; the domain imports none of ours.
LAYERS: dict[str, int] = {
    "crossfill": 5,
    "webhooks": 4, "worker": 4, "console": 4, "simulator": 4,
    "ops": 3,
    "messaging": 2,
    "fulfillment": 1,
}
PACKAGES = tuple(LAYERS)


def source_modules() -> dict[str, Path]:
    """Dotted module name → file, for every module of crossfill's packages."""
    modules: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join(parts)] = path
    return modules


def imported_names(path: Path, module: str) -> Iterator[str]:
    """Every dotted name *module* imports, relative imports resolved."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")
                anchor = anchor if is_package else anchor[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names)


def import_graph() -> dict[str, set[str]]:
    """Module → the crossfill modules it imports (a ``from pkg import sub`` counts as ``pkg.sub``)."""
    modules = source_modules()
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        targets = set()
        for name in imported_names(path, module):
            if name in modules and name != module:
                targets.add(name)
        # ``from pkg import sub`` yields both pkg and pkg.sub: keep only the submodule.
        graph[module] = {t for t in targets if not any(o.startswith(t + ".") for o in targets)}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of *graph*, as the modules along it, or None."""
    visiting: list[str] = []
    done: set[str] = set()

    def visit(node: str) -> list[str] | None:
        if node in visiting:
            return visiting[visiting.index(node):] + [node]
        if node in done:
            return None
        visiting.append(node)
        for target in sorted(graph.get(node, ())):
            cycle = visit(target)
            if cycle:
                return cycle
        visiting.pop()
        done.add(node)
        return None

    for start in sorted(graph):
        cycle = visit(start)
        if cycle:
            return cycle
    return None


def upward_imports(graph: dict[str, set[str]]) -> list[tuple[str, str]]:
    """Every import of *graph* that does not point to a lower layer (or inside its own package)."""
    found = []
    for module, targets in graph.items():
        home = module.split(".")[0]
        for target in targets:
            there = target.split(".")[0]
            if there != home and LAYERS[there] >= LAYERS[home]:
                found.append((module, target))
    return sorted(found)


def test_the_graph_sees_known_edges() -> None:
    # If this fails, the graph builder is broken and the tests below prove nothing.
    graph = import_graph()
    assert "messaging.dispatch" in graph["webhooks.app"]
    assert "fulfillment.settings" in graph["fulfillment.stripe_api"]
    assert "worker.tasks" in graph["worker.app"]
    assert "ops.service" in graph["console.service"]


def test_find_cycle_finds_one() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_no_import_cycles() -> None:
    assert find_cycle(import_graph()) is None


def test_upward_imports_are_seen() -> None:
    # The rule below proves nothing if the check cannot see an import that runs up, or across, a layer.
    assert upward_imports({"fulfillment.ledger": {"worker.tasks"}, "console.service": {"worker.app"},
                           "worker.tasks": {"messaging.dispatch", "worker.retries"}}) == [
        ("console.service", "worker.app"), ("fulfillment.ledger", "worker.tasks")]


def test_every_import_points_down_a_layer() -> None:
    # root -> {webhooks, worker, console, simulator} -> ops -> messaging -> fulfillment; apps never import
    # each other (the receiver no longer reaches into worker/, the CLI lives above the console).
    assert upward_imports(import_graph()) == []


def _external_imports(package: str) -> set[str]:
    found = set()
    for module, path in source_modules().items():
        if module == package or module.startswith(package + "."):
            found |= {name.split(".")[0] for name in imported_names(path, module)}
    return found


def test_the_domain_imports_neither_flask_nor_celery_nor_another_package_of_ours() -> None:
    assert _external_imports("fulfillment") & {"flask", "celery", "kombu", *LAYERS} - {"fulfillment"} == set()


def test_the_services_build_no_celery_app_and_serve_no_http() -> None:
    # messaging builds Celery's wire format with a bare app (messaging.contract), never a configured one.
    assert _external_imports("ops") & {"flask", "celery", "kombu"} == set()
    assert _external_imports("messaging") & {"flask"} == set()


def test_the_simulator_depends_on_the_domain_only() -> None:
    assert _external_imports("simulator") & set(LAYERS) - {"simulator", "fulfillment"} == set()


def test_importing_the_receiver_loads_no_task_pipeline_handler_or_stripe_client() -> None:
    # Given a fresh interpreter, when the receiver's package is imported (as gunicorn does)
    probe = ("import sys, webhooks; print('\\n'.join(sorted(m for m in sys.modules "
             "if m.split('.')[0] in ('worker', 'fulfillment', 'webhooks', 'messaging', 'ops'))))")
    loaded = set(subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True,
                                check=True, timeout=60).stdout.split())

    # Then the message path is there, and nothing of the worker's or the domain's machinery is
    assert {"webhooks.app", "messaging.dispatch", "messaging.contract"} <= loaded
    assert loaded.isdisjoint({"worker.app", "worker.tasks", "ops.runtime", "ops.service", "fulfillment.pipeline",
                              "fulfillment.handlers", "fulfillment.stripe_api", "celery.worker"})


def test_the_console_builds_no_celery_app() -> None:
    # Given a fresh interpreter, when the console's app module is imported (as gunicorn does)
    probe = "import sys, console.app; print('\\n'.join(sorted(m for m in sys.modules if m.split('.')[0] == 'worker')))"
    loaded = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True,
                            check=True, timeout=60).stdout.split()

    # Then nothing of the worker is loaded
    assert loaded == []
