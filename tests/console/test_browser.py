"""The console in a real browser, on the real stack: sign in, every page, a replay, a refusal.

Runs redis-server, the simulator, the receiver (gunicorn), a Celery worker and the console (gunicorn,
as ``crossfill console`` runs it); drives Debian's ``chromium`` through ``chromedriver`` with
selenium; saves a screenshot of each page under ``var/screenshots/``. Skips, saying how to install
them, when chromium, chromedriver or selenium are missing: ``apt-get install chromium
chromium-driver`` and ``pip install -e '.[dev]'``. ``make browser-check`` runs only this.
"""
from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from crossfill.embedded import free_port
from fulfillment.deadletters import DeadLetters
from tests.support.console import TOKENS, token_entries
from tests.support.processes import ROOT, crossfill, port_open, wait_until
from tests.support.stack import Stack

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed: pip install -e '.[dev]'")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER),
                       reason="no chromium/chromedriver: apt-get install chromium chromium-driver"),
]
SHOTS = ROOT / "var" / "screenshots"
DESKTOP, PHONE = (1280, 900), (390, 844)


@pytest.fixture(scope="module")
def console_url(stack: Stack) -> Iterator[str]:  # noqa: F811 - the imported fixture
    port = free_port()
    tokens = token_entries()
    env = {**stack.env, "CROSSFILL_CONSOLE_PORT": str(port), "CROSSFILL_CONSOLE_TOKENS": tokens}
    proc = crossfill("console", ["console"], env, stack.tmp)
    try:
        wait_until(lambda: port_open(port), timeout=30, what="the console")
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def demo_data(stack: Stack) -> dict[str, Any]:  # noqa: F811
    """Purchases like `crossfill demo`'s, and two orders whose fulfillment system refused (dead letters)."""
    shop = stack.shop
    fulfilled = [shop.buy(), shop.buy(cross_sell=True), shop.buy(cross_sell=True), shop.buy(extra_items=3)]
    for session_id in fulfilled:
        stack.wait_order(session_id, "fulfilled")
    stack.target.status = 400  # the fulfillment system refuses: permanent, dead-lettered
    failed = [shop.buy(), shop.buy()]
    for session_id in failed:
        stack.wait_order(session_id, "partially_failed")
    stack.target.status = 200
    return {"fulfilled": fulfilled, "failed": failed}


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 f"--window-size={DESKTOP[0]},{DESKTOP[1]}", "--hide-scrollbars"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(30)
    SHOTS.mkdir(parents=True, exist_ok=True)
    try:
        yield driver
    finally:
        driver.quit()


def shot(driver: Any, name: str, size: tuple[int, int] = DESKTOP) -> Path:
    """Save the whole page (its full height) as var/screenshots/<name>.png."""
    driver.set_window_size(*size)
    height, chrome = driver.execute_script(
        "return [Math.max(document.body.scrollHeight, document.documentElement.scrollHeight),"
        " window.outerHeight - window.innerHeight]")
    driver.set_window_size(size[0], max(size[1], min(int(height) + int(chrome), 4000)))
    path = SHOTS / f"{name}.png"
    assert driver.save_screenshot(str(path)), f"could not save {path}"
    driver.set_window_size(*size)
    return path


def sign_in(driver: Any, base: str, role: str) -> None:
    from selenium.webdriver.common.by import By

    driver.get(f"{base}/signin")
    driver.find_element(By.ID, "token").send_keys(TOKENS[role])
    driver.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    wait_until(lambda: driver.current_url.rstrip("/") == base, timeout=15, what=f"{role} signed in")


def sign_out(driver: Any) -> None:
    from selenium.webdriver.common.by import By

    driver.find_element(By.CSS_SELECTOR, "form.who button").click()
    wait_until(lambda: "/signin" in driver.current_url, timeout=15, what="signed out")


