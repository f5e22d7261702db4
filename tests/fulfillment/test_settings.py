"""Settings: defaults, one ConfigError per unusable value, and the CLI's exit code 2."""
from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fulfillment import defaults
from fulfillment.credentials import kept_secret, redact, redact_url
from fulfillment.env import parse_duration
from fulfillment.errors import ConfigError
from fulfillment.settings import (
    RecoverySettings,
    RedisSettings,
    RetrySettings,
    Settings,
    StripeSettings,
    load_settings,
)
from fulfillment.store import Replication
from webhooks import defaults as web_defaults
from webhooks.settings import ReceiverSettings, load_receiver_settings

SECRET_A = "whsec_AAAAsupersecretAAAA"
SECRET_B = "whsec_BBBBsupersecretBBBB"


def load_all(env: dict[str, str]) -> tuple[Settings, ReceiverSettings]:
    """What a process that runs the receiver reads at its edge: the shared settings, then its own."""
    return load_settings(env), load_receiver_settings(env)


def config_error(env: dict[str, str]) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load_all(env)
    return caught.value


def test_defaults() -> None:
    settings, receiver = load_all({})

    assert settings.redis_url is None
    assert settings.data_dir == Path("./var")
    assert receiver.port == 8000
    assert receiver.web_workers == 2 * (os.cpu_count() or 1) + 1
    assert receiver.signature_tolerance == 300
    assert receiver.max_body_bytes == 262_144
    assert settings.catalog_path is None
    assert receiver.webhook_secrets == ()
    assert settings.stripe.api_key is None
    assert settings.stripe.api_base == "https://api.stripe.com"
    assert settings.retry.horizon == 72 * 3600


def test_defaults_equal_the_dataclass_defaults() -> None:
    assert load_all({}) == (Settings(), ReceiverSettings())


def test_blank_values_mean_the_default() -> None:
    blank = {name: "  " for name in ("CROSSFILL_REDIS_URL", "CROSSFILL_PORT", "CROSSFILL_SIGNATURE_TOLERANCE",
                                     "CROSSFILL_MAX_BODY_BYTES", "STRIPE_WEBHOOK_SECRET", "STRIPE_API_BASE",
                                     "CROSSFILL_RETRY_HORIZON")}

    assert load_all(blank) == load_all({})


@pytest.mark.parametrize(("raw", "seconds"), [("90", 90), ("90s", 90), ("10m", 600), ("72h", 259_200),
                                              ("1.5h", 5400), ("30d", 2_592_000), (" 2H ", 7200)])
def test_durations_take_a_unit(raw: str, seconds: float) -> None:
    assert parse_duration(raw) == seconds
    assert load_settings({"CROSSFILL_RETRY_HORIZON": raw}).retry.horizon == seconds


