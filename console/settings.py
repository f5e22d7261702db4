"""The console's settings: read once, at the edge, into a frozen object beside crossfill's own."""
from __future__ import annotations

import ipaddress
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from fulfillment.credentials import kept_secret, redact
from fulfillment.env import env_duration, env_int
from fulfillment.errors import ConfigError
from fulfillment.ids import ACCOUNT_ID

PORT = 8001  #: port of the console
BIND = "127.0.0.1"  #: address the console listens on; anything else needs tokens
WORKERS = 2  #: gunicorn worker processes of the console
MIN_TOKEN_CHARS = 32  #: shortest token accepted, characters
MIN_TOKEN_DISTINCT = 10  #: fewest distinct characters a token may have (``aaaa…`` is no secret)
PLATFORM = "platform"  #: in a merchant's accounts: the platform's own orders (made without Stripe-Account)
TRUSTED_PROXIES = 0  #: proxies in front of the console whose X-Forwarded-For/Proto are believed
SESSION_LIFETIME_S = 12 * 3600  #: a browser session ends this long after sign-in, whatever it does, seconds
MERCHANT_RATE = 120  #: order API calls one merchant token may make per minute (each may cost a Stripe read)
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
    #: A merchant's accounts (``acct_…`` ids, and ``platform`` for the platform's own orders); None: every account.
    accounts: frozenset[str] | None = None

    def entry(self) -> str:
        """This token as a ``CROSSFILL_CONSOLE_TOKENS`` entry (it holds the secret: for a child's environment)."""
        held = f":{'+'.join(sorted(self.accounts))}" if self.accounts is not None else ""
        return f"{self.name}:{self.role}:{self.token}{held}"


@dataclass(frozen=True)
class ConsoleSettings:
    """The console's configuration. Build it with :func:`load_console_settings`."""

    port: int = PORT
    bind: str = BIND
    workers: int = WORKERS
    tokens: tuple[ConsoleToken, ...] = field(default=(), repr=False)
    #: Signs the session cookie; from CROSSFILL_CONSOLE_SECRET or the data dir (:func:`resolve_secret`).
    secret_key: str | None = field(default=None, repr=False)
    trusted_proxies: int = TRUSTED_PROXIES
    #: Mark the session cookie Secure on every answer (else: when the request came over https).
    secure_cookie: bool = False
    session_lifetime_s: float = SESSION_LIFETIME_S
    merchant_rate: int = MERCHANT_RATE

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
        trusted_proxies=env_int(env, "CROSSFILL_TRUSTED_PROXIES", TRUSTED_PROXIES, low=0, high=10),
        secure_cookie=_flag(env, "CROSSFILL_CONSOLE_SECURE_COOKIE"),
        session_lifetime_s=env_duration(env, "CROSSFILL_CONSOLE_SESSION_LIFETIME", SESSION_LIFETIME_S,
                                        low=1, high=30 * 86_400),
        merchant_rate=env_int(env, "CROSSFILL_CONSOLE_MERCHANT_RATE", MERCHANT_RATE, low=1, high=100_000),
    )


def _flag(env: Mapping[str, str], name: str) -> bool:
    raw = (env.get(name) or "").strip().lower()
    if raw in ("", "false", "0", "no", "off"):
        return False
    if raw in ("true", "1", "yes", "on"):
        return True
    raise ConfigError(name, raw, "use true or false")


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

        accounts: frozenset[str] | None = None
        if role == "merchant":
            # name:merchant:token:acct_A+acct_B — a merchant sees only the accounts it names.
            token, _, held = token.rpartition(":")
            if not token or not held.strip():
                raise bad("a merchant entry names its accounts: name:merchant:token:acct_A+acct_B "
                          f"({PLATFORM} for the platform's own orders)")
            accounts = frozenset(part.strip() for part in held.split("+"))
            wrong = sorted(a for a in accounts if a != PLATFORM and not ACCOUNT_ID.match(a))
            if wrong:
                raise bad(f"{wrong[0][:40]!r} is not an account; use acct_… ids or {PLATFORM}, joined with +")
        if not name or not role or not token:
            raise bad("write each entry as name:role:token, entries separated by commas")
        if role not in ROLES:
            raise bad(f"role {role!r} is unknown; use one of {', '.join(ROLES)}")
        if len(token) < MIN_TOKEN_CHARS:
            raise bad(f"the token has {len(token)} characters; use at least {MIN_TOKEN_CHARS} random ones")
        if len(set(token)) < MIN_TOKEN_DISTINCT:
            raise bad(f"the token has only {len(set(token))} distinct characters; use at least "
                      f"{MIN_TOKEN_DISTINCT} (e.g. python3 -c 'import secrets; print(secrets.token_urlsafe(32))')")
        if any(existing.name == name for existing in found):
            raise bad(f"the name {name!r} is used twice; give each token its own name")
        found.append(ConsoleToken(name=name, role=role, token=token, accounts=accounts))
    return tuple(found)


def _shape(entry: str) -> str:
    parts = entry.split(":", 2)
    if len(parts) < 3:
        return f"<{len(entry)} chars>"
    if parts[1] == "merchant" and ":" in parts[2]:
        token, _, accounts = parts[2].rpartition(":")
        return f"{parts[0]}:{parts[1]}:…({len(token)} chars):{accounts[:200]}"
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


