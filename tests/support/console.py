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
from fulfillment.ledger import Ledger
from fulfillment.records import Order, OrderItem
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


# --- the console's test tokens, catalog and orders ------------------------------------------------------

TOKENS = {
    "viewer": "v" * 8 + "-viewer-token-0123456789abcdefghij",
    "operator": "o" * 8 + "-operator-token-0123456789abcdefgh",
    "merchant": "m" * 8 + "-merchant-token-0123456789abcdefgh",
}
#: The accounts each role's token holds (a merchant names its own; the others see every account).
ACCOUNTS = {"merchant": "platform"}


def token_entries(tokens: dict[str, str] | None = None) -> str:
    """``CROSSFILL_CONSOLE_TOKENS`` for *tokens* (default: :data:`TOKENS`), one ``<role>-person`` each."""
    return ",".join(f"{role}-person:{role}:{token}" + (f":{ACCOUNTS[role]}" if role in ACCOUNTS else "")
                    for role, token in (TOKENS if tokens is None else tokens).items())
CATALOG = """
[account]
default_tax_behavior = "exclusive"

[products.prod_pro]
name = "Pro"
cross_sell = "prod_deploy"

[products.prod_deploy]
name = "Deployment"

[products.prod_plain]
name = "Plain"
"""


def item(item_id: str, product: str, *, cross_sell: bool = False, amount: int = 5000,
         anomalies: tuple[str, ...] = (), by: str | None = None) -> OrderItem:
    return OrderItem(id=item_id, product=product, product_name=product, quantity=1, currency="usd",
                     amount_total=amount, cross_sell=cross_sell, cross_sold_by=by if cross_sell else None,
                     anomalies=anomalies, handler="log")


def paid_order(ledger: Ledger, session_id: str, *, cross_sell: bool = False, fulfil: bool = True,
               fail: bool = False, account: str | None = None) -> Order:
    """Record an order as the pipeline would (of connected *account*, or the platform's own), and run its
    items to done (or one to failed)."""
    items = [item("li_1", "prod_pro")]
    if cross_sell:
        items.append(item("li_2", "prod_deploy", cross_sell=True, amount=1500, by="prod_pro"))
    summary = Order(session_id=session_id, mode="payment", payment_status="paid", currency="usd",
                    amount_total=sum(entry.amount_total or 0 for entry in items), customer="j***@example.com",
                    item_count=len(items), cross_sell_count=int(cross_sell), account=account)
    ledger.open_order(session_id, summary, items)
    if fulfil:
        for entry in items:
            claim = ledger.claim_item(session_id, entry.id, lease_s=60)
            if fail and entry.id == "li_1":
                ledger.record_failure(session_id, entry.id, claim.token, "PermanentError: 400 from handler")
            else:
                ledger.record_result(session_id, entry.id, claim.token, {"ok": True})
    order = ledger.order(session_id)
    assert order is not None
    return order
