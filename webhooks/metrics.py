"""Prometheus metrics of the receiver, correct across gunicorn's worker processes.

Under gunicorn, ``crossfill web`` sets ``PROMETHEUS_MULTIPROC_DIR`` so that each worker writes its
samples to files there and ``/metrics`` adds them up (prometheus-client's multiprocess mode).
"""
from __future__ import annotations

import os

from collections.abc import Iterator

import redis
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from fulfillment.deadletters import DeadLetters
from fulfillment.errors import StoreUnavailable
from fulfillment.inbox import Inbox
from fulfillment.ledger import Ledger

OUTCOMES = ("accepted", "duplicate", "ignored", "bad_signature", "bad_request", "too_large",
            "unavailable")
LATENCY_BUCKETS_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)


class StateCollector(Collector):
    """The pipeline's state, read from Redis at scrape time: queues, dead letters, inbox, orders, anomalies.

    Workers write all of it to Redis, so the receiver's /metrics shows the whole service.
    """

    def __init__(self, client: redis.Redis, queues: tuple[str, ...]) -> None:
        self._redis = client
        self._queues = queues
        self._inbox, self._ledger, self._dead = Inbox(client), Ledger(client), DeadLetters(client)

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        up = GaugeMetricFamily("crossfill_state_up", "1 when Redis answered this scrape's state queries")
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
        except (redis.RedisError, StoreUnavailable):
            up.add_metric([], 0.0)
            yield up
            return
        up.add_metric([], 1.0)
        yield from (up, depth, dead, inbox, orders, anomalies)


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

    def observe(self, event_type: str, outcome: str, seconds: float) -> None:
        """Count one delivery and its latency."""
        self.webhooks.labels(type=event_type, outcome=outcome).inc()
        self.ack_latency.labels(outcome=outcome).observe(seconds)

    def render(self) -> bytes:
        """The Prometheus text exposition, summed over all worker processes when there are several."""
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            registry = CollectorRegistry()
            MultiProcessCollector(registry)
        else:
            registry = self.registry
        body = generate_latest(registry)
        if self._state is not None:
            state = CollectorRegistry()
            state.register(self._state)
            body += generate_latest(state)
        return body