def test_the_console_in_a_browser(stack: Stack, console_url: str, demo_data: dict[str, Any],  # noqa: F811
                                  browser: Any) -> None:
    from selenium.webdriver.common.by import By

    driver, base = browser, console_url
    client = stack.redis.client()
    [kept, replayed] = sorted(demo_data["failed"])
    letter_id = f"fulfill:{replayed}:"

    # A stranger is sent to sign in; the page names no secret
    driver.get(f"{base}/orders")
    assert "/signin?next=/orders" in driver.current_url
    shot(driver, "01-signin")
    driver.find_element(By.ID, "token").send_keys("not-a-valid-token-" * 3)
    driver.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    wait_until(lambda: "That token is not valid." in driver.page_source, timeout=15, what="the refusal")
    shot(driver, "02-signin-refused")

    # The operator signs in and opens every page
    sign_in(driver, base, "operator")
    assert driver.find_element(By.TAG_NAME, "h1").text == "Overview"
    assert driver.find_elements(By.CSS_SELECTOR, "svg.chart rect.bar")
    assert "paid orders took the cross-sell" in driver.page_source
    shot(driver, "03-overview")
    shot(driver, "04-overview-phone", PHONE)

    driver.get(f"{base}/orders")
    rows = driver.find_elements(By.CSS_SELECTOR, "tbody tr")
    assert len(rows) >= 6
    shot(driver, "05-orders")
    driver.get(f"{base}/orders?status=partially_failed")
    assert {a.text for a in driver.find_elements(By.CSS_SELECTOR, "tbody a")} == {
        sid[:28] + ("…" if len(sid) > 28 else "") for sid in demo_data["failed"]}
    shot(driver, "06-orders-filtered")
    driver.get(f"{base}/orders/{demo_data['fulfilled'][1]}")
    assert "cross-sell" in driver.page_source and "order fulfilled" in driver.page_source
    shot(driver, "07-order")
    shot(driver, "08-order-phone", PHONE)
    driver.get(f"{base}/report")
    report_rows = driver.find_elements(By.CSS_SELECTOR, "tbody tr")
    assert report_rows and "prod_cf_pro" in report_rows[0].text
    shot(driver, "09-report")

    # The operator replays one dead letter with its button
    driver.get(f"{base}/dead-letters")
    assert len(driver.find_elements(By.CSS_SELECTOR, "tbody tr")) == 2
    shot(driver, "10-dead-letters")
    [button] = [form.find_element(By.TAG_NAME, "button") for form in driver.find_elements(By.CSS_SELECTOR, "td form")
                if letter_id in (form.get_attribute("action") or "")]
    button.click()
    wait_until(lambda: "replayed" in driver.page_source, timeout=15, what="the replay notice")
    shot(driver, "11-dead-letters-after-replay")
    stack.wait_order(replayed, "fulfilled")
    assert DeadLetters(client).count() == 1
    driver.get(f"{base}/events/{stack.shop.events_of(kept)[0]['id']}")
    assert "Process again" in driver.page_source
    shot(driver, "12-event")
    driver.get(f"{base}/audit")
    assert "operator-person" in driver.page_source and replayed in driver.page_source
    shot(driver, "13-audit")
    sign_out(driver)

    # A viewer sees no replay button, and a forged replay is refused
    sign_in(driver, base, "viewer")
    driver.get(f"{base}/dead-letters")
    assert "Replay</button>" not in driver.page_source
    shot(driver, "14-dead-letters-viewer")
    [remaining] = DeadLetters(client).list()
    driver.execute_script(
        "const form = document.createElement('form'); form.method = 'post'; form.action = arguments[0];"
        "const csrf = document.createElement('input'); csrf.name = 'csrf';"
        "csrf.value = document.querySelector('form.who input[name=csrf]').value;"
        "form.appendChild(csrf); document.body.appendChild(form); form.submit();",
        f"/dead-letters/{remaining.id}/replay")
    wait_until(lambda: "403" in driver.find_element(By.TAG_NAME, "h1").text, timeout=15, what="the 403 page")
    shot(driver, "15-viewer-refused")
    assert DeadLetters(client).count() == 1
    driver.get(f"{base}/audit")
    assert "refused: role viewer" in driver.page_source
    assert not [name for name in os.listdir(SHOTS) if name.endswith(".png") and (SHOTS / name).stat().st_size == 0]