@pytest.mark.parametrize("raw", ["", "h", "10 minutes", "-5m", "1e3", "72hours"])
def test_a_duration_without_a_known_unit_is_refused(raw: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(raw)


def test_every_variable_is_read(tmp_path: Path) -> None:
    catalog = tmp_path / "catalog.toml"
    catalog.write_text("")

    settings, receiver = load_all({
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
        "CROSSFILL_RETRY_HORIZON": "1h",
        "CROSSFILL_VISIBILITY_TIMEOUT": "600",
    })

    assert settings == Settings(
        redis_url="redis://cache.internal:6380/2", data_dir=tmp_path, catalog_path=catalog,
        stripe=StripeSettings(api_key="sk_test_123", api_base="http://127.0.0.1:12111", livemode=False),
        retry=RetrySettings(horizon=3600, visibility_timeout=600),
        # the stuck threshold no longer follows the visibility timeout (worker/redelivery.py)
        recovery=RecoverySettings(),
    )
    assert receiver == ReceiverSettings(port=9001, web_workers=3, signature_tolerance=0, max_body_bytes=1024,
                                        webhook_secrets=(SECRET_A, SECRET_B), livemode=False)


@pytest.mark.parametrize("url", ["redis://localhost:6379/0", "rediss://user:pw@redis.example:6380/1",
                                 "unix:///var/run/redis.sock"])
def test_redis_url_schemes(url: str) -> None:
    assert load_settings({"CROSSFILL_REDIS_URL": url}).redis_url == url


def test_a_sentinel_url_waits_for_one_replica_by_default() -> None:
    # Given Celery's Sentinel form: every sentinel, ';' between them
    url = "sentinel://:pw@s1:26379/2;sentinel://s2:26380;sentinel://s3"

    settings = load_settings({"CROSSFILL_REDIS_URL": url})

    # Then it is kept as written, the master is mymaster, and a write counts once one replica holds it
    assert settings.redis_url == url
    assert settings.redis == RedisSettings(sentinel_master="mymaster", min_replicas=1,
                                           wait_timeout_ms=defaults.REDIS_WAIT_TIMEOUT_MS)
    assert settings.redis.replication == Replication(1, defaults.REDIS_WAIT_TIMEOUT_MS)


def test_a_single_redis_waits_for_no_replica_unless_told() -> None:
    assert load_settings({"CROSSFILL_REDIS_URL": "redis://cache:6379/0"}).redis.min_replicas == 0
    assert load_settings({}).redis.min_replicas == 0
    told = load_settings({"CROSSFILL_REDIS_URL": "redis://cache:6379/0", "CROSSFILL_REDIS_MIN_REPLICAS": "2",
                          "CROSSFILL_REDIS_WAIT_TIMEOUT_MS": "250", "CROSSFILL_REDIS_SENTINEL_MASTER": "orders-1"})
    assert told.redis == RedisSettings(sentinel_master="orders-1", min_replicas=2, wait_timeout_ms=250)


@pytest.mark.parametrize(("name", "value"), [
    ("CROSSFILL_REDIS_URL", "sentinel://s1:26379;sentinel://s2:port"),
    ("CROSSFILL_REDIS_URL", "sentinel://s1:26379;redis://s2:6379"),
    ("CROSSFILL_REDIS_URL", "sentinel://"),
    ("CROSSFILL_REDIS_URL", "sentinel://s1/zero"),
    ("CROSSFILL_REDIS_MIN_REPLICAS", "-1"),
    ("CROSSFILL_REDIS_MIN_REPLICAS", "one"),
    ("CROSSFILL_REDIS_WAIT_TIMEOUT_MS", "0"),
    ("CROSSFILL_REDIS_WAIT_TIMEOUT_MS", "5000"),  # at or over the socket timeout: the WAIT's reply would time out
    ("CROSSFILL_REDIS_SENTINEL_MASTER", "my master"),
])
def test_bad_sentinel_settings_name_their_variable(name: str, value: str) -> None:
    env = {"CROSSFILL_REDIS_URL": "sentinel://s1:26379", name: value}

    assert config_error(env).name == name


def test_a_sentinel_url_is_redacted_part_by_part() -> None:
    assert redact_url("sentinel://:s3cretpw@s1:26379;sentinel://:s3cretpw@s2:26379") == (
        "sentinel://***@s1:26379;sentinel://***@s2:26379")


def test_settings_are_frozen() -> None:
    settings, receiver = load_all({})

    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.redis_url = "redis://elsewhere"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.retry.horizon = 1  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        receiver.port = 1  # type: ignore[misc]


def test_repr_shows_no_secret() -> None:
    settings, receiver = load_all({"STRIPE_WEBHOOK_SECRET": SECRET_A, "STRIPE_API_KEY": "sk_live_topsecret"})

    assert SECRET_A not in repr(receiver)
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
    ("CROSSFILL_METRICS_PORT", "0"),
    ("CROSSFILL_METRICS_PORT", "metrics"),
    ("CROSSFILL_METRICS_BIND", "public"),
    ("CROSSFILL_METRICS_BIND", "127.0.0.1:9464"),
    ("CROSSFILL_WEB_WORKERS", "0"),
    ("CROSSFILL_WEB_WORKERS", "2.5"),
    ("CROSSFILL_MAX_BODY_BYTES", "1023"),
    ("CROSSFILL_MAX_BODY_BYTES", "256k"),
    ("CROSSFILL_CATALOG", "/nonexistent/catalog.toml"),
    ("STRIPE_API_BASE", "api.stripe.com"),
    ("STRIPE_API_BASE", "ftp://api.stripe.com"),
    ("CROSSFILL_RETRY_HORIZON", "forever"),
    ("CROSSFILL_RETRY_HORIZON", "31d"),
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


@pytest.mark.parametrize("value", ["whsec_", f"{SECRET_A},whsec_", " whsec_ "])
def test_a_secret_with_nothing_after_whsec_is_refused(value: str) -> None:
    error = config_error({"STRIPE_WEBHOOK_SECRET": value})

    assert error.name == "STRIPE_WEBHOOK_SECRET"
    assert "nothing after whsec_" in str(error)
    assert SECRET_A not in str(error)


@pytest.mark.parametrize("value", ["redis://:s3cretpw@cache:port/0", "http://admin:s3cretpw@cache:6379",
                                   "redis://:s3cretpw@"])
def test_a_bad_redis_url_is_refused_without_showing_its_password(value: str) -> None:
    error = config_error({"CROSSFILL_REDIS_URL": value})

    assert error.name == "CROSSFILL_REDIS_URL"
    assert "s3cretpw" not in str(error) and "s3cretpw" not in repr(error.value)


@pytest.mark.parametrize(("url", "shown"), [
    ("redis://:s3cretpw@cache:6379/0", "redis://***@cache:6379/0"),
    ("rediss://app:s3cretpw@cache:6380", "rediss://***@cache:6380"),
    ("unix:///run/redis.sock?db=0&password=s3cretpw", "unix:/run/redis.sock?db=0&password=***"),
    ("redis://cache:6379/0", "redis://cache:6379/0"),
    ("unix:///run/redis.sock", "unix:///run/redis.sock"),
])
def test_redact_url_hides_credentials_only(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_a_kept_secret_is_made_once_and_readable_by_its_owner_only(tmp_path: Path) -> None:
    made = iter(["first", "second"])
    path = tmp_path / "data" / "secret"

    assert kept_secret(path, lambda: next(made)) == "first"
    assert kept_secret(path, lambda: next(made)) == "first"
    assert path.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["secret"]  # no temporary file left behind


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
    return subprocess.run([sys.executable, "-m", "crossfill.cli", command], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.parametrize(("name", "value", "hidden"), [
    ("CROSSFILL_SIGNATURE_TOLERANCE", "-5", None),
    ("CROSSFILL_REDIS_URL", "http://nowhere", None),
    ("CROSSFILL_REDIS_URL", "sentinel://:s3cretpw@s1:26379;redis://s2:26379", "s3cretpw"),
    ("CROSSFILL_REDIS_MIN_REPLICAS", "one", None),
    ("CROSSFILL_REDIS_SENTINEL_MASTER", "my master", None),
    ("STRIPE_WEBHOOK_SECRET", f"{SECRET_A},,{SECRET_B}", SECRET_A),
    ("STRIPE_WEBHOOK_SECRET", f"{SECRET_A},whsec_", SECRET_A),
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
    settings, receiver = load_all({})

    assert (receiver.port, receiver.signature_tolerance, receiver.max_body_bytes) == (
        web_defaults.PORT, web_defaults.SIGNATURE_TOLERANCE_S, web_defaults.MAX_BODY_BYTES)
    assert (str(settings.data_dir), settings.retry.horizon, settings.stripe.api_version) == (
        str(Path(defaults.DATA_DIR)), defaults.RETRY_HORIZON_S, defaults.STRIPE_API_VERSION)


@pytest.mark.parametrize(("catalog", "named"), [
    ('[products.prod_pro]\nhandler = "htpp"\n', "[products.prod_pro].handler"),
    ('[products.prod_pro]\nhandler = "http"\noptions = { url = "fulfil.example" }\n',
     "[products.prod_pro].options.url"),
])
def test_cli_worker_with_a_bad_catalog_handler_exits_2_naming_product_and_option(tmp_path: Path, catalog: str,
                                                                                  named: str) -> None:
    # Given a catalog whose handler or its option is wrong (nothing listens on the Redis port: the
    # check comes before any connection)
    path = tmp_path / "catalog.toml"
    path.write_text(catalog)

    # When the worker starts
    result = run_cli("worker", {"CROSSFILL_CATALOG": str(path), "CROSSFILL_REDIS_URL": "redis://127.0.0.1:9/0"},
                     tmp_path)

    # Then it stops at once with exit code 2 and one line naming the product and the option
    assert result.returncode == 2, result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"crossfill: CROSSFILL_CATALOG {named}=")
