"""The receiver on a real Redis: accepted, deduplicated, enqueued exactly once, and never a 500."""
from __future__ import annotations

import io
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families
from werkzeug.test import TestResponse

from fulfillment.inbox import Inbox
from fulfillment.settings import Settings, load_settings
from tests.support.receiver import SignedPost
from webhooks import defaults
from webhooks.settings import ReceiverSettings

pytestmark = pytest.mark.integration

EventFactory = Callable[..., dict[str, Any]]
Queued = Callable[[], list[dict[str, Any]]]


@pytest.fixture
def inbox(redis_client: redis.Redis) -> Inbox:
    return Inbox(redis_client)


def webhook_counts(client: FlaskClient) -> dict[tuple[str, str], float]:
    """crossfill_webhooks_total from /metrics, by (type, outcome)."""
    response = client.get("/metrics")
    assert response.status_code == 200
    counts: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for sample in family.samples:
            if sample.name == "crossfill_webhooks_total":
                counts[(sample.labels["type"], sample.labels["outcome"])] = sample.value
    return counts


def assert_refused_cleanly(response: TestResponse) -> None:
    """A refusal is a 4xx with a JSON error and nothing that looks like a stack trace."""
    text = response.get_data(as_text=True)
    assert 400 <= response.status_code < 500, (response.status_code, text)
    assert "error" in response.get_json()
    assert "Traceback" not in text and 'File "' not in text and "Error:" not in text.split('"message"')[0]


# --- accepted, duplicate, ignored ----------------------------------------------------------------

def test_accepted_event_is_recorded_and_enqueued_once(signed_post: SignedPost, make_event: EventFactory,
                                                      inbox: Inbox, queued: Queued) -> None:
    # Given a signed checkout.session.completed event
    event = make_event(event_id="evt_accepted1", session_id="cs_test_accepted")
    body = json.dumps(event).encode()

    # When it is delivered
    response = signed_post(body=body)

    # Then it is acknowledged, recorded with its raw body, and one process_event is on the queue
    assert response.status_code == 200
    assert response.get_json() == {"received": True}
    record = inbox.get("evt_accepted1")
    assert record is not None
    assert (record.type, record.session_id, record.status, record.body, record.deliveries) == (
        "checkout.session.completed", "cs_test_accepted", "enqueued", body.decode(), 1)
    assert [(m["task"], m["args"]) for m in queued()] == [("process_event", "['evt_accepted1']")]


def test_redelivery_is_a_duplicate_and_not_enqueued_again(signed_post: SignedPost, make_event: EventFactory,
                                                          inbox: Inbox, queued: Queued) -> None:
    # Given an accepted event
    event = make_event()
    assert signed_post(event=event).status_code == 200

    # When Stripe delivers it again, freshly signed
    again = signed_post(event=event, timestamp=int(time.time()) + 1)

    # Then it is acknowledged as a duplicate and the queue still holds one message
    assert again.status_code == 200
    assert again.get_json() == {"received": True, "duplicate": True}
    assert len(queued()) == 1
    record = inbox.get(event["id"])
    assert record is not None and record.deliveries == 2


@pytest.mark.parametrize("status", ["enqueued", "processing"])
def test_redelivery_of_an_event_stuck_in_flight_enqueues_it_again(signed_post: SignedPost, make_event: EventFactory,
                                                                  inbox: Inbox, queued: Queued, settings: Settings,
                                                                  redis_client: redis.Redis, status: str) -> None:
    # Given an accepted event whose message was lost (a worker killed between BRPOP and its unacked
    # record), left in flight for longer than the stuck threshold
    event = make_event()
    assert signed_post(event=event).status_code == 200
    redis_client.delete("events")
    moved = time.time() - settings.recovery.stuck_after - 1
    redis_client.hset(f"crossfill:event:{event['id']}", mapping={"status": status, f"{status}_at": moved})

    # When Stripe delivers it again
    again = signed_post(event=event, timestamp=int(time.time()) + 1)
    then = signed_post(event=event, timestamp=int(time.time()) + 2)

    # Then it is enqueued again, once: the next delivery is a duplicate
    assert again.status_code == 200 and again.get_json() == {"received": True, "requeued": True}
    assert then.get_json() == {"received": True, "duplicate": True}
    assert [(m["task"], m["args"]) for m in queued()] == [("process_event", f"['{event['id']}']")]
    record = inbox.get(event["id"])
    assert record is not None and (record.status, record.deliveries) == ("enqueued", 3)


