"""The JSON API, route by route: authentication, roles, 400/401/403/404, pagination, replays, audit."""
from __future__ import annotations

import json
from collections.abc import Callable

import pytest
import redis
from flask.testing import FlaskClient

from console.audit import STREAM
from fulfillment.deadletters import DeadLetters
from fulfillment.inbox import Inbox
from fulfillment.ledger import Ledger
from fulfillment.liveness import RECONCILE_LAST_SUCCESS, beat
from messaging.contract import FULFILLMENT_QUEUE, dead_letter_id
from tests.support.console import TOKENS, paid_order

Headers = Callable[[str], dict[str, str]]

READ_ROUTES = ["/api/v1/status", "/api/v1/orders", "/api/v1/dead-letters", "/api/v1/report/cross-sells",
               "/api/v1/audit"]


@pytest.mark.parametrize("path", [*READ_ROUTES, "/api/v1/orders/cs_test_x"])
def test_no_token_is_401_json_with_a_bearer_challenge(client: FlaskClient, path: str) -> None:
    answer = client.get(path)

    assert answer.status_code == 401
    assert answer.json["error"]["type"] == "unauthorized"
    assert answer.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize("header", ["Bearer nope-not-a-token-at-all-0123456789abcdef", "Basic dXNlcjpwYXNz",
                                    "Bearer", f"Token {TOKENS['operator']}", f"Bearer {TOKENS['operator']}x",
                                    f"Bearer {TOKENS['operator'][:-1]}"])
def test_a_wrong_or_malformed_token_is_401(client: FlaskClient, header: str) -> None:
    answer = client.get("/api/v1/status", headers={"Authorization": header})

    assert answer.status_code == 401
    assert TOKENS["operator"] not in answer.text


@pytest.mark.parametrize("role", ["viewer", "operator"])
@pytest.mark.parametrize("path", READ_ROUTES)
def test_readers_read(client: FlaskClient, as_role: Headers, role: str, path: str) -> None:
    assert client.get(path, headers=as_role(role)).status_code == 200


@pytest.mark.parametrize("path", READ_ROUTES)
def test_merchants_only_use_the_order_api(client: FlaskClient, as_role: Headers, path: str) -> None:
    answer = client.get(path, headers=as_role("merchant"))

    assert answer.status_code == 403
    assert answer.json["error"]["type"] == "forbidden"


@pytest.mark.parametrize("path", ["/api/v1/dead-letters/fulfill:cs_1:li_1/replay", "/api/v1/dead-letters/replay-all",
                                  "/api/v1/events/evt_1/replay", "/api/v1/reconcile"])
@pytest.mark.parametrize("role", ["viewer", "merchant"])
def test_only_operators_replay_and_reconcile(client: FlaskClient, as_role: Headers, path: str, role: str,
                                             redis_client: redis.Redis) -> None:
    answer = client.post(path, headers=as_role(role))

    assert answer.status_code == 403
    [(_, entry)] = redis_client.xrange(STREAM)  # the refusal is audited; nothing was done
    assert (entry["who"], entry["action"], entry["result"]) == (f"{role}-person", path, f"refused: role {role}")
    assert redis_client.llen("events") == 0 and redis_client.llen(FULFILLMENT_QUEUE) == 0


def test_viewers_may_not_fulfil(client: FlaskClient, as_role: Headers) -> None:
    assert client.post("/api/v1/orders/cs_test_1/fulfill", headers=as_role("viewer")).status_code == 403


def test_status_counts_queues_workers_orders_and_the_last_reconcile(client: FlaskClient, as_role: Headers,
                                                                    ledger: Ledger, redis_client: redis.Redis) -> None:
    paid_order(ledger, "cs_test_a")
    paid_order(ledger, "cs_test_b", fulfil=False)
    redis_client.lpush(FULFILLMENT_QUEUE, "m1", "m2")
    beat(redis_client, "celery@host-1")
    beat(redis_client, "celery@gone", now=1.0)
    redis_client.set(RECONCILE_LAST_SUCCESS, "1764489600")

    body = client.get("/api/v1/status", headers=as_role("viewer")).json

    assert body["queues"] == {"events": 0, "fulfillment": 2}
    assert body["workers"] == ["celery@host-1"]
    assert body["orders"]["fulfilled"] == 1 and body["orders"]["fulfilling"] == 1
    assert body["reconcile_last_success"] == 1764489600.0
    assert body["dead_letters"] == 0


