"""Fulfillment handlers: the http handler against a real local server, the log handler, the registry."""
from __future__ import annotations

import json
import time
from collections.abc import Iterator
from importlib.metadata import EntryPoint
from typing import Any

import pytest
import requests

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