@pytest.mark.parametrize("event_type", ["checkout.session.async_payment_succeeded",
                                        "checkout.session.async_payment_failed", "checkout.session.expired"])
def test_every_handled_type_is_enqueued(signed_post: SignedPost, queued: Queued, event_type: str) -> None:
    assert signed_post(type=event_type).get_json() == {"received": True}
    assert len(queued()) == 1


def test_ignored_type_is_acknowledged_recorded_and_not_enqueued(signed_post: SignedPost, make_event: EventFactory,
                                                                inbox: Inbox, queued: Queued) -> None:
    event = make_event(type="customer.created", data={"object": {"id": "cus_1", "object": "customer"}})

    response = signed_post(event=event)

    assert response.status_code == 200
    assert response.get_json() == {"received": True, "ignored": True}
    assert queued() == []
    record = inbox.get(event["id"])
    assert record is not None and (record.status, record.type) == ("ignored", "customer.created")


# --- many deliveries of one event at once ---------------------------------------------------------

def test_50_concurrent_deliveries_of_one_event_enqueue_it_once(app: Flask, signed_post: SignedPost,
                                                               make_event: EventFactory, inbox: Inbox,
                                                               queued: Queued) -> None:
    # Given one event and 50 senders, each with its own client, released at the same instant
    event = make_event()
    senders = 50
    start = threading.Barrier(senders, timeout=30)
    responses: list[TestResponse] = []
    failures: list[BaseException] = []
    lock = threading.Lock()

    def deliver() -> None:
        try:
            own_client = app.test_client()
            start.wait()
            response = signed_post(event=event, via=own_client)
            with lock:
                responses.append(response)
        except BaseException as error:  # surfaced below, in the test's thread
            failures.append(error)

    threads = [threading.Thread(target=deliver) for _ in range(senders)]

    # When they all deliver it
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    # Then exactly one delivery enqueued it and every other one was told it is a duplicate
    assert failures == []
    assert len(responses) == senders
    bodies = [response.get_json() for response in responses]
    assert all(response.status_code == 200 for response in responses), [r.status_code for r in responses]
    assert bodies.count({"received": True}) == 1
    assert bodies.count({"received": True, "duplicate": True}) == senders - 1
    assert len(queued()) == 1
    record = inbox.get(event["id"])
    assert record is not None and record.deliveries == senders and record.status == "enqueued"


# --- the broker refusing the enqueue ---------------------------------------------------------------

@pytest.fixture
def broker_refuses_lpush(redis_client: redis.Redis) -> Iterator[Callable[[bool], None]]:
    """Make the real Redis refuse kombu's LPUSH (an ACL rule), the way a failing broker refuses a publish."""

    def refuse(on: bool) -> None:
        redis_client.execute_command("ACL", "SETUSER", "default", "-lpush" if on else "+lpush")

    yield refuse
    refuse(False)


def test_redelivery_after_a_failed_enqueue_is_enqueued(signed_post: SignedPost, make_event: EventFactory,
                                                       inbox: Inbox, queued: Queued,
                                                       broker_refuses_lpush: Callable[[bool], None],
                                                       client: FlaskClient) -> None:
    # Given a delivery whose enqueue failed: the sender got a 503 and nothing was recorded
    # (recording and enqueueing are one script, which stops at the refused push)
    event = make_event()
    broker_refuses_lpush(True)
    first = signed_post(event=event)
    assert first.status_code == 503
    assert first.headers["Retry-After"] == str(defaults.RETRY_AFTER_S)
    assert inbox.get(event["id"]) is None
    assert queued() == []

    # When the broker is back and Stripe retries, at once
    broker_refuses_lpush(False)
    retry = signed_post(event=event)

    # Then this redelivery is enqueued (not answered as a duplicate), exactly once
    assert retry.status_code == 200
    assert retry.get_json() == {"received": True}
    assert [m["args"] for m in queued()] == [f"[{event['id']!r}]"]
    record = inbox.get(event["id"])
    assert record is not None and record.status == "enqueued" and record.deliveries == 1
    assert webhook_counts(client)[("checkout.session.completed", "unavailable")] == 1


# --- Redis down, then back -------------------------------------------------------------------------

