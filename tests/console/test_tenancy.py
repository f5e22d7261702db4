"""Merchant tokens are bound to accounts: a merchant reads and fulfils only its own accounts' orders
(another's is 404, as one that does not exist), ``?account=`` cannot widen that, and its calls are
rate-limited; bad Bearer tokens are throttled and audited as bad sign-ins are."""
from __future__ import annotations

from collections.abc import Callable

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient

from console.audit import STREAM
from fulfillment.ledger import Ledger
from messaging.contract import FULFILLMENT_QUEUE
from tests.support.console import TOKENS, paid_order

SHOP_A = "Sa1-shop-a-token-0123456789abcdefghijk"
SHOP_B = "Sb2-shop-b-token-0123456789abcdefghijk"
SHOP_BOTH = "Sc3-both-shops-token-0123456789abcdefgh"
ENTRIES = (f"shop-a:merchant:{SHOP_A}:acct_A,shop-b:merchant:{SHOP_B}:acct_B,"
           f"both:merchant:{SHOP_BOTH}:platform+acct_A,viewer-person:viewer:{TOKENS['viewer']},"
           f"operator-person:operator:{TOKENS['operator']}")


@pytest.fixture
def shop_client(make_app: Callable[..., Flask]) -> FlaskClient:
    return make_app(CROSSFILL_CONSOLE_TOKENS=ENTRIES, CROSSFILL_CONSOLE_MERCHANT_RATE="5").test_client()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def order_of(ledger: Ledger, session_id: str, account: str | None) -> None:
    paid_order(ledger, session_id, account=account)


def test_a_merchant_reads_only_its_accounts_orders_and_another_is_404_like_none(
        shop_client: FlaskClient, ledger: Ledger) -> None:
    order_of(ledger, "cs_test_of_a", "acct_A")
    order_of(ledger, "cs_test_of_b", "acct_B")
    order_of(ledger, "cs_test_of_platform", None)

    def status(token: str, session_id: str) -> int:
        return shop_client.get(f"/api/v1/orders/{session_id}", headers=bearer(token)).status_code

    assert status(SHOP_A, "cs_test_of_a") == 200
    assert status(SHOP_A, "cs_test_of_platform") == 404
    assert status(SHOP_B, "cs_test_of_b") == 200 and status(SHOP_B, "cs_test_of_a") == 404
    assert [status(SHOP_BOTH, sid) for sid in ("cs_test_of_a", "cs_test_of_b", "cs_test_of_platform")] == [
        200, 404, 200]
    for role in ("viewer", "operator"):
        assert status(TOKENS[role], "cs_test_of_b") == 200
    # No oracle: another account's order answers exactly as an order that does not exist.
    theirs = shop_client.get("/api/v1/orders/cs_test_of_b", headers=bearer(SHOP_A)).json
    nothing = shop_client.get("/api/v1/orders/cs_test_of_c", headers=bearer(SHOP_A)).json
    assert theirs["error"]["message"].replace("cs_test_of_b", "X") == nothing["error"]["message"].replace(
        "cs_test_of_c", "X")


def test_a_merchant_cannot_fulfil_another_accounts_session_nor_widen_with_account(
        shop_client: FlaskClient, ledger: Ledger, redis_client: redis.Redis) -> None:
    # Stripe is unreachable in these settings: any read of a session would answer 503, so a 404 shows
    # that nothing was read as an account the merchant does not hold.
    order_of(ledger, "cs_test_of_b", "acct_B")

    recorded = shop_client.post("/api/v1/orders/cs_test_of_b/fulfill", headers=bearer(SHOP_A))
    widened = shop_client.post("/api/v1/orders/cs_test_new/fulfill", query_string={"account": "acct_B"},
                               headers=bearer(SHOP_A))
    recorded_widened = shop_client.post("/api/v1/orders/cs_test_of_b/fulfill", query_string={"account": "acct_B"},
                                        headers=bearer(SHOP_A))
    own = shop_client.post("/api/v1/orders/cs_test_new/fulfill", headers=bearer(SHOP_A))

    assert (recorded.status_code, widened.status_code, recorded_widened.status_code) == (404, 404, 404)
    assert own.status_code == 503  # read as acct_A, its own account: the (unreachable) API was asked
    assert redis_client.llen(FULFILLMENT_QUEUE) == 0


def test_the_merchant_api_is_rate_limited_per_token(shop_client: FlaskClient) -> None:
    answers = [shop_client.get("/api/v1/orders/cs_test_none", headers=bearer(SHOP_A)).status_code
               for _ in range(6)]
    other = shop_client.get("/api/v1/orders/cs_test_none", headers=bearer(SHOP_B))
    limited = shop_client.get("/api/v1/orders/cs_test_none", headers=bearer(SHOP_A))

    assert answers == [404] * 5 + [429]
    assert limited.status_code == 429 and 1 <= int(limited.headers["Retry-After"]) <= 60
    assert limited.json["error"]["type"] == "too_many_attempts"
    assert other.status_code == 404  # another token has its own rate
    assert shop_client.get("/api/v1/status", headers=bearer(TOKENS["viewer"])).status_code == 200


def test_bad_bearer_tokens_are_throttled_and_audited(shop_client: FlaskClient, redis_client: redis.Redis) -> None:
    wrong = bearer("nope-not-a-token-at-all-0123456789abcdef")

    answers = [shop_client.get("/api/v1/status", headers=wrong).status_code for _ in range(4)]
    after = shop_client.get("/api/v1/status", headers=wrong)
    even_a_good_one = shop_client.get("/api/v1/status", headers=bearer(TOKENS["viewer"]))

    assert answers == [401] * 4  # three free failures, then each one imposes a wait
    assert after.status_code == 429 and int(after.headers["Retry-After"]) >= 1
    assert even_a_good_one.status_code == 429  # the client waits, whatever it sends
    entries = [fields for _, fields in redis_client.xrange(STREAM)]
    assert [(e["who"], e["action"], e["result"]) for e in entries] == [("?", "api-auth", "refused: unknown token")] * 4
    assert all("nope" not in e["target"] for e in entries)


