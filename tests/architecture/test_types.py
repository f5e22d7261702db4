"""mypy over the three production packages (STYLE.md §10): a type error fails the suite."""
from __future__ import annotations

import subprocess
import sys

from tests.support.processes import ROOT


def test_mypy_finds_no_type_error() -> None:
    done = subprocess.run([sys.executable, "-m", "mypy", "--no-incremental"], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
