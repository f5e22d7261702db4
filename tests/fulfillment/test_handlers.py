"""Fulfillment handlers: the http handler against a real local server, the log handler, the registry."""
from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from importlib.metadata import EntryPoint
from typing import Any

import pytest
import requests
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from fulfillment import handlers
from fulfillment.errors import PermanentError, TransientError, UnknownHandler
from fulfillment.handlers import ENTRY_POINT_GROUP, FulfillmentRequest, HandlerRegistry, HttpHandler, log_handler
from fulfillment.orders import UNFULFILLABLE
from fulfillment.records import Order, OrderItem
from fulfillment.signing import compute_signature
from tests.support.fulfillment_fixtures import Reply, ScriptedServer, always, refused_url

HANDLER_SECRET = "whsec_handler_secret_for_tests"
REQUEST = FulfillmentRequest(
    session_id="cs_test_1", line_item_id="li_2",
    item=OrderItem(id="li_2", product="prod_deploy", quantity=1, cross_sell=True, status="in_progress", attempts=3),
    order=Order(session_id="cs_test_1", mode="payment", customer="j***@example.com"),
    attempt=3, signing_secret=HANDLER_SECRET,
)


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


def post(reply: Reply, http: requests.Session, **options: Any) -> tuple[dict[str, Any], ScriptedServer]:
    """Run the http handler against a server that answers *reply*; returns its result and the server."""
    with ScriptedServer(always(reply)) as server:
        result = HttpHandler(http)(REQUEST, {"url": server.url + "/hooks/crossfill", **options})
    return result, server


def error_of(reply: Reply, http: requests.Session, **options: Any) -> Exception:
    with pytest.raises((TransientError, PermanentError)) as caught:
        post(reply, http, **options)
    return caught.value


# --- what is sent ------------------------------------------------------------------------------------------

def test_the_item_and_order_are_posted_as_signed_json_with_an_idempotency_key(http: requests.Session) -> None:
    before = int(time.time())

    _, server = post(Reply(200, {"accepted": True}), http)

    [seen] = server.seen
    assert (seen.method, seen.path) == ("POST", "/hooks/crossfill")
    assert seen.headers["content-type"] == "application/json"
    assert seen.headers["idempotency-key"] == "cs_test_1:li_2"
    assert json.loads(seen.body) == {"idempotency_key": "cs_test_1:li_2", "attempt": 3,
                                     "item": REQUEST.item.to_dict(), "order": REQUEST.order.summary()}
    fields = dict(part.split("=", 1) for part in seen.headers["crossfill-signature"].split(","))
    assert set(fields) == {"t", "v1"}
    assert before <= int(fields["t"]) <= time.time()
    assert fields["v1"] == compute_signature(seen.body, HANDLER_SECRET, int(fields["t"]))


def test_options_secret_overrides_the_default_secret(http: requests.Session) -> None:
    _, server = post(Reply(204), http, secret="whsec_per_product")

    [seen] = server.seen
    fields = dict(part.split("=", 1) for part in seen.headers["crossfill-signature"].split(","))
    assert fields["v1"] == compute_signature(seen.body, "whsec_per_product", int(fields["t"]))
    assert fields["v1"] != compute_signature(seen.body, HANDLER_SECRET, int(fields["t"]))


def standard_secret(seed: bytes) -> str:
    """A secret in the Standard Webhooks form: whsec_ + base64 of its bytes."""
    return "whsec_" + base64.b64encode(seed.ljust(32, b"!")).decode()


def test_calls_verify_with_the_standard_webhooks_library(http: requests.Session) -> None:
    # Given a secret in Standard Webhooks' form, when the http handler calls
    secret = standard_secret(b"the fulfillment system's secret")
    _, server = post(Reply(200), http, secret=secret)

    # then the library verifies the call as it came, and its webhook-id is the idempotency key
    [seen] = server.seen
    assert Webhook(secret).verify(seen.body, seen.headers) == json.loads(seen.body)
    assert seen.headers["webhook-id"] == seen.headers["idempotency-key"] == "cs_test_1:li_2"
    fields = dict(part.split("=", 1) for part in seen.headers["crossfill-signature"].split(","))
    assert seen.headers["webhook-timestamp"] == fields["t"]
    assert fields["v1"] == compute_signature(seen.body, secret, int(fields["t"]))  # beside it, as before


