"""pipeline.decide: the payment gate and the order record, over any order of events.

The Stripe side is a small in-memory stand-in that returns schema objects (the real client is
tested against HTTP in test_stripe_api.py, and end to end in the integration tests); the ledger is
the real one, on fakeredis.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from fulfillment.catalog import parse_catalog
from fulfillment.errors import PermanentError
from fulfillment.events import ASYNC_FAILED, ASYNC_SUCCEEDED, COMPLETED, EXPIRED
from fulfillment.handlers import FulfillmentRequest, HandlerRegistry
from fulfillment.ledger import CLAIMED, Ledger
from fulfillment.orders import UNFULFILLABLE
from fulfillment.pipeline import Decision, decide
from fulfillment.schemas import CheckoutSession, LineItem
from tests.support.fulfillment_fixtures import fake_redis, make_item, make_session

SID = "cs_test_1"
CATALOG = parse_catalog({"products": {"prod_pro": {"cross_sell": "prod_deploy", "handler": "http"}}})
ITEMS = [make_item("li_1", "prod_pro"), make_item("li_2", "prod_deploy")]


class Sessions:
    """Checkout Sessions as the API would return them now; the test changes them between events."""

    def __init__(self) -> None:
        #: (account, session id) → session: a connected account's sessions are seen only as that account.
        self.sessions: dict[tuple[str | None, str], CheckoutSession] = {}
        self.items: dict[str, list[LineItem]] = {}
        self.line_item_reads = 0
        self.line_item_accounts: list[str | None] = []

    def put(self, session: CheckoutSession, items: list[LineItem], *, account: str | None = None) -> None:
        self.sessions[(account, session.id)] = session
        self.items[session.id] = items

    def retrieve_session(self, session_id: str, *, account: str | None = None) -> CheckoutSession:
        try:
            return self.sessions[(account, session_id)]
        except KeyError:
            raise PermanentError(f"GET /v1/checkout/sessions/{session_id} answered 404", status=404) from None

    def line_items(self, session: CheckoutSession, *, account: str | None = None) -> Iterator[LineItem]:
        self.line_item_reads += 1
        self.line_item_accounts.append(account)
        yield from self.items[session.id]


@pytest.fixture
def api() -> Sessions:
    return Sessions()


@pytest.fixture
def ledger() -> Ledger:
    return Ledger(fake_redis())


def run(event: str, api: Sessions, ledger: Ledger) -> Decision:
    return decide(event, SID, api, ledger, CATALOG)  # type: ignore[arg-type]


def fulfil(ledger: Ledger, *item_ids: str) -> None:
    """Do what fulfill_item does for each item: claim it, record a result."""
    for item_id in item_ids:
        claim = ledger.claim_item(SID, item_id, lease_s=30)
        assert claim.outcome == CLAIMED
        assert ledger.record_result(SID, item_id, claim.token, {"ok": True})


def order(ledger: Ledger) -> dict[str, Any]:
    found = ledger.order(SID)
    assert found is not None
    return found


@pytest.mark.parametrize("payment_status", ["paid", "no_payment_required"])
@pytest.mark.parametrize("event", [COMPLETED, ASYNC_SUCCEEDED])
def test_a_paid_session_dispatches_every_item(event: str, payment_status: str, api: Sessions,
                                              ledger: Ledger) -> None:
    api.put(make_session(SID, payment_status=payment_status), ITEMS)

    decision = run(event, api, ledger)

    assert decision == Decision("fulfilling", ("li_1", "li_2"))
    recorded = order(ledger)
    assert recorded["status"] == "fulfilling"
    assert [(item["id"], item["cross_sell"], item["handler"]) for item in recorded["items"]] == [
        ("li_1", False, "http"), ("li_2", True, "log")]
    assert (recorded["item_count"], recorded["cross_sell_count"]) == (2, 1)


def test_an_unpaid_session_awaits_payment_and_dispatches_nothing(api: Sessions, ledger: Ledger) -> None:
    api.put(make_session(SID, payment_status="unpaid"), ITEMS)

    decision = run(COMPLETED, api, ledger)

    assert decision == Decision("awaiting_payment")
    assert (order(ledger)["status"], order(ledger)["items"]) == ("awaiting_payment", ())
    assert api.line_item_reads == 0


def test_a_failed_async_payment_marks_the_order_and_dispatches_nothing(api: Sessions, ledger: Ledger) -> None:
    # Given a buyer who paid by bank debit: completed while unpaid
    api.put(make_session(SID, payment_status="unpaid"), ITEMS)
    run(COMPLETED, api, ledger)

    # When the payment fails
    decision = run(ASYNC_FAILED, api, ledger)

    # Then the order is payment_failed, and a late duplicate "completed" does not hide it
    assert decision == Decision("payment_failed")
    assert run(COMPLETED, api, ledger) == Decision("payment_failed")
    assert order(ledger)["status"] == "payment_failed"
    assert ledger.counts()["payment_failed"] == 1 and ledger.counts()["awaiting_payment"] == 0


def test_async_failed_first_is_recorded_too(api: Sessions, ledger: Ledger) -> None:
    api.put(make_session(SID, payment_status="unpaid"), ITEMS)

    assert run(ASYNC_FAILED, api, ledger) == Decision("payment_failed")


def test_an_expired_session_is_recorded(api: Sessions, ledger: Ledger) -> None:
    api.put(replace(make_session(SID, payment_status="unpaid"), status="expired"), ITEMS)

    assert run(EXPIRED, api, ledger) == Decision("expired")
    assert order(ledger)["status"] == "expired"


def test_an_async_payment_that_succeeds_later_is_fulfilled(api: Sessions, ledger: Ledger) -> None:
    # Given an order waiting for a delayed payment
    api.put(make_session(SID, payment_status="unpaid"), ITEMS)
    run(COMPLETED, api, ledger)

    # When the payment succeeds
    api.put(make_session(SID, payment_status="paid"), ITEMS)
    decision = run(ASYNC_SUCCEEDED, api, ledger)

    # Then every item is dispatched
    assert decision == Decision("fulfilling", ("li_1", "li_2"))
    assert ledger.counts()["awaiting_payment"] == 0


def test_out_of_order_events_fulfil_each_item_once(api: Sessions, ledger: Ledger) -> None:
    # Given async_payment_succeeded arrives before completed; the API says paid to both
    api.put(make_session(SID), ITEMS)
    first = run(ASYNC_SUCCEEDED, api, ledger)
    assert first == Decision("fulfilling", ("li_1", "li_2"))

    # When one item is fulfilled before the late "completed" is processed
    fulfil(ledger, "li_1")
    second = run(COMPLETED, api, ledger)

    # Then only the still-open item is dispatched again
    assert second == Decision("fulfilling", ("li_2",))

    # And once every result is recorded, a further duplicate dispatches nothing
    fulfil(ledger, "li_2")
    assert run(COMPLETED, api, ledger) == Decision("fulfilled")


def test_a_late_event_after_fulfillment_changes_nothing(api: Sessions, ledger: Ledger) -> None:
    # Given a fulfilled order
    api.put(make_session(SID), ITEMS)
    run(COMPLETED, api, ledger)
    fulfil(ledger, "li_1", "li_2")
    before = order(ledger)

    # When late and duplicate events arrive
    for event in (COMPLETED, ASYNC_SUCCEEDED, EXPIRED):
        assert run(event, api, ledger) == Decision("fulfilled")

    # Then the order and its items are as they were
    after = order(ledger)
    assert after["status"] == "fulfilled"
    assert [(item["id"], item["status"], item["attempts"], item["result"]) for item in after["items"]] == [
        (item["id"], item["status"], item["attempts"], item["result"]) for item in before["items"]]


def test_an_unknown_session_is_a_permanent_error_and_records_nothing(api: Sessions, ledger: Ledger) -> None:
    with pytest.raises(PermanentError, match="404"):
        run(COMPLETED, api, ledger)

    assert ledger.order(SID) is None


def test_an_unknown_payment_status_is_not_fulfilled_and_is_logged(api: Sessions, ledger: Ledger,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    api.put(make_session(SID, payment_status="partially_paid"), ITEMS)

    with caplog.at_level("WARNING", logger="fulfillment.pipeline"):
        decision = run(COMPLETED, api, ledger)

    assert decision == Decision("awaiting_payment")
    assert order(ledger)["payment_status"] == "partially_paid" and api.line_item_reads == 0
    assert "'partially_paid'" in caplog.text


def test_an_item_crossfill_cannot_classify_fails_alone(api: Sessions, ledger: Ledger) -> None:
    # Given a paid order whose second item has no price
    broken = LineItem(id="li_x", price=None, quantity=1, currency="usd", amount_subtotal=0, amount_total=500,
                      problem="the line item has no price")
    api.put(make_session(SID), [ITEMS[0], broken, ITEMS[1]])

    # When it is decided, every item is dispatched, the broken one to the unfulfillable handler
    decision = run(COMPLETED, api, ledger)
    assert decision == Decision("fulfilling", ("li_1", "li_x", "li_2"))
    assert ledger.item(SID, "li_x")["handler"] == UNFULFILLABLE  # type: ignore[index]

    # And when fulfill_item runs each (claim, handler, record), only that item fails
    handlers = HandlerRegistry(extra={"http": lambda request, options: {"ok": True}})
    for item_id in decision.dispatch:
        claim = ledger.claim_item(SID, item_id, lease_s=30)
        item = ledger.item(SID, item_id) or {}
        request = FulfillmentRequest(session_id=SID, line_item_id=item_id, item=item, order={}, attempt=1)
        try:
            ledger.record_result(SID, item_id, claim.token, handlers.get(item["handler"])(request, {}))
        except PermanentError as error:
            ledger.record_failure(SID, item_id, claim.token, str(error))

    recorded = order(ledger)
    assert recorded["status"] == "partially_failed"
    assert [(item["id"], item["status"], item["error"]) for item in recorded["items"]] == [
        ("li_1", "done", None), ("li_x", "failed", "the line item has no price"), ("li_2", "done", None)]


def test_a_connected_accounts_order_is_read_classified_and_recorded_as_that_account(api: Sessions,
                                                                                    ledger: Ledger) -> None:
    # Given a platform whose connected account acct_1Shop cross-sells prod_Spoon with prod_Mug,
    catalog = parse_catalog({"products": {"prod_pro": {"cross_sell": "prod_deploy"}},
                             "accounts": {"acct_1Shop": {"products": {"prod_Mug": {"cross_sell": "prod_Spoon"}}}}})
    api.put(make_session(SID), [make_item("li_1", "prod_Mug"), make_item("li_2", "prod_Spoon")], account="acct_1Shop")
    # when its event is decided,
    decision = decide(COMPLETED, SID, api, ledger, catalog, account="acct_1Shop")  # type: ignore[arg-type]
    # then the session and its items were read as the account, its catalog classified them,
    assert decision.dispatch == ("li_1", "li_2")
    assert api.line_item_accounts == ["acct_1Shop"]
    recorded = order(ledger)
    assert [item["cross_sell"] for item in recorded["items"]] == [False, True]
    # and the order names the account (a platform's own order names none).
    assert recorded["account"] == "acct_1Shop"
    assert ledger.order_summary(SID)["account"] == "acct_1Shop"


def test_a_connected_accounts_session_is_not_found_as_the_platform(api: Sessions, ledger: Ledger) -> None:
    api.put(make_session(SID), ITEMS, account="acct_1Shop")
    with pytest.raises(PermanentError):
        run(COMPLETED, api, ledger)


def test_a_platform_order_names_no_account(api: Sessions, ledger: Ledger) -> None:
    api.put(make_session(SID), ITEMS)
    run(COMPLETED, api, ledger)
    assert order(ledger).account is None and "account" not in order(ledger).to_dict()
