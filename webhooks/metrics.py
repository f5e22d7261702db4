"""Prometheus metrics of the receiver, correct across gunicorn's worker processes.

Under gunicorn, ``crossfill web`` sets ``PROMETHEUS_MULTIPROC_DIR`` so that each worker writes its
samples to files there and ``/metrics`` adds them up (prometheus-client's multiprocess mode). The
public receiver only counts; ``/metrics`` is served inside, on its own port (``webhooks/metrics_server.py``).

``/metrics`` always answers 200: label values come from fixed sets (never from a sender), a metrics
file that cannot be read is left out, and pipeline state that cannot be read shows as
``crossfill_state_up 0``.
"""
from __future__ import annotations

import glob
import logging
import os
import time
from collections.abc import Iterable, Iterator

import redis
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from fulfillment import lateness
from fulfillment.deadletters import DeadLetters
from fulfillment.errors import StoreUnavailable
from fulfillment.events import HANDLED_TYPES
from fulfillment.inbox import Inbox
from fulfillment.ledger import Ledger
from fulfillment.liveness import ALIVE_WITHIN_S, alive_workers, last_reconcile
from fulfillment.report import read_totals
from fulfillment.stats import (
    LIVEMODE_MISMATCH,
    RECONCILE_RECOVERED,
    RECONCILE_RUNS,
    STRIPE_API_CALLS,
    STRIPE_ORDERS_READ,
    STRIPE_RATE_LIMIT_DEFERRED,
    STRIPE_RATE_LIMIT_WAITED_MS,
    STRIPE_RATE_LIMITED,
    SWEEPER_RUNS,
    SWEPT,
    UNKNOWN_VALUES,
    Stats,
)

log = logging.getLogger(__name__)

OUTCOMES = ("accepted", "duplicate", "requeued", "ignored", "bad_signature", "bad_request", "too_large",
            "unavailable")
#: The ``type`` label of every event crossfill does not handle, and of deliveries refused before
#: their type was read. Event types come from the sender: as label values they would have no bound.
OTHER_TYPE = "other"
TYPE_LABELS = (*sorted(HANDLED_TYPES), OTHER_TYPE)
LATENCY_BUCKETS_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)


class StateCollector(Collector):
    """The pipeline's state, read from Redis at scrape time: queues, dead letters, inbox, orders, anomalies.

    Workers write all of it to Redis, so the one /metrics shows the whole service.
    """

    def __init__(self, client: redis.Redis, queues: tuple[str, ...]) -> None:
        self._redis = client
        self._queues = queues
        self._inbox, self._ledger, self._dead = Inbox(client), Ledger(client), DeadLetters(client)
        self._stats = Stats(client)

    def collect(self) -> Iterator[Metric]:
        try:
            depth = GaugeMetricFamily("crossfill_queue_depth", "Tasks waiting in a Celery queue", labels=["queue"])
            for queue in self._queues:
                depth.add_metric([queue], float(self._redis.llen(queue)))
            dead = GaugeMetricFamily("crossfill_dead_letters", "Tasks in the dead-letter queue",
                                     value=float(self._dead.count()))
            inbox = GaugeMetricFamily("crossfill_inbox_events", "Events in the inbox by status", labels=["status"])
            for status, count in self._inbox.counts().items():
                inbox.add_metric([status], float(count))
            orders = GaugeMetricFamily("crossfill_orders", "Orders by status", labels=["status"])
            for status, count in self._ledger.counts().items():
                orders.add_metric([status], float(count))
            anomalies = CounterMetricFamily("crossfill_cross_sell_anomalies",
                                            "Cross-sell items paid for although they break a cross-sell rule",
                                            labels=["anomaly"])
            for name, count in sorted(self._ledger.anomaly_counts().items()):
                anomalies.add_metric([name], float(count))
            counters = list(self._counters())
            extra = [*_liveness_and_report(self._redis), *_lateness(self._redis, self._queues)]
        except (redis.RedisError, StoreUnavailable):
            yield _state_up(0.0)
            return
        yield from (_state_up(1.0), depth, dead, inbox, orders, anomalies)
        yield from counters
        yield from extra

    def _counters(self) -> Iterator[CounterMetricFamily]:
        """The workers' counters (fulfillment/stats.py)."""
        counts = self._stats.read_all()
        for counter, label, help_text in (
            (STRIPE_API_CALLS, "endpoint", "Requests sent to the Stripe API, by endpoint"),
            (STRIPE_RATE_LIMITED, "endpoint", "429s the Stripe API answered, by endpoint (the shared limiter keeps "
                                              "this near 0)"),
            (STRIPE_RATE_LIMIT_DEFERRED, "endpoint", "Stripe calls put off (their task retried) because the "
                                                     "rate limiter's next slot was too far away"),
            (STRIPE_ORDERS_READ, None, "Checkout Sessions read, one per event processed (API calls per order = "
                                       "crossfill_stripe_api_calls_total / this)"),
            (UNKNOWN_VALUES, "field", "Values of an open Stripe enum that this version does not name"),
            (LIVEMODE_MISMATCH, "where", "Events ignored because their livemode is not the API key's mode"),
            (RECONCILE_RUNS, None, "Reconciliation runs completed"),
            (RECONCILE_RECOVERED, "kind", "Events recorded (events) and paid sessions fulfilled (sessions) by "
                                          "reconciliation: what webhooks never brought"),
            (SWEEPER_RUNS, None, "Sweeps of stuck work completed"),
            (SWEPT, "kind", "Work found stuck with its message lost and sent again: events requeued, items "
                            "re-dispatched, orders found paid on a re-read"),
        ):
            family = CounterMetricFamily(f"crossfill_{counter}", help_text, labels=[label] if label else None)
            for name, count in sorted(counts.get(counter, {}).items()):
                family.add_metric([name] if label else [], float(count))
            yield family
        waited = CounterMetricFamily("crossfill_stripe_rate_limit_wait_seconds", "Time Stripe calls waited for "
                                     "their slot under the shared rate limiter, by endpoint", labels=["endpoint"])
        for name, milliseconds in sorted(counts.get(STRIPE_RATE_LIMIT_WAITED_MS, {}).items()):
            waited.add_metric([name], milliseconds / 1000)
        yield waited


