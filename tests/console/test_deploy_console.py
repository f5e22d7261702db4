"""The console's commands: the Procfile, compose and systemd run what ``crossfill console`` runs;
bad console settings exit 2 naming the setting; ``crossfill report`` prints the rollups."""
from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml

from console.settings import load_console_settings
from crossfill.cli.console import console_argv
from fulfillment.errors import ConfigError
from fulfillment.ledger import Ledger
from tests.support.console import CATALOG, TOKENS, paid_order
from tests.support.deploy import interpolate, sh_argv
from tests.support.processes import ROOT, RedisServer

TOKEN_ENV = {"CROSSFILL_CONSOLE_TOKENS": f"ana:operator:{TOKENS['operator']}"}


@pytest.fixture(scope="module")
def procfile_console() -> str:
    lines = dict(line.split(":", 1) for line in (ROOT / "Procfile").read_text().splitlines()
                 if line.strip() and not line.startswith("#"))
    return lines["console"].strip()


@pytest.fixture(scope="module")
def compose_console() -> dict[str, Any]:
    service: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["console"]
    return service


@pytest.mark.parametrize("env", [{}, {"CROSSFILL_CONSOLE_PORT": "9001", "CROSSFILL_CONSOLE_WORKERS": "4"},
                                 {"CROSSFILL_CONSOLE_BIND": "0.0.0.0", **TOKEN_ENV}])
def test_the_procfile_runs_the_clis_console_command(procfile_console: str, env: dict[str, str]) -> None:
    assert sh_argv(procfile_console, env) == ["gunicorn", *console_argv(load_console_settings(env))[3:]]


def test_compose_runs_the_same_command_bound_inside_the_container(compose_console: dict[str, Any]) -> None:
    host = {"STRIPE_WEBHOOK_SECRET": "whsec_x", **TOKEN_ENV}
    env = {key: interpolate(str(value), host) for key, value in compose_console["environment"].items()}
    argv = [interpolate(str(arg), host) for arg in compose_console["command"]]

    assert argv == ["gunicorn", *console_argv(load_console_settings(env))[3:]]
    assert compose_console["ports"] == ["127.0.0.1:8001:8001"]  # the host's loopback only
    assert compose_console["restart"] == "unless-stopped"


def test_compose_console_without_tokens_refuses_to_listen(compose_console: dict[str, Any]) -> None:
    env = {key: interpolate(str(value), {"STRIPE_WEBHOOK_SECRET": "whsec_x"})
           for key, value in compose_console["environment"].items()}

    with pytest.raises(ConfigError, match="CROSSFILL_CONSOLE_BIND"):
        load_console_settings(env)


def crossfill(args: list[str], env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("CROSSFILL_", "STRIPE_"))}
    return subprocess.run([sys.executable, "-m", "crossfill.cli", *args], env={**clean, **env}, cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout, check=False)


@pytest.mark.parametrize(("env", "name"), [
    ({"CROSSFILL_CONSOLE_BIND": "0.0.0.0"}, "CROSSFILL_CONSOLE_BIND"),
    ({"CROSSFILL_CONSOLE_TOKENS": f"ana:root:{TOKENS['operator']}"}, "CROSSFILL_CONSOLE_TOKENS"),
    ({"CROSSFILL_CONSOLE_TOKENS": "ana:viewer:short"}, "CROSSFILL_CONSOLE_TOKENS"),
    ({"CROSSFILL_CONSOLE_TOKENS": "ana:viewer:" + "ab" * 20}, "CROSSFILL_CONSOLE_TOKENS"),
    ({"CROSSFILL_CONSOLE_TOKENS": f"shop:merchant:{TOKENS['merchant']}"}, "CROSSFILL_CONSOLE_TOKENS"),
    ({"CROSSFILL_TRUSTED_PROXIES": "many"}, "CROSSFILL_TRUSTED_PROXIES"),
    ({"CROSSFILL_CONSOLE_PORT": "http"}, "CROSSFILL_CONSOLE_PORT"),
])
def test_bad_console_settings_exit_2_with_one_line_naming_the_setting(tmp_path: Path, env: dict[str, str],
                                                                       name: str) -> None:
    result = crossfill(["console"], {**env, "CROSSFILL_REDIS_URL": "redis://127.0.0.1:9/0",
                                     "CROSSFILL_DATA_DIR": str(tmp_path)})

    assert result.returncode == 2, result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"crossfill: {name}=")
    assert TOKENS["operator"] not in result.stderr + result.stdout


@pytest.fixture
def populated(tmp_path: Path) -> tuple[RedisServer, dict[str, str]]:
    server = RedisServer(tmp_path / "redis")
    catalog = tmp_path / "catalog.toml"
    catalog.write_text(CATALOG)
    ledger = Ledger(redis.Redis(port=server.port, decode_responses=True))
    for number in range(4):
        paid_order(ledger, f"cs_test_cli{number}", cross_sell=number == 0)
    return server, {"CROSSFILL_REDIS_URL": server.url, "CROSSFILL_CATALOG": str(catalog),
                    "CROSSFILL_DATA_DIR": str(tmp_path / "var")}


def test_crossfill_report_prints_text_json_and_csv(populated: tuple[RedisServer, dict[str, str]]) -> None:
    server, env = populated
    try:
        text = crossfill(["report"], env)
        as_json = crossfill(["report", "--since", "7d", "--json"], env)
        as_csv = crossfill(["report", "--csv"], env)
        other = crossfill(["report", "--account", "acct_none", "--json"], env)
        bad = crossfill(["report", "--since", "someday"], env)
    finally:
        server.stop()

    assert text.returncode == 0, text.stderr
    assert "prod_pro" in text.stdout and "attach  25.0%" in text.stdout and "15.00 USD" in text.stdout
    [row] = json.loads(as_json.stdout)["rows"]
    assert (row["paid_orders"], row["orders_with_cross_sell"], row["attach_rate"]) == (4, 1, 0.25)
    assert row["average_order_value_with"] == {"usd": 6500.0} and row["average_order_value_without"] == {"usd": 5000.0}
    rows = list(csv.reader(io.StringIO(as_csv.stdout)))
    assert rows[0][:3] == ["account", "product", "cross_sell"] and rows[1][1] == "prod_pro"
    assert json.loads(other.stdout)["rows"] == []
    assert bad.returncode == 2 and "--since" in bad.stderr
