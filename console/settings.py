"""The console's settings: read once, at the edge, into a frozen object beside crossfill's own."""
from __future__ import annotations

import ipaddress
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from fulfillment.credentials import kept_secret, redact
from fulfillment.env import env_int
from fulfillment.errors import ConfigError

PORT = 8001  #: port of the console
BIND = "127.0.0.1"  #: address the console listens on; anything else needs tokens
WORKERS = 2  #: gunicorn worker processes of the console
MIN_TOKEN_CHARS = 32  #: shortest token accepted, characters
ROLES = ("viewer", "operator", "merchant")
SECRET_FILE = "console_secret"  #: in the data dir: the key session cookies are signed with
TOKEN_FILE = "console_token"  #: in the data dir: the local operator token `crossfill run` generates
LOCAL_TOKEN_NAME = "local"


@dataclass(frozen=True)
class ConsoleToken:
    """Who may use the console: a name (shown in the audit log), a role, and the secret token."""

    name: str
    role: str
    token: str = field(repr=False)


@dataclass(frozen=True)
class ConsoleSettings:
    """The console's configuration. Build it with :func:`load_console_settings`."""

    port: int = PORT
    bind: str = BIND
    workers: int = WORKERS
    tokens: tuple[ConsoleToken, ...] = field(default=(), repr=False)
    #: Signs the session cookie; from CROSSFILL_CONSOLE_SECRET or the data dir (:func:`resolve_secret`).
    secret_key: str | None = field(default=None, repr=False)

    @property
    def is_loopback(self) -> bool:
        return _is_loopback(self.bind)


def load_console_settings(environ: Mapping[str, str] | None = None) -> ConsoleSettings:
    """Read the console's settings from *environ* (default: the process environment).

    Raises:
        ConfigError: naming the first unusable variable; a token's text is never shown.
    """
    env = os.environ if environ is None else environ
    bind = (env.get("CROSSFILL_CONSOLE_BIND") or BIND).strip()
    tokens = _tokens(env.get("CROSSFILL_CONSOLE_TOKENS"))
    if not tokens and not _is_loopback(bind):
        raise ConfigError("CROSSFILL_CONSOLE_BIND", bind,
                          "set CROSSFILL_CONSOLE_TOKENS before listening beyond this machine, or bind 127.0.0.1")
    secret = env.get("CROSSFILL_CONSOLE_SECRET") or None
    if secret is not None and len(secret) < MIN_TOKEN_CHARS:
        raise ConfigError("CROSSFILL_CONSOLE_SECRET", redact(secret),
                          f"use at least {MIN_TOKEN_CHARS} random characters, or unset it to have one generated")
    return ConsoleSettings(
        port=env_int(env, "CROSSFILL_CONSOLE_PORT", PORT, low=1, high=65535),
        bind=bind,
        workers=env_int(env, "CROSSFILL_CONSOLE_WORKERS", WORKERS, low=1, high=64),
        tokens=tokens,
        secret_key=secret,
    )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _tokens(raw: str | None) -> tuple[ConsoleToken, ...]:
    if raw is None or raw.strip() == "":
        return ()
    entries = [part.strip() for part in raw.split(",")]
    found: list[ConsoleToken] = []
    for position, entry in enumerate(entries, start=1):
        name, _, rest = entry.partition(":")
        role, _, token = rest.partition(":")
        # The value is secret: show each entry's name, role and token length only.
        shown = ",".join(_shape(part) for part in entries)

        def bad(fix: str, position: int = position, shown: str = shown) -> ConfigError:
            return ConfigError("CROSSFILL_CONSOLE_TOKENS", shown, f"entry #{position}: {fix}")

        if not name or not role or not token:
            raise bad("write each entry as name:role:token, entries separated by commas")
        if role not in ROLES:
            raise bad(f"role {role!r} is unknown; use one of {', '.join(ROLES)}")
        if len(token) < MIN_TOKEN_CHARS:
            raise bad(f"the token has {len(token)} characters; use at least {MIN_TOKEN_CHARS} random ones")
        if any(existing.name == name for existing in found):
            raise bad(f"the name {name!r} is used twice; give each token its own name")
        found.append(ConsoleToken(name=name, role=role, token=token))
    return tuple(found)


def _shape(entry: str) -> str:
    parts = entry.split(":", 2)
    if len(parts) < 3:
        return f"<{len(entry)} chars>"
    return f"{parts[0]}:{parts[1]}:…({len(parts[2])} chars)"


def resolve_secret(console: ConsoleSettings, data_dir: Path) -> ConsoleSettings:
    """Use CROSSFILL_CONSOLE_SECRET, else the key kept in the data dir, else a new one kept there."""
    if console.secret_key:
        return console
    return replace(console, secret_key=kept_secret(data_dir / SECRET_FILE, lambda: secrets.token_urlsafe(48)))


def resolve_local_token(console: ConsoleSettings, data_dir: Path) -> tuple[ConsoleSettings, str | None]:
    """With no tokens configured (a loopback console), add a local operator token kept in the data dir.

    Returns the settings and the generated token (to print for the developer), or None when tokens
    are configured.
    """
    if console.tokens:
        return console, None
    token = kept_secret(data_dir / TOKEN_FILE, lambda: secrets.token_urlsafe(32))
    local = ConsoleToken(name=LOCAL_TOKEN_NAME, role="operator", token=token)
    return replace(console, tokens=(local,)), token


