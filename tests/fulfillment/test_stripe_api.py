"""The Stripe API client against a real local HTTP server: what it sends, and how each failure is typed."""
from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from fulfillment.errors import CrossfillError, InvalidResponse, PermanentError, TransientError
from fulfillment.settings import StripeSettings
from fulfillment.stripe_api import StripeClient
from tests.support.fulfillment_fixtures import (
    API_KEY,
    Reply,
    ScriptedServer,
    Seen,
    always,
    refused_url,
    stripe_line_item,
    stripe_price,
    stripe_product,
    stripe_session,
)

SESSION_PATH = "/v1/checkout/sessions/cs_test_1"
LINE_ITEMS_PATH = SESSION_PATH + "/line_items"
READ_TIMEOUT_S = 0.2


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


def client_for(base: str, http: requests.Session) -> StripeClient:
    settings = StripeSettings(api_key=API_KEY, api_base=base, api_version="2026-10-28.endive",
                              connect_timeout=0.5, read_timeout=READ_TIMEOUT_S)
    return StripeClient(settings, http=http)


def error_of(reply: Reply, http: requests.Session) -> CrossfillError:
    """The error retrieve_session raises when the API answers *reply*."""
    with ScriptedServer(always(reply)) as server:
        with pytest.raises(CrossfillError) as caught:
            client_for(server.url, http).retrieve_session("cs_test_1")
    return caught.value


def stripe_error(message: str, kind: str = "invalid_request_error") -> dict[str, object]:
    return {"error": {"message": message, "type": kind}}


def leaks_key(text: str) -> bool:
    """Whether *text* shows the API key, or enough of its start to recognise it."""
    return API_KEY[:16] in text