def test_one_order_has_the_cli_shape(client: FlaskClient, as_role: Headers, ledger: Ledger) -> None:
    paid_order(ledger, "cs_test_one", cross_sell=True)

    for role in ("merchant", "viewer", "operator"):
        body = client.get("/api/v1/orders/cs_test_one", headers=as_role(role)).json
        assert body["status"] == "fulfilled"
        assert [(i["id"], i["cross_sell"], i["status"]) for i in body["items"]] == [
            ("li_1", False, "done"), ("li_2", True, "done")]


def test_an_unknown_order_is_404_and_a_malformed_id_400(client: FlaskClient, as_role: Headers) -> None:
    missing = client.get("/api/v1/orders/cs_test_nothing", headers=as_role("merchant"))
    malformed = client.get("/api/v1/orders/pi_123", headers=as_role("merchant"))

    assert missing.status_code == 404 and missing.json["error"]["type"] == "not_found"
    assert malformed.status_code == 400 and "session_id" in malformed.json["error"]["fields"]


def test_orders_are_paged_newest_first_without_gaps_or_repeats(client: FlaskClient, as_role: Headers,
                                                               ledger: Ledger) -> None:
    made = [f"cs_test_{n:02d}" for n in range(23)]
    for session_id in made:
        paid_order(ledger, session_id, cross_sell=int(session_id[-2:]) % 3 == 0)

    seen, cursor, pages = [], None, 0
    while True:
        query = {"limit": 5, **({"cursor": cursor} if cursor else {})}
        body = client.get("/api/v1/orders", query_string=query, headers=as_role("viewer")).json
        seen += [order["session_id"] for order in body["data"]]
        cursor, pages = body["next_cursor"], pages + 1
        if cursor is None:
            break

    assert sorted(seen) == made and len(seen) == len(set(seen))
    assert pages == 5
    created = [ledger.order(sid)["created_at"] for sid in seen]  # type: ignore[index]
    assert created == sorted(created, reverse=True)


def test_orders_filter_by_status_cross_sell_product_and_time(client: FlaskClient, as_role: Headers,
                                                             ledger: Ledger) -> None:
    paid_order(ledger, "cs_test_took", cross_sell=True)
    paid_order(ledger, "cs_test_plain")
    paid_order(ledger, "cs_test_open", fulfil=False)
    paid_order(ledger, "cs_test_broken", fail=True)

    def ids(**query: object) -> list[str]:
        answer = client.get("/api/v1/orders", query_string=query, headers=as_role("viewer"))
        assert answer.status_code == 200, answer.json
        return sorted(order["session_id"] for order in answer.json["data"])

    assert ids(status="fulfilling") == ["cs_test_open"]
    assert ids(status="partially_failed") == ["cs_test_broken"]
    assert ids(cross_sell="true") == ["cs_test_took"]
    assert ids(cross_sell="false", status="fulfilled") == ["cs_test_plain"]
    assert ids(product="prod_deploy") == ["cs_test_took"]
    assert ids(since="1h") == ["cs_test_broken", "cs_test_open", "cs_test_plain", "cs_test_took"]
    assert ids(until="2000-01-01") == []
    assert ids(account="acct_other") == []


@pytest.mark.parametrize("query", [{"status": "shipped"}, {"limit": 0}, {"limit": 101}, {"since": "last tuesday"},
                                   {"cross_sell": "maybe"}, {"cursor": "not-a-cursor"}])
def test_bad_list_parameters_are_400_naming_the_parameter(client: FlaskClient, as_role: Headers,
                                                          query: dict[str, object]) -> None:
    answer = client.get("/api/v1/orders", query_string=query, headers=as_role("viewer"))

    assert answer.status_code == 400
    assert set(answer.json["error"]["fields"]) == set(query)


