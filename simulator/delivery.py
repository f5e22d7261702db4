"""Signed webhook delivery, as Stripe does it: in the background, retried with backoff, recorded.

Each (event, endpoint) pair is a :class:`Delivery`. Its first attempt is queued on a thread pool
the moment the event exists (the API request that caused it never waits); a non-2xx answer, a
redirect or a timeout schedules the next attempt ``retry_base_ms * 2**(n-1)`` later (capped), up
to ``retry_max_attempts``. Every attempt is signed afresh: a new ``t``, one ``v1`` per secret the
endpoint has at that moment, and a ``v0``.

A delivery the fault plan drops (``webhook_drop_rate``) is never sent nor retried, and counts as
acknowledged: as when a proxy answers 200 and loses the request, Stripe believes it delivered.
An endpoint that is disabled or deleted gets no further attempt; its pending deliveries fail.
"""
from __future__ import annotations

import heapq
import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import requests

from fulfillment.signing import compute_signature, sign
from simulator.config import SimConfig
from simulator.resources import EndpointRecord, new_id
from simulator.store.destinations import DestinationRecord

log = logging.getLogger(__name__)

#: Stripe adds a ``v0`` signature made with a legacy secret; receivers must ignore it.
V0_SECRET = "whsec_simulator_legacy_v0"
USER_AGENT = "Stripe/1.0 (+https://stripe.com/docs/webhooks)"

SecretsOf = Callable[[str], "list[str] | None"]
#: Delivery states: still trying, acknowledged (2xx), given up, or lost on the way (a fault).
PENDING, SUCCEEDED, FAILED, DROPPED = "pending", "succeeded", "failed", "dropped"
ACKNOWLEDGED = frozenset({SUCCEEDED, DROPPED})  #: states Stripe counts as delivered


@dataclass
class Attempt:
    """One POST of a delivery."""

    number: int
    started_at: float
    timestamp: int  #: the ``t`` it was signed with
    signatures: int  #: how many ``v1`` it carried
    status_code: int | None = None
    error: str | None = None
    duration_ms: float = 0.0

    @property
    def succeeded(self) -> bool:
        """Whether the endpoint acknowledged it (2xx; a redirect is a failure, as on Stripe)."""
        return self.status_code is not None and 200 <= self.status_code < 300


@dataclass
class Delivery:
    """An event on its way to one endpoint, with every attempt made so far."""

    id: str
    event_id: str
    event_type: str
    endpoint_id: str
    url: str
    body: bytes
    resend: bool = False
    state: str = PENDING  #: pending, succeeded, failed or dropped
    attempts: list[Attempt] = field(default_factory=list)
    next_attempt_at: float | None = None

    def to_json(self) -> dict[str, Any]:
        """The sim view of this delivery."""
        return {
            "id": self.id, "object": "sim.delivery", "event": self.event_id, "type": self.event_type,
            "webhook_endpoint": self.endpoint_id, "url": self.url, "resend": self.resend, "state": self.state,
            "next_attempt_at": self.next_attempt_at,
            "attempts": [{"number": a.number, "started_at": a.started_at, "timestamp": a.timestamp,
                          "signatures": a.signatures, "status_code": a.status_code, "error": a.error,
                          "duration_ms": round(a.duration_ms, 1), "succeeded": a.succeeded}
                         for a in self.attempts],
        }


