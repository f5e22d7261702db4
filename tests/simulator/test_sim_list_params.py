"""Every filter stripe-node 23.1.0's ``*ListParams`` types name for a list the simulator serves is
known to the simulator: a merchant's typed call is never refused as an unknown parameter.

Read from the package's own type definitions (skipped where node/npm or the package are missing).
The Checkout Sessions list is left out here (its filters are another change's).
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import requests

from simulator import SimServer
from tests.support.node import stripe_node
from tests.support.simulator import API_KEY

#: (types file under cjs/resources, interface, the simulator's path)
LISTS = [
    ("Products.d.ts", "ProductListParams", "/v1/products"),
    ("Prices.d.ts", "PriceListParams", "/v1/prices"),
    ("Events.d.ts", "EventListParams", "/v1/events"),
    ("WebhookEndpoints.d.ts", "WebhookEndpointListParams", "/v1/webhook_endpoints"),
    ("Accounts.d.ts", "AccountListParams", "/v1/accounts"),
    ("Checkout/Sessions.d.ts", "SessionListLineItemsParams", "/v1/checkout/sessions/{session}/line_items"),
    ("V2/Core/Events.d.ts", "EventListParams", "/v2/core/events"),
    ("V2/Core/EventDestinations.d.ts", "EventDestinationListParams", "/v2/core/event_destinations"),
]
PAGINATION = ("limit", "starting_after", "ending_before")  #: PaginationParams (v1 lists)


def list_params(types: Path, interface: str) -> list[str]:
    """The top-level properties of *interface* in a stripe-node type definition file."""
    text = types.read_text()
    opening = re.search(rf"^(\s*)(?:export )?interface {interface}\b(.*)\{{$", text, re.MULTILINE)
    assert opening, f"{interface} not in {types}"
    indent = opening.group(1)
    body = text[opening.end():text.index(f"\n{indent}}}", opening.end())]
    names = re.findall(rf"^{indent}    ([a-z_]+)\??:", body, re.MULTILINE)
    if "PaginationParams" in opening.group(2):
        names += PAGINATION
    return names


@pytest.fixture(scope="module")
def resources() -> Path:
    return stripe_node() / "node_modules" / "stripe" / "cjs" / "resources"


def test_every_documented_list_filter_is_known(resources: Path) -> None:
    refused = []
    with SimServer() as server:
        headers = {"Authorization": f"Bearer {API_KEY}"}
        requests.post(f"{server.url}/v1/products", data={"id": "prod_p", "name": "P"}, headers=headers, timeout=5)
        price = requests.post(f"{server.url}/v1/prices", data={"product": "prod_p", "currency": "usd",
                                                               "unit_amount": 100}, headers=headers, timeout=5)
        session = requests.post(f"{server.url}/v1/checkout/sessions", headers=headers, timeout=5, data={
            "mode": "payment", "line_items[0][price]": price.json()["id"], "line_items[0][quantity]": 1}).json()
        for file, interface, path in LISTS:
            names = list_params(resources / file, interface)
            assert names, interface
            for name in names:
                url = server.url + path.format(session=session["id"])
                answer = requests.get(url, params={f"{name}[0]" if name in ("types", "ids", "lookup_keys",
                                                                              "include", "expand") else name: "x"},
                                      headers=headers, timeout=5)
                message = answer.json().get("error", {}).get("message", "") if answer.status_code >= 400 else ""
                if "unknown parameter" in message:
                    refused.append(f"{path} {name}: {message}")
    assert refused == []
