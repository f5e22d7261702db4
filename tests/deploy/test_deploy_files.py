"""docker-compose.yml and the Procfile: their commands, ports and variables match the CLI and settings.

No Docker engine runs here, so the files are parsed: the Procfile's lines are expanded by ``sh``
itself, the compose file's ``${...}`` by a small implementation of compose's interpolation.
"""
from __future__ import annotations

import configparser
import inspect
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

import console.settings
import fulfillment.settings
import webhooks.settings
from crossfill.cli.service import GUNICORN_APP, GUNICORN_CONFIG, WORKER_QUEUES, gunicorn_argv, worker_argv
from fulfillment.errors import ConfigError
from fulfillment.settings import Settings, load_settings
from messaging.contract import EVENTS_QUEUE, FULFILLMENT_QUEUE, PROCESS_EVENT
from tests.support.deploy import COMPOSE_VARIABLE, interpolate, sh_argv
from webhooks import defaults
from webhooks.settings import load_receiver_settings

REPO = Path(__file__).resolve().parents[2]
APP_SERVICES = ("web", "worker", "beat", "flower")
HA_SERVICES = ("redis-ha-a", "redis-ha-b", "redis-ha-c", "sentinel-1", "sentinel-2", "sentinel-3")  #: the profile ha
SECRET = "whsec_deploy_files_test"
#: What a .env beside docker-compose.yml must hold: every ${NAME:?...} of the file.
REQUIRED_HOST_ENV = {"STRIPE_WEBHOOK_SECRET": SECRET, "FLOWER_BASIC_AUTH": "ops:correct-horse"}
#: Compose's ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?error}, ${NAME?error}, $NAME.


# --- what the code defines ----------------------------------------------------------------------

def settings_variables() -> set[str]:
    """Every CROSSFILL_* / STRIPE_* variable the settings loaders read, from their modules' source."""
    sources = "".join(inspect.getsource(module) for module in (fulfillment.settings, webhooks.settings,
                                                                console.settings))
    return set(re.findall(r'"((?:CROSSFILL|STRIPE)_[A-Z0-9_]+)"', sources))


def test_the_variable_list_is_derived_from_settings() -> None:
    # The stable interface (ARCHITECTURE.md) must all be found, or the derivation above is broken.
    assert {"CROSSFILL_REDIS_URL", "CROSSFILL_DATA_DIR", "CROSSFILL_PORT", "CROSSFILL_WEB_WORKERS",
            "CROSSFILL_SIGNATURE_TOLERANCE", "CROSSFILL_MAX_BODY_BYTES", "CROSSFILL_CATALOG",
            "STRIPE_WEBHOOK_SECRET", "STRIPE_API_KEY", "STRIPE_API_BASE"} <= settings_variables()
    for name in settings_variables():
        assert load_settings({name: ""}) == load_settings({}), f"{name} is not read with a blank default"
        assert load_receiver_settings({name: ""}) == load_receiver_settings({}), f"{name}: no blank default"


# --- docker-compose.yml ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    return loaded


def referenced(value: str) -> set[str]:
    return {match["name"] or match["bare"] for match in COMPOSE_VARIABLE.finditer(value)}


def service_env(compose: dict[str, Any], service: str, host_env: dict[str, str]) -> dict[str, str]:
    environment = compose["services"][service]["environment"]
    assert isinstance(environment, dict), f"{service}: write environment as a mapping"
    return {key: interpolate(str(value), host_env) for key, value in environment.items()}


def command(compose: dict[str, Any], service: str, host_env: dict[str, str]) -> list[str]:
    argv = compose["services"][service]["command"]
    assert isinstance(argv, list), f"{service}: write the command as a list (no shell in between)"
    return [interpolate(str(arg), host_env) for arg in argv]


def options(argv: list[str]) -> dict[str, str]:
    """``--name value`` / ``--name=value`` / ``-Q value`` pairs of a command line."""
    aliases = {"-Q": "--queues", "-P": "--pool", "-A": "--app", "-b": "--bind", "-w": "--workers"}
    found: dict[str, str] = {}
    index = 0
    while index < len(argv):
        arg = argv[index]
        if arg.startswith("-"):
            if "=" in arg:
                name, value = arg.split("=", 1)
                index += 1
            else:
                name, value = arg, argv[index + 1]
                index += 2
            found[aliases.get(name, name)] = value
        else:
            index += 1
    return found


