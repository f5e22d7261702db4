"""The pages, through the browser's path: sign-in form, session cookie, CSRF, roles, every page."""
from __future__ import annotations

import time
from collections.abc import Callable

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient

from console.audit import STREAM
from fulfillment.deadletters import DeadLetters
from fulfillment.inbox import Inbox
from fulfillment.ledger import Ledger
from fulfillment.records import Order, OrderItem
from messaging.contract import FULFILLMENT_QUEUE, dead_letter_id
from tests.support.console import TOKENS, csrf_of, paid_order

Browser = Callable[[str], FlaskClient]
PAGES = ["/", "/orders", "/dead-letters", "/report", "/audit"]


@pytest.mark.parametrize("path", PAGES + ["/orders/cs_test_x", "/events/evt_1"])
def test_pages_send_strangers_to_sign_in(client: FlaskClient, path: str) -> None:
    answer = client.get(path)

    assert answer.status_code == 302
    assert answer.headers["Location"].startswith("/signin?next=")


def test_signing_in_sets_a_strict_httponly_cookie_that_never_holds_the_token(client: FlaskClient) -> None:
    form = client.get("/signin")
    answer = client.post("/signin", data={"token": TOKENS["viewer"], "csrf": csrf_of(form.text), "next": "/orders"})

    assert answer.status_code == 302 and answer.headers["Location"] == "/orders"
    cookie = answer.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert "Secure" not in cookie  # plain http here; see the https test
    assert TOKENS["viewer"] not in cookie


def test_over_https_the_cookie_is_secure(client: FlaskClient) -> None:
    form = client.get("/signin", base_url="https://console.example")
    answer = client.post("/signin", data={"token": TOKENS["viewer"], "csrf": csrf_of(form.text)},
                         base_url="https://console.example")

    assert "Secure" in answer.headers["Set-Cookie"]


def test_sign_in_refuses_a_missing_csrf_token(client: FlaskClient) -> None:
    client.get("/signin")

    answer = client.post("/signin", data={"token": TOKENS["viewer"]})

    assert answer.status_code == 403


def test_a_csrf_token_that_is_not_ascii_is_refused_not_a_crash(client: FlaskClient, browser: Browser) -> None:
    # hmac.compare_digest raises TypeError on str with non-ASCII characters: that was a 500.
    client.get("/signin")

    signing_in = client.post("/signin", data={"token": TOKENS["viewer"], "csrf": "\u00e9t\u00e9"})
    replaying = browser("operator").post("/dead-letters/replay-all", data={"csrf": "\u00e9t\u00e9"})

    assert signing_in.status_code == 403
    assert replaying.status_code == 403


def test_sign_in_redirects_only_within_the_console(client: FlaskClient) -> None:
    form = client.get("/signin")
    answer = client.post("/signin", data={"token": TOKENS["viewer"], "csrf": csrf_of(form.text),
                                          "next": "//evil.example/steal"})

    assert answer.headers["Location"] == "/"


def test_failed_sign_ins_are_slowed_per_client_and_audited(app: Flask, client: FlaskClient,
                                                            redis_client: redis.Redis) -> None:
    csrf = csrf_of(client.get("/signin").text)
    answers = [client.post("/signin", data={"token": "wrong-" * 8, "csrf": csrf}).status_code for _ in range(5)]
    elsewhere = app.test_client()
    other = elsewhere.post("/signin", data={"token": TOKENS["viewer"], "csrf": csrf_of(elsewhere.get("/signin").text)},
                           environ_base={"REMOTE_ADDR": "10.9.9.9"})
    blocked = client.post("/signin", data={"token": TOKENS["viewer"], "csrf": csrf})

    # Three free failures, then the fourth imposes a wait the fifth runs into.
    assert answers == [401, 401, 401, 401, 429]
    assert blocked.status_code == 429 and int(blocked.headers["Retry-After"]) >= 1
    assert other.status_code == 302  # another client is not held up
    entries = [fields for _, fields in redis_client.xrange(STREAM)]
    assert [e["result"] for e in entries].count("refused: unknown token") == 4
    assert all("wrong-" not in str(e) and TOKENS["viewer"] not in str(e) for e in entries)


