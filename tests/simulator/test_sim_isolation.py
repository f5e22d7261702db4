"""The simulator is for development only: no production package imports it, and it imports the domain only."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: Development code that may import the simulator (to start and drive it); never the reverse.
DEV_STACK = ROOT / "crossfill"


@pytest.mark.parametrize("package", ["webhooks", "worker", "fulfillment"])
def test_production_code_never_imports_the_simulator(package: str) -> None:
    offenders = [f"{path.relative_to(ROOT)}: {name}" for path, name in _imports(package)
                 if name.split(".")[0] == "simulator" and not path.is_relative_to(DEV_STACK)]

    assert offenders == []


def test_the_simulator_imports_the_domain_only() -> None:
    offenders = [f"{path.relative_to(ROOT)}: {name}" for path, name in _imports("simulator")
                 if name.split(".")[0] in ("worker", "webhooks", "console")]

    assert offenders == []


def _imports(package: str) -> list[tuple[Path, str]]:
    """(file, imported module) for every import statement of *package*."""
    found = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found += [(path, alias.name) for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                found.append((path, node.module))
    return found