def test_compose_has_redis_web_worker_and_flower(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == {"redis", *APP_SERVICES, "console", *HA_SERVICES}  # console: tests/console


def test_compose_profile_ha_is_a_master_two_replicas_and_three_sentinels(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {name for name, service in services.items() if "ha" in service.get("profiles", ())} == set(HA_SERVICES)
    for name in ("redis-ha-a", "redis-ha-b", "redis-ha-c"):  # each may become master: all keep an append-only file
        argv = services[name]["command"]
        assert argv[argv.index("--appendonly") + 1] == "yes"
        assert argv[argv.index("--replica-announce-ip") + 1] == name
    for name in ("redis-ha-b", "redis-ha-c"):  # two replicas: a failover leaves one to hold writes
        replica = services[name]["command"]
        assert replica[replica.index("--replicaof") + 1:][:2] == ["redis-ha-a", "6379"]
    assert "--replicaof" not in services["redis-ha-a"]["command"]
    for number in (1, 2, 3):
        script = " ".join(services[f"sentinel-{number}"]["command"])
        assert "sentinel monitor mymaster redis-ha-a 6379 2" in script and "--sentinel" in script
        assert services[f"sentinel-{number}"]["volumes"] == [f"sentinel-{number}-data:/data"]


def test_compose_points_crossfill_at_the_sentinels_when_told(compose: dict[str, Any]) -> None:
    url = ";".join(f"sentinel://sentinel-{number}:26379" for number in (1, 2, 3))
    for service in APP_SERVICES:
        settings = load_settings(service_env(compose, service, REQUIRED_HOST_ENV | {"CROSSFILL_REDIS_URL": url}))
        assert settings.redis_url == url
        assert (settings.redis.sentinel_master, settings.redis.min_replicas) == ("mymaster", 1)


def test_compose_redis_is_7_with_an_append_only_file_on_a_named_volume(compose: dict[str, Any]) -> None:
    redis_service = compose["services"]["redis"]

    assert str(redis_service["image"]).split(":")[1].startswith("7")
    argv = redis_service["command"]
    assert argv[argv.index("--appendonly") + 1] == "yes"
    [mount] = redis_service["volumes"]
    volume, target = mount.split(":")[:2]
    assert target == "/data" and volume in compose["volumes"]


@pytest.mark.parametrize("service", APP_SERVICES)
def test_compose_services_use_the_settings_variables(compose: dict[str, Any], service: str) -> None:
    raw = compose["services"][service]["environment"]
    env = service_env(compose, service, REQUIRED_HOST_ENV)
    names = set(raw) | {name for value in raw.values() for name in referenced(str(value))}
    names |= {name for arg in compose["services"][service]["command"] for name in referenced(str(arg))}

    ours = {name for name in names if name.startswith(("CROSSFILL_", "STRIPE_"))}  # FLOWER_*: Flower's own
    assert ours <= settings_variables(), f"unknown to load_settings: {sorted(ours - settings_variables())}"
    assert env["CROSSFILL_REDIS_URL"] == "redis://redis:6379/0"
    assert env["STRIPE_WEBHOOK_SECRET"] == SECRET
    assert load_settings(env).redis_url == "redis://redis:6379/0"
    assert load_receiver_settings(env).webhook_secrets == (SECRET,)
    assert "redis" in compose["services"][service]["depends_on"]


def test_compose_requires_the_webhook_secret(compose: dict[str, Any]) -> None:
    with pytest.raises(KeyError, match="STRIPE_WEBHOOK_SECRET"):
        service_env(compose, "web", {})


def test_compose_passes_host_values_through(compose: dict[str, Any]) -> None:
    host = {"STRIPE_WEBHOOK_SECRET": SECRET, "CROSSFILL_SIGNATURE_TOLERANCE": "60", "CROSSFILL_WEB_WORKERS": "6"}

    receiver = load_receiver_settings(service_env(compose, "web", host))

    assert (receiver.signature_tolerance, receiver.web_workers) == (60, 6)
    assert options(command(compose, "web", host))["--workers"] == "6"


@pytest.mark.parametrize("host", [{}, {"CROSSFILL_WEB_WORKERS": "7"}])
def test_compose_web_runs_the_clis_gunicorn_command(compose: dict[str, Any], host: dict[str, str]) -> None:
    host = host | {"STRIPE_WEBHOOK_SECRET": SECRET}
    receiver = load_receiver_settings(service_env(compose, "web", host))

    argv = command(compose, "web", host)

    # The same gunicorn command `crossfill web` runs, listening on all interfaces inside the container
    assert argv == ["gunicorn", *gunicorn_argv(receiver, bind_host="0.0.0.0")[3:]]
    assert GUNICORN_APP in argv and argv[argv.index("--config") + 1] == GUNICORN_CONFIG


def test_compose_web_port_is_crossfill_port(compose: dict[str, Any]) -> None:
    web = compose["services"]["web"]
    env = service_env(compose, "web", {"STRIPE_WEBHOOK_SECRET": SECRET})
    port = load_receiver_settings(env).port

    assert port == defaults.PORT
    assert options(command(compose, "web", {}))["--bind"] == f"0.0.0.0:{port}"
    assert [str(mapping).split(":")[-1] for mapping in web["ports"]] == [str(port)]
    assert f"127.0.0.1:{port}/readyz" in " ".join(web["healthcheck"]["test"])


def test_compose_keeps_the_metrics_port_inside_and_prometheus_scrapes_it(compose: dict[str, Any]) -> None:
    web = compose["services"]["web"]
    receiver = load_receiver_settings(service_env(compose, "web", {"STRIPE_WEBHOOK_SECRET": SECRET}))
    scrape = yaml.safe_load((REPO / "deploy" / "prometheus" / "prometheus.yml").read_text())

    # The metrics port is reachable on the compose network (bound to all interfaces of the container),
    # never published on the host; the receiver's port is the only one published
    assert (receiver.metrics_bind, receiver.metrics_port) == ("0.0.0.0", defaults.METRICS_PORT)
    assert [str(port) for port in web["expose"]] == [str(receiver.metrics_port)]
    assert not any(str(mapping).split(":")[-1] == str(receiver.metrics_port) for mapping in web["ports"])
    # and Prometheus scrapes that port, not the receiver's, with the shipped alert rules
    [job] = scrape["scrape_configs"]
    assert job.get("metrics_path", "/metrics") == "/metrics"
    assert job["static_configs"] == [{"targets": [f"web:{receiver.metrics_port}"]}]
    assert scrape["rule_files"] == ["alerts.yml"]


def test_the_metrics_endpoint_listens_on_loopback_by_default() -> None:
    receiver = load_receiver_settings({})

    assert (receiver.metrics_bind, receiver.metrics_port) == ("127.0.0.1", 9464)


def celery_worker_options(argv: list[str]) -> dict[str, str]:
    assert argv[:4] == ["celery", "--app", "worker.main", "worker"], argv
    return options(argv[4:])


def clis_worker_options() -> dict[str, str]:
    wanted = options(worker_argv(8))
    del wanted["--hostname"]  # the CLI names its worker after its pid; celery's default is fine
    return wanted


def test_compose_worker_consumes_both_queues_like_the_cli(compose: dict[str, Any]) -> None:
    found = celery_worker_options(command(compose, "worker", {}))

    assert found == clis_worker_options()
    assert found["--queues"] == WORKER_QUEUES
    assert set(found["--queues"].split(",")) == {EVENTS_QUEUE, FULFILLMENT_QUEUE}
    assert found["--pool"] == "threads"


def test_compose_flower_watches_the_same_app(compose: dict[str, Any]) -> None:
    flower = compose["services"]["flower"]
    argv = command(compose, "flower", {})

    assert argv[:4] == ["celery", "--app", "worker.main", "flower"]
    port = options(argv[4:])["--port"]
    assert [str(mapping).split(":")[-1] for mapping in flower["ports"]] == [port]


# --- Procfile ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def procfile() -> dict[str, str]:
    entries = {}
    for line in (REPO / "Procfile").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, cmd = line.split(":", 1)
            entries[name.strip()] = cmd.strip()
    return entries


def test_procfile_declares_web_and_worker(procfile: dict[str, str]) -> None:
    assert set(procfile) == {"web", "worker", "beat", "console"}  # console: tests/console/test_deploy_console.py


def test_procfile_uses_only_settings_variables(procfile: dict[str, str]) -> None:
    names = {name for cmd in procfile.values() for name in referenced(cmd)}

    assert names and names <= settings_variables()


@pytest.mark.parametrize("env", [{"CROSSFILL_PORT": "9100", "CROSSFILL_WEB_WORKERS": "5"},
                                 {"CROSSFILL_WEB_WORKERS": "2"}])
def test_procfile_web_runs_the_clis_gunicorn_command(procfile: dict[str, str], env: dict[str, str]) -> None:
    receiver = load_receiver_settings(env)

    argv = sh_argv(procfile["web"], env)

    assert argv == ["gunicorn", *gunicorn_argv(receiver, bind_host="0.0.0.0")[3:]]


def test_procfile_web_defaults_to_crossfill_port_default(procfile: dict[str, str]) -> None:
    argv = sh_argv(procfile["web"], {})

    assert options(argv)["--bind"] == f"0.0.0.0:{defaults.PORT}"
    assert load_receiver_settings({"CROSSFILL_WEB_WORKERS": options(argv)["--workers"]}).web_workers >= 1


def test_procfile_worker_matches_the_cli_and_compose(procfile: dict[str, str], compose: dict[str, Any]) -> None:
    argv = sh_argv(procfile["worker"], {})

    assert celery_worker_options(argv) == clis_worker_options()
    assert argv == command(compose, "worker", {})


def test_beat_runs_celery_beat_on_the_app_in_the_procfile_and_compose(procfile: dict[str, str],
                                                                      compose: dict[str, Any]) -> None:
    argv = sh_argv(procfile["beat"], {})

    # No --schedule: the app puts beat's schedule file in the data dir (worker/schedule.py)
    assert argv == ["celery", "--app", "worker.main", "beat", "--loglevel", "INFO"]
    assert argv == command(compose, "beat", {})
    env = service_env(compose, "beat", {"STRIPE_WEBHOOK_SECRET": SECRET})
    assert load_settings(env).data_dir == Path("/tmp/crossfill")  # writable by the image's user


def test_the_app_keeps_beats_schedule_in_the_data_dir_and_schedules_both_jobs(tmp_path: Path) -> None:
    from worker.app import make_celery

    settings = load_settings({"CROSSFILL_REDIS_URL": "redis://127.0.0.1:1/0", "CROSSFILL_DATA_DIR": str(tmp_path),
                              "CROSSFILL_RECONCILE_EVERY": "2m", "CROSSFILL_SWEEP_EVERY": "20"})

    app = make_celery(settings)

    assert app.conf.beat_schedule_filename == str(tmp_path / "celerybeat-schedule")
    assert {entry["task"]: entry["schedule"] for entry in app.conf.beat_schedule.values()} \
        == {"reconcile": 120, "sweep": 20}
    assert {"reconcile", "sweep"} <= set(app.tasks)


def test_procfile_web_matches_compose(procfile: dict[str, str], compose: dict[str, Any]) -> None:
    env = {"CROSSFILL_PORT": "8000", "CROSSFILL_WEB_WORKERS": "4"}

    assert sh_argv(procfile["web"], env) == command(compose, "web", env)


# --- worker.main, the celery CLI's --app -------------------------------------------------------------

def test_worker_main_builds_the_app_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CROSSFILL_REDIS_URL", "redis://redis.example:6379/3")
    monkeypatch.delitem(sys.modules, "worker.main", raising=False)
    try:
        import worker.main

        settings: Settings = worker.main.settings
        app = worker.main.app
        assert settings.redis_url == "redis://redis.example:6379/3"
        assert app.conf.broker_url == "redis://redis.example:6379/3"
        assert PROCESS_EVENT in app.tasks
        assert {queue.name for queue in app.conf.task_queues} == {EVENTS_QUEUE, FULFILLMENT_QUEUE}
    finally:
        sys.modules.pop("worker.main", None)


def test_worker_main_without_a_redis_url_says_which_variable(tmp_path: Path) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("CROSSFILL_", "STRIPE_"))}

    result = subprocess.run([sys.executable, "-c", "import worker.main"], env=env, cwd=tmp_path,
                            capture_output=True, text=True, timeout=60, check=False)

    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"{ConfigError.__module__}.ConfigError: CROSSFILL_REDIS_URL=None is invalid: ")
    assert "redis://" in last


