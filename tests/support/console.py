"""A live console (``crossfill console``: gunicorn, its own processes) on a real redis-server, and a
browser-like client that signs in through its form."""
from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests

from crossfill.embedded import free_port
from tests.support.processes import Proc, RedisServer, crossfill, port_open, wait_until


@dataclass
class LiveConsole:
    """A running ``crossfill console`` and the Redis it uses."""

    url: str
    proc: Proc
    redis: RedisServer

    def stop(self) -> None:
        self.proc.stop()


def start_console(tmp: Path, tokens: str, extra_env: Mapping[str, str] | None = None, *,
                  redis: RedisServer | None = None) -> LiveConsole:
    """Start ``crossfill console`` with *tokens* (``CROSSFILL_CONSOLE_TOKENS``) on its own redis-server
    (or *redis*); Stripe is unreachable unless *extra_env* points it somewhere."""
    server = redis or RedisServer(tmp / "redis")
    port = free_port()
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("CROSSFILL_", "STRIPE_", "PROMETHEUS_"))}
    env.update({"CROSSFILL_REDIS_URL": server.url, "CROSSFILL_DATA_DIR": str(tmp / "var"),
                "CROSSFILL_CONSOLE_PORT": str(port), "CROSSFILL_CONSOLE_TOKENS": tokens,
                "CROSSFILL_CONSOLE_WORKERS": "1", "STRIPE_API_KEY": "sk_test_console_live",
                "STRIPE_API_BASE": "http://127.0.0.1:9", **(extra_env or {})})
    proc = crossfill("console", ["console"], env, tmp)
    try:
        wait_until(lambda: port_open(port) or not proc.alive(), timeout=30, what="the console to listen")
    except AssertionError:
        proc.stop()
        raise
    assert proc.alive(), proc.output()
    return LiveConsole(url=f"http://127.0.0.1:{port}", proc=proc, redis=server)


@contextmanager
def running_console(tmp: Path, tokens: str, extra_env: Mapping[str, str] | None = None) -> Iterator[LiveConsole]:
    """:func:`start_console` on its own redis-server, both stopped afterwards."""
    console = start_console(tmp, tokens, extra_env)
    try:
        yield console
    finally:
        console.stop()
        console.redis.stop()


def csrf_of(html: str) -> str:
    """The CSRF token of the form in a page."""
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, "no CSRF field in the page"
    return match[1]


def sign_in(url: str, token: str, headers: Mapping[str, str] | None = None) -> requests.Session:
    """A browser session signed in with *token* through the sign-in form."""
    browser = requests.Session()
    browser.headers.update(headers or {})
    form = browser.get(f"{url}/signin", timeout=10)
    answer = browser.post(f"{url}/signin", data={"token": token, "csrf": csrf_of(form.text)},
                          allow_redirects=False, timeout=10)
    assert answer.status_code == 302, answer.text
    return browser
