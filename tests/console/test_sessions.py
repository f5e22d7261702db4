"""Console sessions end at sign-out, on a real ``crossfill console``: a cookie saved before sign-out gets
the sign-in page and its CSRF token is refused; sessions have an absolute lifetime; an operator ends
every session of a token's name (API and CLI)."""
from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.support.console import TOKENS, LiveConsole, csrf_of, running_console, sign_in
from tests.support.processes import ROOT, wait_until

pytestmark = pytest.mark.integration
TOKEN_ENTRIES = f"op:operator:{TOKENS['operator']},ana:viewer:{TOKENS['viewer']}"


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveConsole]:
    with running_console(tmp_path, TOKEN_ENTRIES) as console:
        yield console


def replay_of(cookies: requests.cookies.RequestsCookieJar) -> requests.Session:
    """A browser holding a copy of *cookies* (what an attacker who saved them would have)."""
    copy = requests.Session()
    copy.cookies.update(cookies)
    return copy


def signed_in(browser: requests.Session, url: str) -> bool:
    return browser.get(f"{url}/", allow_redirects=False, timeout=10).status_code == 200


def test_a_cookie_saved_before_sign_out_is_refused_with_its_csrf_token(live: LiveConsole) -> None:
    # Given an operator signed in, whose cookie and CSRF token someone saved
    browser = sign_in(live.url, TOKENS["operator"])
    csrf = csrf_of(browser.get(f"{live.url}/", timeout=10).text)
    saved = replay_of(browser.cookies)
    assert signed_in(saved, live.url)

    # When the operator signs out
    assert browser.post(f"{live.url}/signout", data={"csrf": csrf}, allow_redirects=False,
                        timeout=10).status_code == 302

    # Then the saved cookie gets the sign-in page, and a form posted with it and its CSRF token does nothing
    page = saved.get(f"{live.url}/", allow_redirects=False, timeout=10)
    assert page.status_code == 302 and "/signin" in page.headers["Location"]
    posted = saved.post(f"{live.url}/reconcile", data={"csrf": csrf}, allow_redirects=False, timeout=10)
    assert posted.status_code == 401
    assert live.redis.client().llen("events") == 0  # no reconciliation was queued


def test_an_operator_ends_every_session_of_a_name_by_api_and_cli(live: LiveConsole) -> None:
    # Given ana signed in on two browsers, and the operator on one
    first, second = sign_in(live.url, TOKENS["viewer"]), sign_in(live.url, TOKENS["viewer"])
    operator = sign_in(live.url, TOKENS["operator"])

    # When an operator ends ana's sessions through the API
    answer = requests.post(f"{live.url}/api/v1/sessions/ana/end",
                           headers={"Authorization": f"Bearer {TOKENS['operator']}"}, timeout=10)

    # Then both of ana's browsers must sign in again; the operator's session goes on
    assert answer.status_code == 200 and answer.json() == {"name": "ana", "ended": 2}
    assert not signed_in(first, live.url) and not signed_in(second, live.url)
    assert signed_in(operator, live.url)

    # And the CLI does the same to the operator's own name
    env = {key: value for key, value in os.environ.items() if not key.startswith(("CROSSFILL_", "STRIPE_"))}
    cli = subprocess.run([sys.executable, "-m", "crossfill.cli", "end-sessions", "op"],
                         env={**env, "CROSSFILL_REDIS_URL": live.redis.url}, cwd=ROOT, capture_output=True,
                         text=True, timeout=60, check=False)
    assert cli.returncode == 0, cli.stderr
    assert "1 console session(s) ended" in cli.stdout
    assert '"action": "end-sessions"' in cli.stderr and '"target": "op"' in cli.stderr
    assert not signed_in(operator, live.url)


def test_a_session_ends_after_its_absolute_lifetime(tmp_path: Path) -> None:
    with running_console(tmp_path, TOKEN_ENTRIES, {"CROSSFILL_CONSOLE_SESSION_LIFETIME": "5"}) as console:
        browser = sign_in(console.url, TOKENS["viewer"])
        assert signed_in(browser, console.url)  # used at once: within its lifetime

        # Activity does not extend it: it ends a fixed time after sign-in
        wait_until(lambda: not signed_in(browser, console.url), timeout=30, interval=0.5,
                   what="the session to end after its lifetime")