def chain(error: BaseException) -> Iterator[BaseException]:
    """The error, then its causes and contexts."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


# --- what is sent -----------------------------------------------------------------------------------

def test_retrieve_session_sends_bearer_key_and_pinned_version(http: requests.Session) -> None:
    with ScriptedServer(always(Reply(200, stripe_session("cs_test_1")))) as server:
        session = client_for(server.url, http).retrieve_session("cs_test_1")

    assert session.id == "cs_test_1"
    [request] = server.seen
    assert (request.method, request.path) == ("GET", SESSION_PATH)
    assert request.headers["authorization"] == f"Bearer {API_KEY}"
    assert request.headers["stripe-version"] == "2026-10-28.endive"


def test_a_client_without_an_api_key_is_refused_with_the_variable_to_set(http: requests.Session) -> None:
    with pytest.raises(PermanentError, match="STRIPE_API_KEY"):
        StripeClient(StripeSettings(api_base="http://127.0.0.1:9"), http=http)


# --- transport failures -------------------------------------------------------------------------------

def test_a_read_timeout_is_transient(http: requests.Session) -> None:
    error = error_of(Reply(200, stripe_session("cs_test_1"), delay_s=READ_TIMEOUT_S * 10), http)

    assert type(error) is TransientError
    assert isinstance(error.__cause__, requests.Timeout)


def test_a_refused_connection_is_transient(http: requests.Session) -> None:
    with pytest.raises(TransientError) as caught:
        client_for(refused_url(), http).retrieve_session("cs_test_1")

    assert isinstance(caught.value.__cause__, requests.ConnectionError)


# --- statuses -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("status", [409, 429, 500, 502, 503, 504])
def test_conflicts_rate_limits_and_server_errors_are_transient(status: int, http: requests.Session) -> None:
    error = error_of(Reply(status, stripe_error("try again")), http)

    assert type(error) is TransientError
    assert error.status == status
    assert f"answered {status}" in str(error) and "try again" in str(error)


def test_a_rate_limit_carries_its_retry_after(http: requests.Session) -> None:
    error = error_of(Reply(429, stripe_error("Too many requests", "rate_limit_error"), {"Retry-After": "7"}), http)

    assert isinstance(error, TransientError)
    assert error.retry_after == 7.0


def test_a_retry_after_that_is_a_date_is_ignored(http: requests.Session) -> None:
    error = error_of(Reply(503, b"", {"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}), http)

    assert isinstance(error, TransientError)
    assert error.retry_after is None


@pytest.mark.parametrize("status", [400, 401, 403, 404])
def test_other_client_errors_are_permanent(status: int, http: requests.Session) -> None:
    error = error_of(Reply(status, stripe_error("No such checkout.session: 'cs_test_1'")), http)

    assert type(error) is PermanentError
    assert error.status == status
    assert "No such checkout.session" in str(error)


def test_stripe_should_retry_true_makes_a_400_transient(http: requests.Session) -> None:
    reply = Reply(400, stripe_error("lock timeout"), {"Stripe-Should-Retry": "true", "Retry-After": "2"})

    error = error_of(reply, http)

    assert type(error) is TransientError
    assert (error.status, error.retry_after) == (400, 2.0)


def test_stripe_should_retry_false_makes_a_503_permanent(http: requests.Session) -> None:
    error = error_of(Reply(503, stripe_error("do not retry"), {"Stripe-Should-Retry": "false"}), http)

    assert type(error) is PermanentError
    assert error.status == 503


def test_an_error_body_that_is_not_json_still_types_the_error(http: requests.Session) -> None:
    error = error_of(Reply(502, b"<html>Bad Gateway</html>"), http)

    assert type(error) is TransientError
    assert str(error) == f"GET {SESSION_PATH} answered 502"


# --- malformed answers ---------------------------------------------------------------------------------

def test_a_session_missing_required_fields_is_an_invalid_response(http: requests.Session) -> None:
    error = error_of(Reply(200, {"id": "cs_test_1", "object": "checkout.session"}), http)

    assert type(error) is InvalidResponse
    assert isinstance(error, PermanentError)
    assert "payment_status" in str(error) and "mode" in str(error)


def test_a_line_item_page_of_the_wrong_shape_is_an_invalid_response(http: requests.Session) -> None:
    with ScriptedServer(always(Reply(200, {"object": "list", "data": [{"id": "li_1"}]}))) as server:
        with pytest.raises(InvalidResponse, match="line item list"):
            list(client_for(server.url, http).iter_line_items("cs_test_1"))


@pytest.mark.parametrize("account_id", ["acct_1\r\nStripe-Version: 1", "acct_", "cus_1", 42])
def test_a_connected_account_id_not_shaped_like_stripes_is_an_invalid_response(
        account_id: object, http: requests.Session) -> None:
    # Listed ids are sent back in a Stripe-Account header: a newline must not get that far.
    page = {"object": "list", "data": [{"id": account_id, "object": "account"}], "has_more": False}
    with ScriptedServer(always(Reply(200, page))) as server:
        with pytest.raises(InvalidResponse, match="acct_"):
            list(client_for(server.url, http).list_connected_accounts())


def test_a_2xx_body_that_is_not_json_is_transient(http: requests.Session) -> None:
    # A proxy's HTML page in front of the API is not Stripe's answer; the client retries it.
    error = error_of(Reply(200, b"<html>maintenance</html>"), http)

    assert type(error) is TransientError
    assert error.status == 200


# --- the API key stays secret ----------------------------------------------------------------------------

@pytest.mark.parametrize("reply", [
    Reply(401, stripe_error(f"Invalid API Key provided: {API_KEY}"), {"Stripe-Should-Retry": "false"}),
    Reply(500, stripe_error(f"internal error for Bearer {API_KEY}")),
    Reply(400, stripe_error("x" * 280 + API_KEY)),
    Reply(200, b"not json"),
    Reply(200, {"object": "checkout.session"}),
    Reply(200, b"", delay_s=READ_TIMEOUT_S * 10),
], ids=["401-echoing-key", "500-echoing-key", "key-across-the-cut", "not-json", "malformed", "timeout"])
def test_the_api_key_never_appears_in_an_error_or_its_chain(reply: Reply, http: requests.Session) -> None:
    error = error_of(reply, http)

    for link in chain(error):
        assert not leaks_key(str(link)) and not leaks_key(repr(link))


def test_the_api_key_is_not_in_the_error_of_a_refused_connection(http: requests.Session) -> None:
    client = client_for(refused_url(), http)

    with pytest.raises(TransientError) as caught:
        client.retrieve_session("cs_test_1")

    assert all(not leaks_key(str(link)) and not leaks_key(repr(link)) for link in chain(caught.value))
    assert not leaks_key(repr(client))


# --- line items, paginated ------------------------------------------------------------------------------

def paged_line_items(total: int) -> tuple[list[dict[str, object]], ScriptedServer]:
    """A server listing *total* line items the way Stripe pages them (limit, starting_after)."""
    catalog = [stripe_line_item(f"li_{n:04d}", stripe_price(f"price_{n}", stripe_product(f"prod_{n}")))
               for n in range(total)]

    def page(request: Seen) -> Reply:
        limit = int(request.query["limit"][0])
        start = 0
        if "starting_after" in request.query:
            start = [item["id"] for item in catalog].index(request.query["starting_after"][0]) + 1
        data = catalog[start:start + limit]
        return Reply(200, {"object": "list", "data": data, "has_more": start + limit < total,
                           "url": LINE_ITEMS_PATH})

    return catalog, ScriptedServer(page)


def test_iter_line_items_reads_every_page_with_products_expanded(http: requests.Session) -> None:
    # Given a session with 250 line items, which Stripe lists 100 at a time
    catalog, server = paged_line_items(250)

    # When the client iterates them
    with server:
        items = list(client_for(server.url, http).iter_line_items("cs_test_1"))

    # Then it made 3 requests, each after the last id of the page before, and stopped at has_more false
    assert [item.id for item in items] == [item["id"] for item in catalog]
    assert [request.query.get("starting_after") for request in server.seen] == [None, ["li_0099"], ["li_0199"]]
    for request in server.seen:
        assert request.path == LINE_ITEMS_PATH
        assert request.query["limit"] == ["100"]
        assert request.query["expand[]"] == ["data.price.product"]
        assert request.headers["authorization"] == f"Bearer {API_KEY}"
    assert items[-1].price.product == "prod_249"


def test_iter_line_items_stops_on_an_empty_page_even_if_has_more(http: requests.Session) -> None:
    with ScriptedServer(always(Reply(200, {"object": "list", "data": [], "has_more": True}))) as server:
        items = list(client_for(server.url, http).iter_line_items("cs_test_1"))

    assert items == []
    assert len(server.seen) == 1


def test_an_error_on_a_later_page_is_raised_by_the_iterator(http: requests.Session) -> None:
    first = {"object": "list", "data": [stripe_line_item("li_1", stripe_price("price_1", "prod_1"))],
             "has_more": True}

    def answer(request: Seen) -> Reply:
        return Reply(200, first) if "starting_after" not in request.query else Reply(503, stripe_error("busy"))

    with ScriptedServer(answer) as server:
        iterator = client_for(server.url, http).iter_line_items("cs_test_1")
        assert next(iterator).id == "li_1"
        with pytest.raises(TransientError):
            next(iterator)
