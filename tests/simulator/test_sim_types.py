"""mypy --strict over the simulator: a type error (or a stale ignore) fails the suite."""
from __future__ import annotations

import subprocess
import sys

from tests.support.simulator import ROOT


def test_the_simulator_is_mypy_strict_clean() -> None:
    done = subprocess.run([sys.executable, "-m", "mypy", "--strict", "--no-incremental", "simulator"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)

    assert done.returncode == 0, done.stdout + done.stderr
