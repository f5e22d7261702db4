"""fulfillment/http.py: the pooled session reads requests' environment once when no proxy is set."""
from __future__ import annotations

import pytest

from fulfillment.http import pooled_session


def test_without_a_proxy_the_environment_is_read_once_with_its_ca_bundle() -> None:
    session = pooled_session(environ={"REQUESTS_CA_BUNDLE": "/etc/ssl/corp.pem"})

    assert session.trust_env is False
    assert session.verify == "/etc/ssl/corp.pem"


def test_without_a_proxy_or_a_bundle_certificates_are_verified_as_usual() -> None:
    session = pooled_session(environ={})

    assert session.trust_env is False
    assert session.verify is True


@pytest.mark.parametrize("name", ["HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "ALL_PROXY", "no_proxy"])
def test_with_a_proxy_configured_requests_keeps_reading_it_per_call(name: str) -> None:
    # NO_PROXY is decided host by host, by requests, on every call
    session = pooled_session(environ={name: "http://proxy.internal:3128"})

    assert session.trust_env is True