@pytest.mark.parametrize("path", PAGES)
def test_every_page_renders_for_a_viewer(browser: Browser, ledger: Ledger, redis_client: redis.Redis,
                                         path: str) -> None:
    paid_order(ledger, "cs_test_page", cross_sell=True)
    DeadLetters(redis_client).add(dead_letter_id("fulfill_item", ["cs_test_page", "li_9"]), "fulfill_item", ["cs_test_page", "li_9"], "boom", reason="permanent", attempts=2)
    session = browser("viewer")

    answer = session.get(path)

    assert answer.status_code == 200, answer.text
    assert "viewer-person" in answer.text
    assert 'name="viewport"' in answer.text
    assert TOKENS["viewer"] not in answer.text


def test_the_overview_draws_the_chart_inline(browser: Browser, ledger: Ledger) -> None:
    paid_order(ledger, "cs_test_chart", cross_sell=True)

    html = browser("viewer").get("/").text

    assert "<svg" in html and 'class="bar"' in html and 'class="rate"' in html
    assert "1</strong> of <strong>1</strong> paid orders took the cross-sell" in html


def test_the_overview_shows_the_lag_and_links_the_oldest_waiting_order(browser: Browser, ledger: Ledger) -> None:
    # Given an order fulfilled 40 s after it was paid, and one paid 10 min ago still waiting
    ledger.open_order("cs_test_quick", Order(session_id="cs_test_quick"), [OrderItem(id="li_1")], paid_at=time.time() - 40)
    claim = ledger.claim_item("cs_test_quick", "li_1", lease_s=60)
    ledger.record_result("cs_test_quick", "li_1", claim.token, {"ok": True})
    ledger.open_order("cs_test_waiting", Order(session_id="cs_test_waiting"), [OrderItem(id="li_1")], paid_at=time.time() - 600)

    html = browser("viewer").get("/").text

    # Then the lag quantiles (one item: within its 30-60 s bucket) and a link to the late order show
    assert "lag p50 / p99, last hour" in html and "45 s / 60 s" in html
    assert 'class="tile bad" href="/orders/cs_test_waiting"' in html and "paid 10 min ago" in html


def test_an_order_page_shows_items_flags_and_timeline(browser: Browser, ledger: Ledger) -> None:
    paid_order(ledger, "cs_test_detail", cross_sell=True)

    html = browser("viewer").get("/orders/cs_test_detail").text

    assert "li_1" in html and "li_2" in html and "cross-sell" in html
    assert "order recorded" in html and "order fulfilled" in html


def test_unknown_order_and_event_pages_are_404(browser: Browser) -> None:
    session = browser("viewer")

    assert session.get("/orders/cs_test_none").status_code == 404
    assert session.get("/events/evt_none").status_code == 404


def test_the_orders_page_filters_and_pages(browser: Browser, ledger: Ledger) -> None:
    for n in range(30):
        paid_order(ledger, f"cs_test_list{n:02d}", cross_sell=n % 2 == 0)
    session = browser("viewer")

    first = session.get("/orders", query_string={"cross_sell": "true", "limit": 10})
    assert first.text.count('href="/orders/cs_test_list') == 10
    next_url = first.text.split('class="button" href="')[1].split('"')[0].replace("&amp;", "&")
    second = session.get(next_url)
    bad = session.get("/orders", query_string={"status": "nope"})

    assert second.text.count('href="/orders/cs_test_list') == 5
    assert "Next page" not in second.text
    assert bad.status_code == 400


