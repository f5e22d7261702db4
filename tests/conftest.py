"""Fixtures for every crossfill test: a signing secret, Stripe events and signed headers."""
from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from fulfillment.signing import sign

#: Shared fixtures that live with their helpers (one way to import test helpers: tests.support).
pytest_plugins = ("tests.support.stack",)

# Property tests must not depend on how busy the machine is (CI shares 2 cores): no per-example
# deadline and no "too slow" health check; the example counts alone bound their work.
settings.register_profile("crossfill", deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.large_base_example,
                                                 HealthCheck.data_too_large])
settings.load_profile("crossfill")

#: The webhook signing secret the tests configure (its shape is Stripe's: ``whsec_`` + base64ish).
SECRET = "whsec_crossfill_tests_0123456789abcdef"

EventFactory = Callable[..., dict[str, Any]]
HeaderFactory = Callable[..., str]


@pytest.fixture(autouse=True)
def _single_process_metrics(monkeypatch: pytest.MonkeyPatch) -> None:
    # /metrics switches to prometheus-client's multiprocess mode when this is set (gunicorn does);
    # an in-process app must count in its own registry whatever the developer's shell exports.
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)


@pytest.fixture
def secret() -> str:
    """The signing secret the receiver under test is configured with."""
    return SECRET


@pytest.fixture
def make_event() -> EventFactory:
    """Build a Stripe event as a dict: ``make_event(type=..., session_id=..., **top_level_fields)``."""

    def build(*, type: str = "checkout.session.completed", session_id: str | None = None,
              event_id: str | None = None, **fields: Any) -> dict[str, Any]:
        session_id = session_id or f"cs_test_{uuid.uuid4().hex}"
        event: dict[str, Any] = {
            "id": event_id or f"evt_{uuid.uuid4().hex}",
            "object": "event",
            "api_version": "2024-06-20",
            "type": type,
            "created": 1_700_000_000,
            "livemode": False,
            "pending_webhooks": 1,
            "data": {"object": {"id": session_id, "object": "checkout.session", "payment_status": "paid",
                                "mode": "payment", "currency": "usd", "amount_total": 2500}},
        }
        event.update(fields)
        return event

    return build


@pytest.fixture
def sign_header(secret: str) -> HeaderFactory:
    """Sign a body as Stripe does: ``sign_header(body, secrets=(secret,), timestamp=now)``."""

    def build(body: bytes, *, secrets: tuple[str, ...] | None = None, timestamp: int | None = None) -> str:
        when = int(time.time()) if timestamp is None else timestamp
        return sign(body, secrets if secrets is not None else (secret,), timestamp=when)

    return build

