"""stripe-node for the suite: installed once into the data dir's cache, or the test is skipped.

The second real client of the simulator and the receiver (stripe-python is the first). npm fetches
``stripe@STRIPE_NODE_VERSION`` into ``var/node/stripe-<version>`` the first time (a few seconds),
and every later session reuses it; without ``node``/``npm``, or with no way to fetch the package,
the tests that need it skip with the reason.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.support.processes import ROOT

STRIPE_NODE_VERSION = "23.1.0"
#: Where the package is cached (CROSSFILL_NODE_CACHE overrides; var/ is the data dir, ignored by git).
CACHE = Path(os.environ.get("CROSSFILL_NODE_CACHE", ROOT / "var" / "node")) / f"stripe-{STRIPE_NODE_VERSION}"
INSTALL_TIMEOUT_S = 180
SCRIPTS = Path(__file__).parent / "stripe_node"  #: the JavaScript the tests run


def stripe_node() -> Path:
    """The directory whose ``node_modules`` holds stripe-node; skips the test when it cannot be had."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("node and npm are not installed (apt-get install nodejs npm): the stripe-node tests skip")
    package = CACHE / "node_modules" / "stripe" / "package.json"
    if package.exists() and json.loads(package.read_text())["version"] == STRIPE_NODE_VERSION:
        return CACHE
    CACHE.mkdir(parents=True, exist_ok=True)
    try:
        done = subprocess.run([npm, "install", "--prefix", str(CACHE), "--no-audit", "--no-fund", "--silent",
                               "--no-save", f"stripe@{STRIPE_NODE_VERSION}"], capture_output=True, text=True,
                              timeout=INSTALL_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        pytest.skip(f"npm could not fetch stripe@{STRIPE_NODE_VERSION} within {INSTALL_TIMEOUT_S} s")
    if done.returncode != 0 or not package.exists():
        pytest.skip(f"npm could not fetch stripe@{STRIPE_NODE_VERSION}: {(done.stderr or done.stdout)[-300:]}")
    return CACHE


def run_script(name: str, env: dict[str, str], *, timeout: float = 120) -> Any:
    """Run ``tests/support/stripe_node/<name>`` with stripe-node on its path; its JSON output."""
    modules = stripe_node() / "node_modules"
    node = shutil.which("node")
    assert node is not None
    done = subprocess.run([node, str(SCRIPTS / name)], env={**os.environ, **env, "NODE_PATH": str(modules)},
                          capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    assert done.returncode == 0, f"{name} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return json.loads(done.stdout.strip().splitlines()[-1])