@pytest.mark.parametrize("path", ["/api/v1/orders", "/api/v1/report/cross-sells"])
@pytest.mark.parametrize("since", ["nan", "1e999", "1e20", "-1e20", "9999-12-31T23:59:59-14:00"])
def test_a_time_no_day_can_show_is_400_not_500(client: FlaskClient, as_role: Headers, path: str,
                                                since: str) -> None:
    # A number parsed as a time used to reach Redis (nan: a 503) or a date (out of range: a 500).
    answer = client.get(path, query_string={"since": since}, headers=as_role("viewer"))

    assert answer.status_code == 400
    assert set(answer.json["error"]["fields"]) == {"since"}


def test_dead_letters_list_show_and_404(client: FlaskClient, as_role: Headers, redis_client: redis.Redis) -> None:
    DeadLetters(redis_client).add(dead_letter_id("fulfill_item", ["cs_test_d", "li_1"]), "fulfill_item", ["cs_test_d", "li_1"], "PermanentError: 400", reason="permanent",
                                  attempts=1)

    listed = client.get("/api/v1/dead-letters", headers=as_role("viewer")).json["data"]
    shown = client.get("/api/v1/dead-letters/fulfill:cs_test_d:li_1", headers=as_role("viewer"))
    missing = client.get("/api/v1/dead-letters/fulfill:cs_test_d:li_9", headers=as_role("viewer"))

    assert [letter["id"] for letter in listed] == ["fulfill:cs_test_d:li_1"]
    assert shown.json["reason"] == "permanent"
    assert missing.status_code == 404


def test_an_operator_replays_a_dead_letter_which_is_queued_again_and_audited(
        client: FlaskClient, as_role: Headers, ledger: Ledger, redis_client: redis.Redis) -> None:
    paid_order(ledger, "cs_test_r", fail=True)
    DeadLetters(redis_client).add(dead_letter_id("fulfill_item", ["cs_test_r", "li_1"]), "fulfill_item", ["cs_test_r", "li_1"], "PermanentError: 400", reason="permanent",
                                  attempts=1)

    answer = client.post("/api/v1/dead-letters/fulfill:cs_test_r:li_1/replay", headers=as_role("operator"))

    assert answer.status_code == 200 and answer.json == {"id": "fulfill:cs_test_r:li_1", "outcome": "replayed"}
    assert DeadLetters(redis_client).count() == 0
    assert ledger.item("cs_test_r", "li_1")["status"] == "pending"  # type: ignore[index]
    [message] = redis_client.lrange(FULFILLMENT_QUEUE, 0, -1)
    assert json.loads(message)["headers"]["id"] == "fulfill:cs_test_r:li_1"
    [(_, entry)] = redis_client.xrange(STREAM)
    assert (entry["who"], entry["role"], entry["action"], entry["target"], entry["result"]) == (
        "operator-person", "operator", "replay", "fulfill:cs_test_r:li_1", "replayed")
    assert client.post("/api/v1/dead-letters/fulfill:cs_test_r:li_1/replay",
                       headers=as_role("operator")).status_code == 404


def test_replay_all_replays_every_letter(client: FlaskClient, as_role: Headers, ledger: Ledger,
                                         redis_client: redis.Redis) -> None:
    for sid in ("cs_test_r1", "cs_test_r2"):
        paid_order(ledger, sid, fail=True)
        DeadLetters(redis_client).add(dead_letter_id("fulfill_item", [sid, "li_1"]), "fulfill_item", [sid, "li_1"], "boom", reason="permanent", attempts=1)

    body = client.post("/api/v1/dead-letters/replay-all", headers=as_role("operator")).json

    assert sorted(entry["id"] for entry in body["data"]) == ["fulfill:cs_test_r1:li_1", "fulfill:cs_test_r2:li_1"]
    assert redis_client.llen(FULFILLMENT_QUEUE) == 2