def _liveness_and_report(client: redis.Redis) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
    """Live workers (heartbeats), the last good reconciliation, and the cross-sell report's totals."""
    yield GaugeMetricFamily("crossfill_workers_alive",
                            f"Workers whose heartbeat is under {ALIVE_WITHIN_S:.0f} s old",
                            value=float(len(alive_workers(client))))
    last = last_reconcile(client)
    if last is not None:
        yield GaugeMetricFamily("crossfill_reconcile_last_success_timestamp_seconds",
                                "Unix time of the last successful reconciliation", value=last)
    labels = ["account", "product"]
    paid = CounterMetricFamily("crossfill_cross_sell_paid_orders", "Fulfilled orders of a product offering a "
                               "cross-sell", labels=labels)
    took = CounterMetricFamily("crossfill_cross_sell_attached_orders", "Those orders that took the cross-sell",
                               labels=labels)
    revenue = CounterMetricFamily("crossfill_cross_sell_revenue_minor_units", "Cross-sell revenue, in the "
                                  "currency's minor unit", labels=[*labels, "currency"])
    for account, product, figure, count in read_totals(client):
        name, _, currency = figure.partition(":")
        if name == "paid_orders":
            paid.add_metric([account, product], float(count))
        elif name == "orders_with_cross_sell":
            took.add_metric([account, product], float(count))
        elif name == "cross_sell_revenue":
            revenue.add_metric([account, product, currency], float(count))
    yield from (paid, took, revenue)


def _lateness(client: redis.Redis, queues: tuple[str, ...]) -> Iterator[GaugeMetricFamily | HistogramMetricFamily]:
    """How late fulfillment is (fulfillment/lateness.py): lag of items done, oldest unfulfilled, oldest waiting."""
    lag = lateness.lag_histogram(client)
    yield HistogramMetricFamily("crossfill_fulfillment_lag_seconds", "From the event that showed an order paid "
                                "to each of its items done", buckets=lag.cumulative(), sum_value=lag.total)
    oldest, now = lateness.oldest_unfulfilled(client), time.time()
    yield GaugeMetricFamily("crossfill_oldest_unfulfilled_seconds", "Age of the oldest paid order with items "
                            "not yet done (0: none)", value=0.0 if oldest is None else oldest.age(now))
    waiting = GaugeMetricFamily("crossfill_queue_oldest_message_seconds", "Age of the message a queue hands out "
                                "next (0: empty)", labels=["queue"])
    for queue, age in lateness.oldest_waiting(client, queues, now=now).items():
        waiting.add_metric([queue], age)
    yield waiting


