"""Settings: defaults, one ConfigError per unusable value, and the CLI's exit code 2."""
from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fulfillment import defaults
from fulfillment.errors import ConfigError
from fulfillment.settings import Settings, load_settings, redact

SECRET_A = "whsec_AAAAsupersecretAAAA"
SECRET_B = "whsec_BBBBsupersecretBBBB"


def config_error(env: dict[str, str]) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load_settings(env)
    return caught.value


def test_defaults() -> None:
    settings = load_settings({})

    assert settings.redis_url is None
    assert settings.data_dir == Path("./var")
    assert settings.port == 8000
    assert settings.web_workers == 2 * (os.cpu_count() or 1) + 1
    assert settings.signature_tolerance == 300
    assert settings.max_body_bytes == 262_144
    assert settings.catalog_path is None
    assert settings.webhook_secrets == ()
    assert settings.stripe_api_key is None
    assert settings.stripe_api_base == "https://api.stripe.com"


def test_defaults_equal_the_dataclass_defaults() -> None:
    assert load_settings({}) == Settings()


def test_blank_values_mean_the_default() -> None:
    blank = {name: "  " for name in ("CROSSFILL_REDIS_URL", "CROSSFILL_PORT", "CROSSFILL_SIGNATURE_TOLERANCE",
                                     "CROSSFILL_MAX_BODY_BYTES", "STRIPE_WEBHOOK_SECRET", "STRIPE_API_BASE")}

    assert load_settings(blank) == load_settings({})


def test_every_variable_is_read(tmp_path: Path) -> None:
    catalog = tmp_path / "catalog.toml"
    catalog.write_text("")

    settings = load_settings({
        "CROSSFILL_REDIS_URL": " redis://cache.internal:6380/2 ",
        "CROSSFILL_DATA_DIR": str(tmp_path),
        "CROSSFILL_PORT": "9001",
        "CROSSFILL_WEB_WORKERS": "3",
        "CROSSFILL_SIGNATURE_TOLERANCE": "0",
        "CROSSFILL_MAX_BODY_BYTES": "1024",
        "CROSSFILL_CATALOG": str(catalog),
        "STRIPE_WEBHOOK_SECRET": f"{SECRET_A}, {SECRET_B}",
        "STRIPE_API_KEY": "sk_test_123",
        "STRIPE_API_BASE": "http://127.0.0.1:12111/",
    })

    assert settings == Settings(
        redis_url="redis://cache.internal:6380/2", data_dir=tmp_path, port=9001, web_workers=3,
        signature_tolerance=0, max_body_bytes=1024, catalog_path=catalog,
        webhook_secrets=(SECRET_A, SECRET_B), stripe_api_key="sk_test_123",
        stripe_api_base="http://127.0.0.1:12111",
    )


@pytest.mark.parametrize("url", ["redis://localhost:6379/0", "rediss://user:pw@redis.example:6380/1",
                                 "unix:///var/run/redis.sock"])
def test_redis_url_schemes(url: str) -> None:
    assert load_settings({"CROSSFILL_REDIS_URL": url}).redis_url == url


def test_settings_are_frozen() -> None:
    settings = load_settings({})

    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.port = 1  # type: ignore[misc]


def test_repr_shows_no_secret() -> None:
    settings = load_settings({"STRIPE_WEBHOOK_SECRET": SECRET_A, "STRIPE_API_KEY": "sk_live_topsecret"})

    assert SECRET_A not in repr(settings)
    assert "sk_live_topsecret" not in repr(settings)


def test_resolved_redis_url_names_the_variable_when_unset() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({}).resolved_redis_url

    assert caught.value.name == "CROSSFILL_REDIS_URL"