def test_an_operator_replays_from_the_page(browser: Browser, ledger: Ledger, redis_client: redis.Redis) -> None:
    paid_order(ledger, "cs_test_pr", fail=True)
    DeadLetters(redis_client).add(dead_letter_id("fulfill_item", ["cs_test_pr", "li_1"]), "fulfill_item", ["cs_test_pr", "li_1"], "boom", reason="permanent", attempts=1)
    session = browser("operator")
    page = session.get("/dead-letters").text
    assert "Replay</button>" in page

    answer = session.post("/dead-letters/fulfill:cs_test_pr:li_1/replay", data={"csrf": csrf_of(page)})

    assert answer.status_code == 302
    assert DeadLetters(redis_client).count() == 0 and redis_client.llen(FULFILLMENT_QUEUE) == 1
    assert "replayed" in session.get(answer.headers["Location"]).text
    audit = session.get("/audit").text
    assert "operator-person" in audit and "fulfill:cs_test_pr:li_1" in audit


def test_a_replay_without_the_csrf_token_is_refused(browser: Browser, ledger: Ledger,
                                                    redis_client: redis.Redis) -> None:
    DeadLetters(redis_client).add(dead_letter_id("fulfill_item", ["cs_test_c", "li_1"]), "fulfill_item", ["cs_test_c", "li_1"], "boom", reason="permanent", attempts=1)
    session = browser("operator")

    answers = [session.post("/dead-letters/fulfill:cs_test_c:li_1/replay", data=data).status_code
               for data in ({}, {"csrf": "forged"})]

    assert answers == [403, 403]
    assert DeadLetters(redis_client).count() == 1


def test_a_viewer_sees_no_replay_button_and_is_refused(browser: Browser, redis_client: redis.Redis) -> None:
    DeadLetters(redis_client).add(dead_letter_id("fulfill_item", ["cs_test_v", "li_1"]), "fulfill_item", ["cs_test_v", "li_1"], "boom", reason="permanent", attempts=1)
    session = browser("viewer")
    page = session.get("/dead-letters").text

    answer = session.post("/dead-letters/fulfill:cs_test_v:li_1/replay", data={"csrf": csrf_of(page)})

    assert "Replay</button>" not in page
    assert answer.status_code == 403
    assert DeadLetters(redis_client).count() == 1


def test_an_operator_replays_an_event_from_its_page(browser: Browser, redis_client: redis.Redis) -> None:
    Inbox(redis_client).record("evt_p", "checkout.session.completed", "cs_test_p", "{}", queue="x", message="m")
    session = browser("operator")
    page = session.get("/events/evt_p").text

    answer = session.post("/events/evt_p/replay", data={"csrf": csrf_of(page)})

    assert answer.status_code == 302 and redis_client.llen("events") == 1


def test_merchants_cannot_use_the_pages(browser: Browser) -> None:
    assert browser("merchant").get("/").status_code == 403


def test_sign_out_ends_the_session(browser: Browser) -> None:
    session = browser("viewer")
    page = session.get("/").text

    assert session.post("/signout", data={"csrf": csrf_of(page)}).status_code == 302
    assert session.get("/").status_code == 302


def test_a_session_ends_when_its_token_is_removed(app: Flask, settings: object, browser: Browser) -> None:
    from console.app import create_console_app
    from console.settings import load_console_settings

    session = browser("viewer")
    cookie = session.get_cookie("crossfill_console")
    assert cookie is not None
    fewer = load_console_settings({"CROSSFILL_CONSOLE_TOKENS": f"op:operator:{TOKENS['operator']}"})
    restarted = create_console_app(settings, fewer)  # type: ignore[arg-type]
    other = restarted.test_client()
    other.set_cookie("crossfill_console", cookie.value)

    assert other.get("/").status_code == 302
    restarted.extensions["crossfill_console"].service.runtime.close()


def test_the_audit_page_rejects_a_malformed_cursor(browser: Browser) -> None:
    assert browser("viewer").get("/audit", query_string={"before": "x)"}).status_code == 400


def test_the_audit_page_rejects_a_cursor_with_a_trailing_newline(browser: Browser) -> None:
    # ``$`` matches before a final newline: Redis would then refuse the id, answered 503 as an outage.
    assert browser("viewer").get("/audit", query_string={"before": "1764489600000-0\n"}).status_code == 400


def test_security_headers(browser: Browser) -> None:
    answer = browser("viewer").get("/")

    assert answer.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in answer.headers["Content-Security-Policy"]
    assert answer.headers["Cache-Control"] == "no-store"