class ReceiverMetrics:
    """The receiver's counters and its receive-to-ack latency histogram, in a registry of their own."""

    def __init__(self, state: Collector | None = None) -> None:
        self._state = state
        self.registry = CollectorRegistry(auto_describe=True)
        self.webhooks = Counter(
            "crossfill_webhooks", "Webhook deliveries by event type and outcome",
            ["type", "outcome"], registry=self.registry,
        )
        self.ack_latency = Histogram(
            "crossfill_webhook_ack_seconds", "Time from receiving a webhook to answering it",
            ["outcome"], buckets=LATENCY_BUCKETS_S, registry=self.registry,
        )

    def observe(self, event_type: str | None, outcome: str, seconds: float) -> None:
        """Count one delivery and its latency; *event_type* is None when it was refused unread.

        Raises:
            ValueError: when *outcome* is not one of :data:`OUTCOMES` (a bug, never input).
        """
        if outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {OUTCOMES}, got {outcome!r}")
        self.webhooks.labels(type=type_label(event_type), outcome=outcome).inc()
        self.ack_latency.labels(outcome=outcome).observe(seconds)

    def render(self) -> bytes:
        """The Prometheus text exposition, summed over all worker processes when there are several.

        Never raises: what cannot be read is left out (and logged), or shown as ``crossfill_state_up 0``.
        """
        directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        if directory:
            registry = CollectorRegistry()
            registry.register(MultiProcessFiles(directory))
        else:
            registry = self.registry
        try:
            body = generate_latest(registry)
        except Exception:  # noqa: BLE001 - /metrics must answer; the log keeps what went wrong
            log.exception("the receiver's counters could not be rendered; /metrics shows the rest")
            body = b""
        return body + (render_state(self._state) if self._state is not None else b"")


def render_state(collector: Collector) -> bytes:
    """The exposition of the pipeline's state (a :class:`StateCollector`); never raises."""
    state = CollectorRegistry()
    state.register(collector)
    try:
        return generate_latest(state)
    except Exception:  # noqa: BLE001 - a value in Redis that crossfill does not write (not a number, not text)
        log.exception("pipeline state could not be read for /metrics; crossfill_state_up 0")
        return _exposition(_state_up(0.0))


def type_label(event_type: str | None) -> str:
    """The ``type`` label for a delivery of *event_type*: the type itself when handled, else ``other``."""
    return event_type if event_type in HANDLED_TYPES else OTHER_TYPE


class MultiProcessFiles(Collector):
    """The samples gunicorn's workers wrote to *directory*, summed; unreadable files and labels left out.

    prometheus-client's own :class:`MultiProcessCollector` fails the whole scrape on one torn file
    (a worker killed mid-write) or one label that does not encode to UTF-8, until the files are removed.
    """

    def __init__(self, directory: str) -> None:
        self._directory = directory

    def collect(self) -> Iterator[Metric]:
        files = sorted(glob.glob(os.path.join(self._directory, "*.db")))
        for metric in self._merge(files):
            metric.samples = [sample for sample in metric.samples if _is_text(sample.labels.values())]
            yield metric

    @staticmethod
    def _merge(files: list[str]) -> Iterable[Metric]:
        try:
            return MultiProcessCollector.merge(files, accumulate=True)
        except Exception:  # noqa: BLE001 - a file's bytes are not ours to trust; find the bad ones
            readable = []
            for path in files:
                try:
                    MultiProcessCollector.merge([path], accumulate=True)
                except Exception as error:  # noqa: BLE001
                    log.warning("metrics file %s is unreadable and left out of /metrics: %r", path, error)
                else:
                    readable.append(path)
            return MultiProcessCollector.merge(readable, accumulate=True)


def _is_text(values: Iterable[str]) -> bool:
    try:
        for value in values:
            value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _state_up(value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily("crossfill_state_up", "1 when Redis answered this scrape's state queries",
                             value=value)


class _Families(Collector):
    """Metric families already built, as a collector."""

    def __init__(self, *families: Metric) -> None:
        self._families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self._families)


def _exposition(*families: Metric) -> bytes:
    registry = CollectorRegistry()
    registry.register(_Families(*families))
    return generate_latest(registry)