class Dispatcher:
    """Delivers events to endpoints on a thread pool, retrying on a timer thread."""

    def __init__(self, config: SimConfig, secrets_of: SecretsOf, *, clock: Callable[[], float] = time.time,
                 drops: Callable[[], bool] = lambda: False) -> None:
        self.config = config
        self._secrets_of = secrets_of
        self._drops = drops
        self._clock = clock
        self._lock = threading.Condition()
        self._deliveries: dict[str, Delivery] = {}
        self._by_event: dict[str, list[str]] = {}
        self._timers: list[tuple[float, int, str]] = []
        self._sequence = 0
        self._in_flight = 0
        self._stopping = False
        self._local = threading.local()
        self._sessions: list[requests.Session] = []
        self._pool = ThreadPoolExecutor(max_workers=config.delivery_workers, thread_name_prefix="sim-delivery")
        self._timer_thread = threading.Thread(target=self._run_timers, name="sim-delivery-timer", daemon=True)
        self._timer_thread.start()

    def dispatch(self, event: dict[str, Any], endpoints: Sequence[EndpointRecord | DestinationRecord], *,
                 resend: bool = False) -> list[Delivery]:
        """Queue *event* for each of *endpoints*; returns at once."""
        body = json.dumps(event, indent=2).encode("utf-8")
        created = []
        with self._lock:
            if self._stopping:
                return []
            for endpoint in endpoints:
                delivery = Delivery(id=new_id("whdel_"), event_id=event["id"], event_type=event["type"],
                                    endpoint_id=endpoint.id, url=endpoint.url, body=body, resend=resend)
                self._deliveries[delivery.id] = delivery
                self._by_event.setdefault(delivery.event_id, []).append(delivery.id)
                created.append(delivery)
                if self._drops():
                    delivery.state, delivery.body = DROPPED, b""
                    log.info("webhook delivery %s of %s dropped (fault plan)", delivery.id, delivery.event_id)
                    continue
                self._submit(delivery.id)
        return created

    def _submit(self, delivery_id: str) -> None:
        self._in_flight += 1
        self._pool.submit(self._attempt, delivery_id)

    def deliveries_of(self, event_id: str) -> list[dict[str, Any]]:
        """Every delivery of *event_id*, oldest first, with its attempts."""
        with self._lock:
            return [self._deliveries[d].to_json() for d in self._by_event.get(event_id, [])]

    def pending_count(self, event_id: str) -> int:
        """Deliveries of *event_id* not yet acknowledged nor given up (``pending_webhooks``)."""
        with self._lock:
            return sum(self._deliveries[d].state == PENDING for d in self._by_event.get(event_id, []))

    def delivered(self, event_id: str) -> bool:
        """Whether every endpoint *event_id* was sent to acknowledged it (``delivery_success``).

        An event still pending, or given up on, at one endpoint is not delivered; one that went to
        no endpoint is.
        """
        with self._lock:
            acknowledged: dict[str, bool] = {}
            for delivery_id in self._by_event.get(event_id, []):
                delivery = self._deliveries[delivery_id]
                acknowledged[delivery.endpoint_id] = (acknowledged.get(delivery.endpoint_id, False)
                                                      or delivery.state in ACKNOWLEDGED)
            return all(acknowledged.values())

    def wait_idle(self, timeout: float) -> bool:
        """Block until no delivery is pending (retries included) or *timeout* seconds pass."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._in_flight or self._timers:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._lock.wait(remaining)
            return True

    def stop(self) -> None:
        """Stop delivering: drop scheduled retries, finish attempts in flight, close connections."""
        with self._lock:
            self._stopping = True
            self._timers.clear()
            self._lock.notify_all()
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._timer_thread.join(timeout=5)
        for session in self._sessions:
            session.close()

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            self._local.session = session
            with self._lock:
                self._sessions.append(session)
        return session

    def _attempt(self, delivery_id: str) -> None:
        try:
            self._try_once(delivery_id)
        except Exception:  # a delivery bug must not kill the pool thread silently
            log.exception("webhook delivery %s crashed", delivery_id)
        finally:
            with self._lock:
                self._in_flight -= 1
                self._lock.notify_all()

    def _try_once(self, delivery_id: str) -> None:
        with self._lock:
            delivery = self._deliveries[delivery_id]
            if self._stopping:
                return
        secrets = self._secrets_of(delivery.endpoint_id)
        if secrets is None:
            with self._lock:
                delivery.state, delivery.next_attempt_at, delivery.body = FAILED, None, b""
            log.info("webhook endpoint %s is deleted or disabled; delivery %s stopped", delivery.endpoint_id,
                     delivery.id)
            return
        started = self._clock()
        timestamp = int(started)
        header = sign(delivery.body, secrets, timestamp=timestamp,
                      v0=compute_signature(delivery.body, V0_SECRET, timestamp))
        attempt = Attempt(number=len(delivery.attempts) + 1, started_at=started, timestamp=timestamp,
                          signatures=len(secrets))
        clock_start = time.monotonic()
        try:
            response = self._session().post(
                delivery.url, data=delivery.body, allow_redirects=False, timeout=self.config.delivery_timeout_s,
                headers={"Content-Type": "application/json; charset=utf-8", "User-Agent": USER_AGENT,
                         "Stripe-Signature": header})
            attempt.status_code = response.status_code
            response.close()
        except requests.RequestException as error:
            attempt.error = f"{type(error).__name__}: {error}"
        attempt.duration_ms = (time.monotonic() - clock_start) * 1000
        self._record(delivery, attempt)

    def _record(self, delivery: Delivery, attempt: Attempt) -> None:
        with self._lock:
            delivery.attempts.append(attempt)
            if attempt.succeeded:
                delivery.state, delivery.next_attempt_at, delivery.body = SUCCEEDED, None, b""
            elif attempt.number >= self.config.retry_max_attempts:
                # Settled deliveries drop their body (resend re-renders the event): memory stays flat
                # under benchmark load.
                delivery.state, delivery.next_attempt_at, delivery.body = FAILED, None, b""
                log.warning("webhook delivery %s of %s gave up after %d attempts", delivery.id,
                            delivery.event_id, attempt.number)
            elif not self._stopping:
                due = self._clock() + self.config.retry_delay_s(attempt.number)
                delivery.next_attempt_at = due
                self._sequence += 1
                heapq.heappush(self._timers, (due, self._sequence, delivery.id))
                self._lock.notify_all()

    def _run_timers(self) -> None:
        with self._lock:
            while not self._stopping:
                if not self._timers:
                    self._lock.wait()
                    continue
                due, _, delivery_id = self._timers[0]
                delay = due - self._clock()
                if delay > 0:
                    self._lock.wait(delay)
                    continue
                heapq.heappop(self._timers)
                self._submit(delivery_id)
