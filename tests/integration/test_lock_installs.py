"""The image's lock installs on a clean venv, the way the Dockerfile installs it, and the result runs.

The builder stage, without Docker: a fresh venv, requirements/runtime.txt with --require-hashes and
wheels only, then crossfill with --no-deps --no-build-isolation from a copy of its sources. Then
``pip check`` and a smoke test on that venv alone (no dev dependencies): the receiver answers
/healthz, the worker's app and the console import, and Flower's CLI loads. Skipped when the package
registry cannot be reached (pip's wheel cache usually makes it a local affair).
"""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

REPO = Path(__file__).resolve().parents[2]
UNREACHABLE = re.compile(r"NewConnectionError|Max retries exceeded|Temporary failure in name resolution|"
                         r"Network is unreachable|Could not fetch URL|No matching distribution found")
SMOKE = """
import flask, webhooks.app, console, flower.command
from webhooks import create_app
from fulfillment.settings import load_settings
from webhooks.settings import load_receiver_settings
env = {"STRIPE_WEBHOOK_SECRET": "whsec_smoke", "CROSSFILL_REDIS_URL": "redis://127.0.0.1:1/0"}
app = create_app(load_settings(env), load_receiver_settings(env))
response = app.test_client().get("/healthz")
assert response.status_code == 200 and response.get_json() == {"status": "ok"}, response.data
print("smoke ok")
"""


def run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=600, check=False)


def project_copy(target: Path) -> None:
    """The files the image's build context holds (.dockerignore), so the build leaves the repo clean."""
    packages = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, target / name)
    for pattern in packages["include"]:
        shutil.copytree(REPO / pattern.rstrip("*"), target / pattern.rstrip("*"),
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


def test_the_runtime_lock_installs_on_a_clean_venv_and_the_smoke_test_passes(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    python = str(venv / "bin" / "python")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)

    # Given the lock installed exactly as the Dockerfile's builder does
    locked = run([python, "-m", "pip", "install", "--quiet", "--require-hashes", "--only-binary", ":all:",
                  "-r", str(REPO / "requirements" / "runtime.txt")], tmp_path)
    if locked.returncode and UNREACHABLE.search(locked.stderr):
        pytest.skip(f"the package registry is unreachable: {locked.stderr.strip().splitlines()[-1]}")
    assert locked.returncode == 0, locked.stderr
    source = tmp_path / "src"
    source.mkdir()
    project_copy(source)
    project = run([python, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", str(source)],
                  tmp_path)
    assert project.returncode == 0, project.stderr

    # When its dependencies are checked and the smoke test runs on it alone
    check = run([python, "-m", "pip", "check"], tmp_path)
    smoke = run([python, "-c", SMOKE], tmp_path)

    # Then nothing is missing or conflicting, and the receiver answers
    assert check.returncode == 0, check.stdout + check.stderr
    assert smoke.returncode == 0 and "smoke ok" in smoke.stdout, smoke.stderr