def test_a_secret_of_another_form_signs_with_its_bytes(http: requests.Session) -> None:
    _, server = post(Reply(200), http)

    [seen] = server.seen
    Webhook(HANDLER_SECRET.encode()).verify(seen.body, seen.headers)


def test_every_retry_of_an_item_carries_the_same_webhook_id(http: requests.Session) -> None:
    with ScriptedServer(always(Reply(200))) as server:
        for attempt in (1, 2):
            retry = FulfillmentRequest(REQUEST.session_id, REQUEST.line_item_id, REQUEST.item, REQUEST.order,
                                       attempt=attempt, signing_secret=HANDLER_SECRET)
            HttpHandler(http)(retry, {"url": server.url})
    assert [seen.headers["webhook-id"] for seen in server.seen] == ["cs_test_1:li_2"] * 2


def test_one_accounts_secret_does_not_verify_anothers_calls(http: requests.Session) -> None:
    # Given two merchants' secrets, when an item of the first one's is sent
    first, second = standard_secret(b"merchant one"), standard_secret(b"merchant two")
    with ScriptedServer(always(Reply(200))) as server:
        HttpHandler(http)(FulfillmentRequest("cs_1", "li_1", OrderItem(id="li_1"),
                                             Order(session_id="cs_1", account="acct_1One"), attempt=1,
                                             signing_secret=first), {"url": server.url})
    [seen] = server.seen
    # then only its own secret verifies it: the second merchant, knowing its own, cannot forge it
    Webhook(first).verify(seen.body, seen.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(second).verify(seen.body, seen.headers)


def test_the_signing_secret_is_not_in_the_requests_repr() -> None:
    assert HANDLER_SECRET not in repr(REQUEST)


# --- how answers are typed ---------------------------------------------------------------------------------

@pytest.mark.parametrize("status", [200, 201, 202, 204])
def test_a_2xx_is_done(status: int, http: requests.Session) -> None:
    body = b"" if status == 204 else {"fulfilment_id": "ful_1"}

    result, _ = post(Reply(status, body), http)

    assert result == {"handler": "http", "status": status,
                      "response": None if status == 204 else {"fulfilment_id": "ful_1"}}


def test_a_large_or_non_json_answer_is_not_kept(http: requests.Session) -> None:
    assert post(Reply(200, b"<html>ok</html>"), http)[0]["response"] is None
    assert post(Reply(200, {"blob": "x" * 5000}), http)[0]["response"] is None


@pytest.mark.parametrize("status", [408, 409, 425, 429, 500, 502, 503, 504])
def test_timeouts_conflicts_rate_limits_and_server_errors_are_transient(status: int, http: requests.Session) -> None:
    error = error_of(Reply(status), http)

    assert type(error) is TransientError
    assert error.status == status


def test_a_rate_limit_carries_its_retry_after(http: requests.Session) -> None:
    error = error_of(Reply(429, headers={"Retry-After": "12"}), http)

    assert isinstance(error, TransientError)
    assert error.retry_after == 12.0


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410, 422])
def test_other_client_errors_are_permanent(status: int, http: requests.Session) -> None:
    error = error_of(Reply(status), http)

    assert type(error) is PermanentError
    assert error.status == status


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_a_redirect_is_not_followed_and_not_a_success(status: int, http: requests.Session) -> None:
    with ScriptedServer(always(Reply(status, headers={"Location": "/elsewhere"}))) as server:
        with pytest.raises(PermanentError) as caught:
            HttpHandler(http)(REQUEST, {"url": server.url + "/hooks/crossfill"})

    assert caught.value.status == status
    assert [seen.path for seen in server.seen] == ["/hooks/crossfill"]


def test_a_read_timeout_is_transient(http: requests.Session) -> None:
    error = error_of(Reply(200, delay_s=3.0), http, timeout=0.2)

    assert type(error) is TransientError
    assert isinstance(error.__cause__, requests.Timeout)


def test_a_refused_connection_is_transient(http: requests.Session) -> None:
    with pytest.raises(TransientError) as caught:
        HttpHandler(http)(REQUEST, {"url": refused_url() + "/hook"})

    assert isinstance(caught.value.__cause__, requests.ConnectionError)


