"""What every command shares: settings loaded at the edge (bad config → exit 2), logging, JSON output."""
from __future__ import annotations

import json
import logging
import sys
from typing import Any, NoReturn

import click

from fulfillment.errors import ConfigError
from fulfillment.settings import Settings, load_settings


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


def setup_logging(level: str = "INFO") -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def echo_json(value: Any) -> None:
    """Print *value* as indented JSON with sorted keys (what every ``--json`` prints)."""
    click.echo(json.dumps(value, indent=2, sort_keys=True, default=str))