@pytest.mark.parametrize(("name", "value"), [
    ("CROSSFILL_REDIS_URL", "http://localhost:6379"),
    ("CROSSFILL_REDIS_URL", "localhost:6379"),
    ("CROSSFILL_REDIS_URL", "redis://localhost:port/0"),
    ("CROSSFILL_REDIS_URL", "redis://"),
    ("CROSSFILL_SIGNATURE_TOLERANCE", "-1"),
    ("CROSSFILL_SIGNATURE_TOLERANCE", "5m"),
    ("CROSSFILL_SIGNATURE_TOLERANCE", "86401"),
    ("CROSSFILL_PORT", "0"),
    ("CROSSFILL_PORT", "65536"),
    ("CROSSFILL_PORT", "eighty"),
    ("CROSSFILL_WEB_WORKERS", "0"),
    ("CROSSFILL_WEB_WORKERS", "2.5"),
    ("CROSSFILL_MAX_BODY_BYTES", "1023"),
    ("CROSSFILL_MAX_BODY_BYTES", "256k"),
    ("CROSSFILL_CATALOG", "/nonexistent/catalog.toml"),
    ("STRIPE_API_BASE", "api.stripe.com"),
    ("STRIPE_API_BASE", "ftp://api.stripe.com"),
])
def test_bad_value_names_the_variable_the_value_and_a_fix(name: str, value: str) -> None:
    error = config_error({name: value})

    assert error.name == name
    assert name in str(error)
    assert repr(value) in str(error)
    assert " is invalid: " in str(error) and len(error.fix) > 10


@pytest.mark.parametrize("value", [
    f"{SECRET_A},,{SECRET_B}",
    f"{SECRET_A},",
    f",{SECRET_A}",
    f"{SECRET_A}, ,{SECRET_B}",
    ",",
])
def test_an_empty_secret_in_the_list_is_refused_without_showing_the_others(value: str) -> None:
    error = config_error({"STRIPE_WEBHOOK_SECRET": value})

    assert error.name == "STRIPE_WEBHOOK_SECRET"
    assert "empty" in str(error)
    for text in (SECRET_A, SECRET_B, "AAAA", "BBBB"):
        assert text not in str(error) and text not in repr(error.value)


def test_the_first_bad_variable_is_the_one_named() -> None:
    error = config_error({"CROSSFILL_REDIS_URL": "nope://", "CROSSFILL_PORT": "-1"})

    assert error.name == "CROSSFILL_REDIS_URL"


@pytest.mark.parametrize(("secret", "shown"), [
    ("whsec_abcdefgh", "whsec_…(14 chars)"),
    ("plainsecret", "…(11 chars)"),
    ("", "<empty>"),
])
def test_redact_shows_shape_not_text(secret: str, shown: str) -> None:
    assert redact(secret) == shown


# --- the CLI stops at start: exit code 2 and one line naming the variable ------------------------

def run_cli(command: str, env_overrides: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("CROSSFILL_", "STRIPE_", "PROMETHEUS_"))}
    env.update({"CROSSFILL_DATA_DIR": str(cwd / "var")}, **env_overrides)
    return subprocess.run([sys.executable, "-m", "worker.cli", command], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.parametrize(("name", "value", "hidden"), [
    ("CROSSFILL_SIGNATURE_TOLERANCE", "-5", None),
    ("CROSSFILL_REDIS_URL", "http://nowhere", None),
    ("STRIPE_WEBHOOK_SECRET", f"{SECRET_A},,{SECRET_B}", SECRET_A),
])
def test_cli_web_with_a_bad_value_exits_2_with_one_line(tmp_path: Path, name: str, value: str,
                                                         hidden: str | None) -> None:
    # Given a bad value in the environment
    env = {name: value}
    if name != "STRIPE_WEBHOOK_SECRET":
        env["STRIPE_WEBHOOK_SECRET"] = SECRET_B

    # When `crossfill web` starts
    result = run_cli("web", env, tmp_path)

    # Then it stops at once with exit code 2 and a single line naming the variable and the fix
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"crossfill: {name}=")
    assert "invalid" in lines[0]
    assert result.stdout == ""
    if hidden is not None:
        assert hidden not in result.stderr
    assert not (tmp_path / "var").exists(), "nothing may be started before the settings are valid"


def test_cli_worker_with_a_bad_value_exits_2(tmp_path: Path) -> None:
    result = run_cli("worker", {"CROSSFILL_REDIS_URL": "redis://localhost:notaport/0"}, tmp_path)

    assert result.returncode == 2, result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("crossfill: CROSSFILL_REDIS_URL='redis://localhost:notaport/0' is invalid: ")


def test_defaults_module_units_match_settings() -> None:
    # One place for defaults: the settings use exactly the values of fulfillment.defaults.
    settings = load_settings({})

    assert (settings.port, settings.signature_tolerance, settings.max_body_bytes, str(settings.data_dir)) == (
        defaults.PORT, defaults.SIGNATURE_TOLERANCE_S, defaults.MAX_BODY_BYTES, str(Path(defaults.DATA_DIR)))
