"""Console fixtures, chained as Flask's are: ``redis → settings → console settings → app → client``.

The console runs against a real redis-server (replays queue through messaging.dispatch); every
test starts from an empty Redis. ``as_role(role)`` gives the Bearer headers of a configured token,
``browser(role)`` a test client signed in through the real sign-in form.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient

from console.app import create_console_app
from console.settings import ConsoleSettings, load_console_settings
from fulfillment.ledger import Ledger
from fulfillment.records import Order, OrderItem
from fulfillment.settings import Settings, load_settings
from tests.support.console import csrf_of
from tests.support.processes import RedisServer

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


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("console-redis"))
    yield server
    server.stop()


@pytest.fixture
def redis_client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    client = redis_server.client()
    client.flushall()
    yield client
    client.close()


@pytest.fixture
def settings(redis_server: RedisServer, redis_client: redis.Redis, tmp_path: Path) -> Settings:
    catalog = tmp_path / "catalog.toml"
    catalog.write_text(CATALOG)
    return load_settings({"CROSSFILL_REDIS_URL": redis_server.url, "CROSSFILL_DATA_DIR": str(tmp_path / "var"),
                          "CROSSFILL_CATALOG": str(catalog), "STRIPE_API_KEY": "sk_test_console",
                          "STRIPE_API_BASE": "http://127.0.0.1:9"})


@pytest.fixture
def console_settings() -> ConsoleSettings:
    return load_console_settings({"CROSSFILL_CONSOLE_TOKENS": token_entries()})


@pytest.fixture
def app(settings: Settings, console_settings: ConsoleSettings) -> Iterator[Flask]:
    application = create_console_app(settings, console_settings)
    application.config["TESTING"] = True
    yield application
    application.extensions["crossfill_console"].service.runtime.close()


@pytest.fixture
def make_app(settings: Settings) -> Iterator[Callable[..., Flask]]:
    """Build consoles on this test's Redis with their own console environment (closed at teardown)."""
    made: list[Flask] = []

    def build(**env: str) -> Flask:
        made.append(create_console_app(settings, load_console_settings(
            {"CROSSFILL_CONSOLE_TOKENS": token_entries(), **env})))
        return made[-1]

    yield build
    for application in made:
        application.extensions["crossfill_console"].service.runtime.close()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def as_role() -> Callable[[str], dict[str, str]]:
    def headers(role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {TOKENS[role]}"}

    return headers


@pytest.fixture
def browser(app: Flask) -> Callable[[str], FlaskClient]:
    """A client signed in as *role* through the sign-in form."""

    def sign_in(role: str) -> FlaskClient:
        session = app.test_client()
        form = session.get("/signin")
        answer = session.post("/signin", data={"token": TOKENS[role], "csrf": csrf_of(form.text)})
        assert answer.status_code == 302, answer.text
        return session

    return sign_in


@pytest.fixture
def ledger(redis_client: redis.Redis) -> Ledger:
    return Ledger(redis_client)


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
