"""What every command shares: settings loaded at the edge (bad config → exit 2), logging, JSON output."""
from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from crossfill.datadir import keep_private
from crossfill.errors import SupervisorError
from fulfillment.errors import ConfigError
from fulfillment.settings import Settings, load_settings

if TYPE_CHECKING:
    from ops.runtime import Runtime
    from webhooks.settings import ReceiverSettings


def fail_config(error: ConfigError) -> NoReturn:
    """Print the one line naming the bad setting and exit with code 2."""
    click.echo(f"crossfill: {error}", err=True)
    sys.exit(2)


def settings_or_exit() -> Settings:
    """The settings from the environment; a bad value exits 2 before anything starts."""
    try:
        return load_settings()
    except ConfigError as error:
        fail_config(error)


def receiver_or_exit() -> ReceiverSettings:
    """The receiver's own settings from the environment; a bad value exits 2 before anything starts."""
    from webhooks.settings import load_receiver_settings  # loads the webhooks package: only for web and run

    try:
        return load_receiver_settings()
    except ConfigError as error:
        fail_config(error)


def setup_logging(level: str = "INFO") -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def echo_json(value: Any) -> None:
    """Print *value* as indented JSON with sorted keys (what every ``--json`` prints)."""
    click.echo(json.dumps(value, indent=2, sort_keys=True, default=str))


def start_embedded(data_dir: Path) -> tuple[str, Any]:
    """The data dir's embedded Redis (started when not running): its URL, and its process when started here."""
    from crossfill.embedded import start_embedded as start

    try:
        return start(data_dir)
    except SupervisorError as error:
        click.echo(f"crossfill: {error}", err=True)
        sys.exit(1)


def with_redis(settings: Settings) -> tuple[Settings, Any]:
    """*settings* with their Redis resolved: the configured one, else the embedded one (and its process)."""
    if settings.redis_url is not None:
        if settings.data_dir.exists():
            keep_private(settings.data_dir)
        return settings, None
    url, proc = start_embedded(settings.data_dir)  # which keeps its data dir private too
    return settings.with_redis(url), proc


def ops_settings() -> Settings:
    """Settings for ops commands: the configured Redis, else the running embedded one (never started)."""
    from crossfill.embedded import recorded_url

    settings = settings_or_exit()
    if settings.redis_url is None:
        url = recorded_url(settings.data_dir)  # its port and password, kept in the data dir
        if url is None:
            fail_config(ConfigError("CROSSFILL_REDIS_URL", None, "set it, or start `crossfill run` first "
                                    f"(no embedded Redis in {settings.data_dir})"))
        settings = settings.with_redis(url)
    return settings


def ops_runtime() -> Runtime:
    """The stores and clients ops commands read through (:func:`ops_settings`); no Celery app."""
    from ops.runtime import Runtime

    return Runtime(ops_settings())