@pytest.fixture
def app_on_own_redis(own_redis: Any, secret: str, tmp_path: Path, make_app: Callable[[Settings], Flask]) -> Flask:
    return make_app(load_settings({"CROSSFILL_REDIS_URL": own_redis.url, "STRIPE_WEBHOOK_SECRET": secret,
                                   "CROSSFILL_DATA_DIR": str(tmp_path / "var")}))


def test_redis_down_is_503_then_200_once_it_is_back(own_redis: Any, app_on_own_redis: Flask,
                                                    signed_post: SignedPost, make_event: EventFactory) -> None:
    client = app_on_own_redis.test_client()
    before, during = make_event(), make_event()
    assert signed_post(event=before, via=client).status_code == 200
    assert client.get("/readyz").status_code == 200

    # Given Redis stops
    own_redis.stop()

    # When an event arrives
    refused = signed_post(event=during, via=client)

    # Then the sender is told to retry later, and the receiver reports itself not ready (but alive)
    assert refused.status_code == 503
    assert refused.headers["Retry-After"] == str(defaults.RETRY_AFTER_S)
    assert refused.get_json()["error"]["type"] == "unavailable"
    not_ready = client.get("/readyz")
    assert not_ready.status_code == 503 and not_ready.headers["Retry-After"]
    assert client.get("/healthz").status_code == 200
    scrape = client.get("/metrics")
    assert scrape.status_code == 200 and "crossfill_state_up 0.0" in scrape.get_data(as_text=True)

    # When Redis is back on the same port and Stripe retries
    own_redis.start()
    retried = signed_post(event=during, via=client)

    # Then the event is accepted; nothing was recorded for the refused delivery, and the event
    # accepted before the outage survived the restart (append-only file)
    assert retried.status_code == 200
    assert retried.get_json() == {"received": True}
    assert client.get("/readyz").status_code == 200
    assert "crossfill_state_up 1.0" in client.get("/metrics").get_data(as_text=True)
    check = own_redis.client()
    try:
        kept = Inbox(check)
        assert [kept.get(e["id"]).status for e in (before, during)] == ["enqueued", "enqueued"]  # type: ignore[union-attr]
        assert kept.get(during["id"]).deliveries == 1  # type: ignore[union-attr]
        assert check.llen("events") == 2
    finally:
        check.close()
    assert webhook_counts(client)[("checkout.session.completed", "unavailable")] == 1


# --- sizes ------------------------------------------------------------------------------------------

def padded_event(make_event: EventFactory, size: int) -> bytes:
    """A valid event serialised to exactly *size* bytes."""
    event = make_event(padding="")
    base = len(json.dumps(event).encode())
    event["padding"] = "x" * (size - base)
    body = json.dumps(event).encode()
    assert len(body) == size
    return body


def test_a_body_of_exactly_the_limit_is_accepted(signed_post: SignedPost, make_event: EventFactory,
                                                 receiver: ReceiverSettings) -> None:
    assert signed_post(body=padded_event(make_event, receiver.max_body_bytes)).status_code == 200


def test_a_body_over_the_limit_is_413(signed_post: SignedPost, make_event: EventFactory, receiver: ReceiverSettings,
                                      redis_client: redis.Redis) -> None:
    response = signed_post(body=padded_event(make_event, receiver.max_body_bytes + 1))

    assert response.status_code == 413
    assert response.get_json()["error"]["type"] == "payload_too_large"
    assert redis_client.dbsize() == 0


def test_a_body_over_the_limit_without_content_length_is_413(client: FlaskClient, make_event: EventFactory,
                                                             sign_header: Callable[..., str], receiver: ReceiverSettings,
                                                             redis_client: redis.Redis) -> None:
    # Given a chunked upload (no Content-Length), as gunicorn hands it to the app
    body = padded_event(make_event, receiver.max_body_bytes * 4)
    stream = io.BytesIO(body)

    # When it is posted
    response = client.post("/webhooks/stripe", input_stream=stream,
                           headers={"Stripe-Signature": sign_header(body), "Transfer-Encoding": "chunked"},
                           environ_overrides={"wsgi.input_terminated": True})

    # Then it is refused after reading just past the limit, not the whole body
    assert response.request.content_length is None
    assert response.status_code == 413
    assert stream.tell() == receiver.max_body_bytes + 1
    assert redis_client.dbsize() == 0


