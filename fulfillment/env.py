"""Reading numbers and durations from the environment, every unusable value a :class:`ConfigError`.

The settings sections (``fulfillment/settings.py``, ``webhooks/settings.py``, ``console/settings.py``)
read their variables through these parsers, so a bad value always fails the same way: it names the
variable, shows the value and says what to write instead (the CLI turns it into exit code 2). An unset
or blank variable means the default.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Mapping

from fulfillment.errors import ConfigError

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhd]?)$")
_UNIT_S = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86_400}


def env_int(env: Mapping[str, str], name: str, default: int, *, low: int, high: int) -> int:
    """The whole number in *name*, or *default* when unset or blank."""
    return int(env_number(env, name, default, low=low, high=high, parse=int, kind="a whole number"))


def env_float(env: Mapping[str, str], name: str, default: float, *, low: float, high: float) -> float:
    """The number of seconds in *name*, or *default* when unset or blank."""
    return env_number(env, name, default, low=low, high=high, parse=float, kind="a number of seconds")


def env_duration(env: Mapping[str, str], name: str, default: float, *, low: float, high: float) -> float:
    """The duration in *name* (``90``, ``90s``, ``10m``, ``72h``, ``30d``) as seconds, or *default*."""
    return env_number(env, name, default, low=low, high=high, parse=parse_duration,
                      kind="a duration such as 600, 10m, 72h or 30d")


def env_number(env: Mapping[str, str], name: str, default: float, *, low: float, high: float,
               parse: Callable[[str], float], kind: str) -> float:
    """The value of *name* read with *parse*, between *low* and *high*, or *default* when unset or blank.

    Raises:
        ConfigError: when *parse* refuses the value or it is out of range; the fix names *kind* and the range.
    """
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    fix = f"use {kind} between {plain_number(low)} and {plain_number(high)}"
    try:
        value = parse(raw.strip())
    except ValueError:
        raise ConfigError(name, raw, fix) from None
    if not low <= value <= high:
        raise ConfigError(name, raw, fix)
    return value


def parse_duration(raw: str) -> float:
    """Seconds in ``"90"``, ``"90s"``, ``"10m"``, ``"72h"`` or ``"30d"``; ValueError otherwise."""
    match = _DURATION.match(raw.strip().lower())
    if not match:
        raise ValueError(f"not a duration: {raw!r} (use e.g. 600, 10m, 72h or 30d)")
    return float(match.group(1)) * _UNIT_S[match.group(2)]


def plain_number(number: float) -> str:
    """*number* as an operator writes it in a message: ``3600``, not ``3600.0``; ``0.5`` as is."""
    return str(int(number)) if float(number).is_integer() else f"{number:g}"