# --- restart policies: compose and the README's systemd units ---------------------------------------

#: A Celery worker whose Redis was killed was seen exiting 0 (ARCHITECTURE.md): a policy that restarts
#: only failures would leave it dead.
RESTARTS_AFTER_EXIT_0 = {"always", "unless-stopped"}


def test_compose_restarts_every_service_whatever_its_exit_code(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        assert service.get("restart") in RESTARTS_AFTER_EXIT_0, f"{name}: restart is {service.get('restart')!r}"


def systemd_units() -> dict[str, configparser.ConfigParser]:
    """The README's systemd units, by the process they run (``crossfill-<name>.service``)."""
    found = re.findall(r"```ini\n# /etc/systemd/system/crossfill-([\w-]+)\.service\n(.*?)```",
                       (REPO / "README.md").read_text(), re.S)
    units = {}
    for name, text in found:
        unit = configparser.ConfigParser(interpolation=None, strict=True, delimiters=("=",))
        unit.optionxform = str  # type: ignore[assignment,method-assign]
        unit.read_string(text)
        units[name] = unit
    return units


def unit_argv(unit: configparser.ConfigParser, env: dict[str, str]) -> list[str]:
    """ExecStart as systemd runs it: quotes as in sh, ``${NAME}`` from the unit's Environment= then *env*."""
    defaults = dict(pair.split("=", 1) for pair in shlex.split(unit["Service"].get("Environment", "")))
    values = defaults | env
    return [re.sub(r"\$\{(\w+)\}", lambda match: values[match[1]], arg)
            for arg in shlex.split(unit["Service"]["ExecStart"])]


def test_the_readme_has_systemd_units_for_web_worker_and_beat_that_always_restart() -> None:
    units = systemd_units()

    assert {"web", "worker", "beat"} <= set(units)
    for name, unit in units.items():
        assert unit["Service"]["Restart"] == "always", name
        assert unit["Unit"]["StartLimitIntervalSec"] == "0", f"{name}: systemd would stop restarting it"
        assert unit["Install"]["WantedBy"] == "multi-user.target", name


def test_the_systemd_units_create_private_files() -> None:
    # The data dir holds the append-only file (customer emails), secrets and beat's schedule.
    for name, unit in systemd_units().items():
        assert unit["Service"].get("UMask") == "0077", f"{name}: files it creates are readable by others"


@pytest.mark.parametrize("env", [{}, {"CROSSFILL_PORT": "9100", "CROSSFILL_WEB_WORKERS": "5"}])
def test_the_systemd_units_run_the_procfiles_commands(procfile: dict[str, str], env: dict[str, str]) -> None:
    units = systemd_units()

    for name, line in procfile.items():
        assert name in units, f"the Procfile runs {name}; add a crossfill-{name}.service unit to the README"
        argv = unit_argv(units[name], env)
        expected = sh_argv(line, env)
        assert [Path(argv[0]).name, *argv[1:]] == expected, f"crossfill-{name}.service differs from the Procfile"


def test_the_systemd_beat_unit_runs_celery_beat_on_the_app() -> None:
    argv = unit_argv(systemd_units()["beat"], {})

    assert [Path(argv[0]).name, *argv[1:4]] == ["celery", "--app", "worker.main", "beat"]
