"""Behind a proxy: CROSSFILL_TRUSTED_PROXIES decides whether X-Forwarded-For/-Proto are believed; the
sign-in throttle keys on the client's address after that, and the cookie is Secure over https."""
from __future__ import annotations

from collections.abc import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.support.console import TOKENS, csrf_of

WRONG = "nope-not-a-token-at-all-0123456789abcdef"


@pytest.fixture
def behind_one_proxy(make_app: Callable[..., Flask]) -> Flask:
    return make_app(CROSSFILL_TRUSTED_PROXIES="1")


@pytest.fixture
def direct(make_app: Callable[..., Flask]) -> Flask:
    return make_app()


def sign_in(client: FlaskClient, token: str, **headers: str) -> int:
    form = client.get("/signin", headers=headers)
    return client.post("/signin", data={"token": token, "csrf": csrf_of(form.text)}, headers=headers).status_code


def test_one_attacker_behind_the_proxy_cannot_lock_everyone_out(behind_one_proxy: Flask, direct: Flask) -> None:
    # Given one proxy in front, an attacker failing to sign in again and again
    attacker, someone = behind_one_proxy.test_client(), behind_one_proxy.test_client()
    tries = [sign_in(attacker, WRONG, **{"X-Forwarded-For": "203.0.113.7"}) for _ in range(6)]

    # Then the attacker waits, and someone else behind the same proxy signs in
    assert tries[:4] == [401] * 4 and 429 in tries[4:]
    assert sign_in(someone, TOKENS["viewer"], **{"X-Forwarded-For": "198.51.100.2"}) == 302

    # And with no proxy configured, a forged X-Forwarded-For escapes nothing: every try counts against
    # the one real address
    forger = direct.test_client()
    forged = [sign_in(forger, WRONG, **{"X-Forwarded-For": f"203.0.113.{n}"}) for n in range(6)]
    assert 429 in forged[4:]


def test_the_cookie_is_secure_when_the_proxy_was_reached_over_https(behind_one_proxy: Flask, direct: Flask,
                                                                     make_app: Callable[..., Flask]) -> None:
    def cookie(app: Flask, **headers: str) -> str:
        client = app.test_client()
        form = client.get("/signin", headers=headers)
        answer = client.post("/signin", data={"token": TOKENS["viewer"], "csrf": csrf_of(form.text)},
                             headers=headers)
        assert answer.status_code == 302
        return answer.headers["Set-Cookie"]

    assert "Secure" in cookie(behind_one_proxy, **{"X-Forwarded-Proto": "https"})
    assert "Secure" not in cookie(behind_one_proxy, **{"X-Forwarded-Proto": "http"})
    assert "Secure" not in cookie(direct, **{"X-Forwarded-Proto": "https"})  # not believed without a proxy
    assert "Secure" in cookie(make_app(CROSSFILL_CONSOLE_SECURE_COOKIE="true"))