# --- bad options -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("url", [None, "", "ftp://fulfil.example/hook", "fulfil.example/hook", 42])
def test_a_missing_or_non_http_url_is_permanent(url: Any, http: requests.Session) -> None:
    with pytest.raises(PermanentError, match="options.url"):
        HttpHandler(http)(REQUEST, {"url": url})


def test_no_signing_secret_is_permanent(http: requests.Session) -> None:
    unsigned = FulfillmentRequest(session_id="cs_1", line_item_id="li_1", item={}, order={}, attempt=1)

    with pytest.raises(PermanentError, match="CROSSFILL_HANDLER_SECRET"):
        HttpHandler(http)(unsigned, {"url": "http://127.0.0.1:9/hook"})


# --- log handler and registry ----------------------------------------------------------------------------------

def test_the_log_handler_records_the_item_as_delivered(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("INFO", logger="fulfillment.handlers"):
        result = log_handler(REQUEST, {})

    assert result == {"handler": "log", "delivered": True, "idempotency_key": "cs_test_1:li_2"}
    assert "cs_test_1:li_2" in caplog.text and "prod_deploy" in caplog.text


def test_the_registry_has_the_built_ins() -> None:
    registry = HandlerRegistry()

    assert registry.get("log") is log_handler
    assert isinstance(registry.get("http"), HttpHandler)


def test_the_unfulfillable_handler_fails_the_item_with_its_recorded_problem() -> None:
    request = FulfillmentRequest(session_id="cs_test_1", line_item_id="li_9", attempt=1,
                                 order=Order(session_id="cs_test_1"),
                                 item=OrderItem(id="li_9", handler=UNFULFILLABLE, problem="the line item has no price"))

    with pytest.raises(PermanentError, match="the line item has no price"):
        HandlerRegistry().get(UNFULFILLABLE)(request, {})


def test_an_unknown_handler_is_permanent_and_says_how_to_register_one() -> None:
    with pytest.raises(UnknownHandler) as caught:
        HandlerRegistry().get("crm")

    assert isinstance(caught.value, PermanentError)
    assert "'crm'" in str(caught.value) and "http, log" in str(caught.value)
    assert ENTRY_POINT_GROUP in str(caught.value)


def test_extra_handlers_are_registered_and_override_built_ins() -> None:
    def custom(request: FulfillmentRequest, options: Any) -> dict[str, Any]:
        return {"custom": True}

    registry = HandlerRegistry(extra={"crm": custom, "log": custom})

    assert registry.get("crm") is custom
    assert registry.get("log") is custom


def installed(*entries: EntryPoint) -> Any:
    """Stand-in for importlib.metadata.entry_points over these installed entry points."""
    def entry_points(*, group: str) -> list[EntryPoint]:
        return [entry for entry in entries if entry.group == group]
    return entry_points


def test_entry_point_handlers_are_loaded_on_first_use(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a plugin that registers "echo", and a broken one that cannot be imported
    monkeypatch.setattr(handlers, "entry_points", installed(
        EntryPoint(name="echo", value="tests.support.fulfillment_fixtures:echo_handler", group=ENTRY_POINT_GROUP),
        EntryPoint(name="broken", value="no_such_module_anywhere:handler", group=ENTRY_POINT_GROUP),
    ))

    # When the registry is built, nothing is imported yet (a broken plugin does not stop the worker)
    registry = HandlerRegistry()

    # Then the plugin answers when called, and the broken one fails only when used
    assert registry.get("echo")(REQUEST, {"k": "v"}) == {"handler": "echo", "key": "cs_test_1:li_2",
                                                         "options": {"k": "v"}}
    with pytest.raises(ModuleNotFoundError):
        registry.get("broken")(REQUEST, {})


def test_an_entry_point_cannot_replace_a_built_in(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(handlers, "entry_points", installed(
        EntryPoint(name="log", value="tests.support.fulfillment_fixtures:echo_handler", group=ENTRY_POINT_GROUP),
    ))

    assert HandlerRegistry().get("log") is log_handler


@pytest.mark.parametrize("timeout", ["soon", 0, -1, [5], "nan"])
def test_an_unusable_timeout_option_is_permanent_and_named(timeout: Any, http: requests.Session) -> None:
    with pytest.raises(PermanentError, match="options.timeout"):
        HttpHandler(http)(REQUEST, {"url": "http://127.0.0.1:9/hook", "timeout": timeout})
