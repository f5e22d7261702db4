"""The console API does what its OpenAPI document says: schemathesis generates requests for every
operation from ``/api/v1/openapi.json`` and sends them to a live ``crossfill console`` (gunicorn, a
real redis-server, the Stripe simulator behind it); no answer is a 5xx, and every answer's status,
content type, headers and body are the document's. Bounded: a few examples per operation."""
from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from crossfill.embedded import free_port
from fulfillment.ledger import Ledger
from tests.support.console import TOKENS, LiveConsole, paid_order, start_console
from tests.support.processes import crossfill, port_open, wait_until

pytestmark = pytest.mark.integration
EXAMPLES = 12  #: generated cases per operation (about 15 operations: well under a minute)
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance]


@pytest.fixture(scope="module")
def live_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveConsole]:
    tmp = tmp_path_factory.mktemp("api-schema")
    sim_port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith(("CROSSFILL_", "STRIPE_"))}
    sim = crossfill("sim", ["sim", "--port", str(sim_port)], env, tmp)
    try:
        wait_until(lambda: port_open(sim_port), timeout=30, what="the simulator")
        console = start_console(tmp, f"op:operator:{TOKENS['operator']}",
                                {"STRIPE_API_BASE": f"http://127.0.0.1:{sim_port}",
                                 "STRIPE_API_KEY": "sk_test_crossfill_schema"})
        # Something to read: an order, so that the order routes answer 200 as well as 404.
        paid_order(Ledger(console.redis.client()), "cs_test_schema", cross_sell=True)
        yield console
        console.stop()
        console.redis.stop()
    finally:
        sim.stop()


def test_the_live_api_answers_as_its_document_says(live_api: LiveConsole) -> None:
    schema = schemathesis.openapi.from_url(f"{live_api.url}/api/v1/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 14
    headers = {"Authorization": f"Bearer {TOKENS['operator']}"}
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck),
                  phases=[Phase.explicit, Phase.generate], derandomize=True, database=None)
        def answers_as_documented(case: Any) -> None:
            case.call_and_validate(base_url=live_api.url, headers=headers, checks=CHECKS, timeout=30)

        answers_as_documented()


def test_the_document_declares_path_parameters_statuses_and_auth(live_api: LiveConsole) -> None:
    import requests

    spec = requests.get(f"{live_api.url}/api/v1/openapi.json", timeout=10).json()
    fulfil = spec["paths"]["/api/v1/orders/{session_id}/fulfill"]["post"]

    assert {(p["in"], p["name"]) for p in fulfil["parameters"]} == {("path", "session_id"), ("query", "account")}
    assert {"200", "202", "400", "401", "403", "404", "429", "503"} <= set(fulfil["responses"])
    assert set(spec["paths"]["/api/v1/reconcile"]["post"]["responses"]) >= {"202"} and \
        "200" not in spec["paths"]["/api/v1/reconcile"]["post"]["responses"]
    assert "409" in spec["paths"]["/api/v1/events/{event_id}/replay"]["post"]["responses"]
    for path, operations in spec["paths"].items():
        for operation in operations.values():
            assert operation["security"] == [{"bearer": []}], path
            assert "Bearer token of a role among" in operation["description"], path
            named = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
            assert named == {part[1:-1] for part in path.split("/") if part.startswith("{")}, path