def test_a_chunked_body_within_the_limit_is_accepted(client: FlaskClient, make_event: EventFactory,
                                                     sign_header: Callable[..., str], queued: Queued) -> None:
    body = json.dumps(make_event()).encode()

    response = client.post("/webhooks/stripe", input_stream=io.BytesIO(body),
                           headers={"Stripe-Signature": sign_header(body), "Transfer-Encoding": "chunked"},
                           environ_overrides={"wsgi.input_terminated": True})

    assert response.status_code == 200
    assert len(queued()) == 1


def test_a_content_length_claiming_too_much_is_413_before_reading(client: FlaskClient, receiver: ReceiverSettings,
                                                                  sign_header: Callable[..., str]) -> None:
    response = client.post("/webhooks/stripe", input_stream=io.BytesIO(b"{}"),
                           headers={"Stripe-Signature": sign_header(b"{}")},
                           environ_overrides={"CONTENT_LENGTH": str(receiver.max_body_bytes + 1)})

    assert response.request.content_length == receiver.max_body_bytes + 1
    assert response.status_code == 413


# --- refusals ---------------------------------------------------------------------------------------

def test_get_on_the_webhook_endpoint_is_405(client: FlaskClient) -> None:
    response = client.get("/webhooks/stripe")

    assert response.status_code == 405
    assert "POST" in response.headers["Allow"]
    assert response.get_json()["error"]["type"] == "http"


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE"])
def test_other_methods_are_405(client: FlaskClient, method: str) -> None:
    assert client.open("/webhooks/stripe", method=method, data=b"{}").status_code == 405


def test_a_forged_event_never_gets_in(signed_post: SignedPost, redis_client: redis.Redis) -> None:
    response = signed_post(secrets=("whsec_attacker",))

    assert response.status_code == 400
    error = response.get_json()["error"]
    assert (error["type"], error["check"]) == ("signature_verification", "no_match")
    assert redis_client.dbsize() == 0


def test_a_signed_body_that_is_not_an_event_is_400_with_fields(signed_post: SignedPost,
                                                               redis_client: redis.Redis) -> None:
    response = signed_post(body=json.dumps({"id": "evt_1", "object": "event"}).encode())

    assert response.status_code == 400
    assert set(response.get_json()["error"]["fields"]) == {"type", "created", "livemode", "data"}
    assert redis_client.dbsize() == 0


def garbage_deliveries(make_event: EventFactory) -> list[dict[str, Any]]:
    """Requests a hostile or broken sender might make; each as keyword arguments of signed_post."""
    good = make_event()
    handled_without_session = make_event(data={"object": None})
    return [
        {"header": ""},
        {"header": "garbage"},
        {"header": "t=,v1="},
        {"header": "t=99999999999999999999999999999999,v1=00"},
        {"header": "t=1e9,v1=zz,v0=zz"},
        {"header": "t=\u00e9\u00e8,v1=\u00fc"},
        {"header": ",".join(["v1=" + "a" * 64] * 100)},
        {"header": "t=1700000000,v1=" + "0" * 64},
        {"body": b""},
        {"body": b"\xff\xfe\x00garbage"},
        {"body": b"null"},
        {"body": b"[]"},
        {"body": b"1e999"},
        {"body": b"[" * 50_000 + b"]" * 50_000},
        {"body": b'{"id": ' + b"9" * 5000 + b"}"},
        {"body": json.dumps(handled_without_session).encode()},
        {"body": json.dumps(good | {"created": 1e400}).encode().replace(b"Infinity", b"1e400")},
        {"body": json.dumps(good | {"data": {"object": []}}).encode()},
        {"body": json.dumps(good | {"data": {"object": {"id": ["cs_1"], "object": "checkout.session"}}}).encode()},
        {"body": json.dumps(good | {"id": "evt_" + "\u2603" * 3}).encode()},
        {"body": json.dumps(good | {"id": "evt_1\n"}).encode()},
        {"body": json.dumps(good | {"type": "invoice.\udfff"}).encode()},
        {"body": json.dumps(good | {"type": "Invoice Paid"}).encode()},
        {"body": json.dumps(good | {"metadata": {"\ud800": "x"}}).encode()},
        {"body": json.dumps(good).encode().replace(b'"paid"', b'"\xed\xa0\x80"')},
        {"body": json.dumps(good).encode().replace(b'"paid"', b'"\xc3"')},
        {"body": json.dumps(good).encode().replace(b'"object": "event"', b'"object": "event", "object": "event"')},
        {"body": json.dumps(good).encode().replace(b'"livemode": false', b'"livemode": NaN')},
        {"event": good, "headers": {"Content-Type": "multipart/form-data; boundary=xyz"}, "secrets": ("whsec_no",)},
        {"event": good, "headers": {"Content-Type": "application/x-www-form-urlencoded"}, "secrets": ("whsec_no",)},
    ]


