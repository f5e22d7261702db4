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
PACKAGES = ("webhooks", "worker", "fulfillment", "simulator", "console")


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


def test_the_graph_sees_known_edges() -> None:
    # If this fails, the graph builder is broken and the tests below prove nothing.
    graph = import_graph()
    assert "worker.contract" in graph["webhooks.app"]
    assert "fulfillment.settings" in graph["fulfillment.stripe_api"]
    assert "worker.tasks" in graph["worker.app"]


def test_find_cycle_finds_one() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_no_import_cycles() -> None:
    assert find_cycle(import_graph()) is None


def _external_imports(package: str) -> set[str]:
    found = set()
    for module, path in source_modules().items():
        if module == package or module.startswith(package + "."):
            found |= {name.split(".")[0] for name in imported_names(path, module)}
    return found


def test_the_domain_imports_neither_flask_nor_celery_nor_another_package_of_ours() -> None:
    assert _external_imports("fulfillment") & {"flask", "celery", "kombu", "webhooks", "worker", "simulator",
                                               "console"} == set()


def test_the_simulator_depends_on_the_domain_only() -> None:
    assert _external_imports("simulator") & {"webhooks", "worker", "console"} == set()


def test_the_receiver_imports_only_the_message_contract_of_the_worker() -> None:
    graph = import_graph()
    reached = {target for module, targets in graph.items() if module.startswith("webhooks")
               for target in targets if target.startswith("worker")}
    assert reached <= {"worker.contract", "worker"}


def test_importing_the_receiver_loads_no_task_pipeline_handler_or_stripe_client() -> None:
    # Given a fresh interpreter, when the receiver's package is imported (as gunicorn does)
    probe = ("import sys, webhooks; print('\\n'.join(sorted(m for m in sys.modules "
             "if m.split('.')[0] in ('worker', 'fulfillment', 'webhooks'))))")
    loaded = set(subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True,
                                check=True, timeout=60).stdout.split())

    # Then the contract is there, and nothing of the worker's or the domain's machinery is
    assert {"webhooks.app", "worker.contract"} <= loaded
    assert loaded.isdisjoint({"worker.app", "worker.tasks", "worker.runtime", "fulfillment.pipeline",
                              "fulfillment.handlers", "fulfillment.stripe_api", "celery.worker"})
