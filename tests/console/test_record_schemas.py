"""The order API's schemas, derived from the records, document and answer what they did before."""
from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from flask.testing import FlaskClient

from fulfillment.ledger import Ledger
from tests.support.console import paid_order

#: The OpenAPI components of an order and its items as they were when the schemas listed every field.
BEFORE = Path(__file__).parent.parent / "fixtures" / "console" / "openapi_order_components.json"


def test_the_openapi_document_describes_orders_and_items_as_before(client: FlaskClient) -> None:
    spec = client.get("/api/v1/openapi.json").json

    components = {name: spec["components"]["schemas"][name] for name in ("Item", "OrderSummary", "Order")}
    assert components == json.loads(BEFORE.read_text())


def test_the_order_api_answers_what_crossfill_order_json_prints(client: FlaskClient, ledger: Ledger,
                                                                as_role: Callable[[str], dict[str, str]]) -> None:
    order = paid_order(ledger, "cs_test_1", cross_sell=True, fail=True)
    printed = json.loads(json.dumps(order.to_dict()))  # what echo_json prints, before the retries it adds

    answered = client.get("/api/v1/orders/cs_test_1", headers=as_role("viewer")).json
    listed = client.get("/api/v1/orders", headers=as_role("viewer")).json["data"]

    assert answered == printed
    assert "account" not in answered and "problem" not in answered["items"][0]
    assert listed == [{key: value for key, value in printed.items() if key != "items"}]