def test_garbage_never_gets_a_500_nor_a_stack_trace(signed_post: SignedPost, make_event: EventFactory,
                                                    client: FlaskClient, redis_client: redis.Redis,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)

    for overrides in garbage_deliveries(make_event):
        response = signed_post(**overrides)
        assert_refused_cleanly(response)
        assert response.status_code == 400, overrides
    for method, path in [("PUT", "/webhooks/stripe"), ("GET", "/nope"), ("POST", "/webhooks/stripe/"),
                         ("POST", "/metrics"), ("DELETE", "/readyz")]:
        assert_refused_cleanly(client.open(path, method=method, data=b"\x00\x01"))

    assert redis_client.dbsize() == 0
    assert [record.getMessage() for record in caplog.records if record.levelno >= logging.ERROR] == []


# --- health and metrics -----------------------------------------------------------------------------

def test_health_and_readiness(client: FlaskClient) -> None:
    assert client.get("/healthz").get_json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.get_json() == {"status": "ready", "redis": "ok"}


def test_metrics_count_every_outcome(signed_post: SignedPost, make_event: EventFactory, client: FlaskClient,
                                     receiver: ReceiverSettings) -> None:
    # Given one delivery of each outcome (two accepted)
    event = make_event()
    signed_post(event=event)
    signed_post(event=event)
    signed_post(type="checkout.session.expired")
    signed_post(type="invoice.paid", data={"object": {"id": "in_1", "object": "invoice"}})
    signed_post(header="t=1,v1=00")
    signed_post(body=b"[]")
    signed_post(body=padded_event(make_event, receiver.max_body_bytes + 1))

    # When /metrics is scraped
    counts = webhook_counts(client)

    # Then crossfill_webhooks_total counts each by type and outcome
    assert counts == {
        ("checkout.session.completed", "accepted"): 1,
        ("checkout.session.completed", "duplicate"): 1,
        ("checkout.session.expired", "accepted"): 1,
        ("other", "ignored"): 1,
        ("other", "bad_signature"): 1,
        ("other", "bad_request"): 1,
        ("other", "too_large"): 1,
    }
    text = client.get("/metrics").get_data(as_text=True)
    assert 'crossfill_webhook_ack_seconds_count{outcome="accepted"} 2.0' in text
    assert 'crossfill_webhook_ack_seconds_bucket{le="+Inf",outcome="too_large"} 1.0' in text


@pytest.mark.parametrize(("event_type", "where"), [
    ("invoice.paid", "type"), ("checkout.session.completed", "metadata"), ("invoice.paid", "object"),
    ("checkout.session.completed", "id"),
])
def test_a_signed_lone_surrogate_is_400_and_metrics_keep_answering(
        signed_post: SignedPost, make_event: EventFactory, client: FlaskClient, redis_client: redis.Redis,
        event_type: str, where: str) -> None:
    # Given a validly signed event holding a JSON lone surrogate escape (once a 500 from Redis's encoder)
    event = make_event(type=event_type)
    if where == "type":
        event["type"] = "invoice.\udfff"
    elif where == "id":
        event["id"] = "evt_\udfff"
    else:
        event["data"]["object"]["metadata" if where == "metadata" else "id"] = {"note": "\udfff"}
    body = json.dumps(event).encode("utf-8")
    assert b"\\udfff" in body

    # When it is delivered
    response = signed_post(body=body)

    # Then it is refused as an invalid payload, nothing is stored, and /metrics answers with bounded labels
    assert response.status_code == 400
    assert response.get_json()["error"]["type"] == "invalid_payload"
    assert "surrogate" in response.get_json()["error"]["message"]
    assert redis_client.dbsize() == 0
    assert webhook_counts(client) == {("other", "bad_request"): 1}


def test_types_are_counted_from_a_bounded_set(signed_post: SignedPost, make_event: EventFactory,
                                              client: FlaskClient) -> None:
    for number in range(30):
        signed_post(type=f"made_up.type_{number}", data={"object": {"id": "x_1"}})
    signed_post(type="checkout.session.expired")

    assert webhook_counts(client) == {("other", "ignored"): 30, ("checkout.session.expired", "accepted"): 1}