def test_an_event_shows_without_buyer_details_and_replays(client: FlaskClient, as_role: Headers,
                                                          redis_client: redis.Redis) -> None:
    body = json.dumps({"id": "evt_1", "type": "checkout.session.completed", "account": "acct_9", "livemode": False,
                       "data": {"object": {"id": "cs_test_e", "customer_details": {"email": "jane@example.com"}}}})
    Inbox(redis_client).record("evt_1", "checkout.session.completed", "cs_test_e", body, queue="elsewhere",
                               message="m")
    Inbox(redis_client).move("evt_1", "failed")

    shown = client.get("/api/v1/events/evt_1", headers=as_role("viewer"))
    replayed = client.post("/api/v1/events/evt_1/replay", headers=as_role("operator"))

    assert shown.json["account"] == "acct_9" and shown.json["status"] == "failed"
    assert "jane" not in shown.text
    assert replayed.json["outcome"] == "enqueued"
    assert Inbox(redis_client).get("evt_1").status == "enqueued"  # type: ignore[union-attr]
    assert redis_client.llen("events") == 1
    assert client.get("/api/v1/events/evt_404", headers=as_role("viewer")).status_code == 404
    assert client.post("/api/v1/events/evt_404/replay", headers=as_role("operator")).status_code == 404


def test_reconcile_queues_the_reconcile_task_and_is_audited(client: FlaskClient, as_role: Headers,
                                                             redis_client: redis.Redis) -> None:
    answer = client.post("/api/v1/reconcile", headers=as_role("operator"))

    # The console builds no Celery app: the message is messaging.dispatch's, in Celery's own format.
    assert answer.status_code == 202 and answer.json["outcome"] == "queued"
    [message] = redis_client.lrange("events", 0, -1)
    headers = json.loads(message)["headers"]
    assert headers["task"] == "reconcile" and headers["id"] == answer.json["task_id"]
    [(_, entry)] = redis_client.xrange(STREAM)
    assert entry["action"] == "reconcile"


def test_unknown_routes_and_methods_answer_json(client: FlaskClient, as_role: Headers) -> None:
    missing = client.get("/api/v1/nothing", headers=as_role("viewer"))
    wrong_method = client.delete("/api/v1/status", headers=as_role("viewer"))

    assert missing.status_code == 404 and missing.json["error"]["type"] == "not_found"
    assert wrong_method.status_code == 405 and "GET" in wrong_method.headers["Allow"]


def test_the_openapi_document_lists_every_api_route(client: FlaskClient, app: object) -> None:
    spec = client.get("/api/v1/openapi.json").json
    rules = {rule.rule.replace("<", "{").replace(">", "}")
             for rule in app.url_map.iter_rules() if rule.rule.startswith("/api/v1/")}  # type: ignore[attr-defined]

    assert spec["openapi"].startswith("3.")
    assert set(spec["paths"]) == rules - {"/api/v1/openapi.json"}
    listing = spec["paths"]["/api/v1/orders"]["get"]
    assert {p["name"] for p in listing["parameters"]} >= {"status", "cursor", "limit", "cross_sell", "product"}
    assert listing["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/OrderPage"}
    assert "401" in spec["paths"]["/api/v1/orders/{session_id}/fulfill"]["post"]["responses"]


def test_redis_down_is_503_not_500(client: FlaskClient, as_role: Headers, redis_server: object) -> None:
    redis_server.stop()  # type: ignore[attr-defined]
    try:
        answer = client.get("/api/v1/status", headers=as_role("viewer"))
    finally:
        redis_server.restart()  # type: ignore[attr-defined]

    assert answer.status_code == 503
    assert answer.json["error"]["type"] == "unavailable"


@pytest.mark.parametrize("account", ["acct_", "ACCT_1", "acct_1\n", "acct_1;drop"])
def test_fulfil_refuses_a_connected_account_that_is_not_an_account_id(client: FlaskClient, as_role: Headers,
                                                                       account: str) -> None:
    response = client.post("/api/v1/orders/cs_test_1/fulfill", query_string={"account": account},
                           headers=as_role("merchant"))

    assert response.status_code == 400
    assert response.get_json()["error"]["fields"] == {"account": ["invalid"]}
