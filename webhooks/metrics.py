"""Prometheus metrics of the receiver, correct across gunicorn's worker processes.

Under gunicorn, ``crossfill web`` sets ``PROMETHEUS_MULTIPROC_DIR`` so that each worker writes its
samples to files there and ``/metrics`` adds them up (prometheus-client's multiprocess mode).
"""
from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

OUTCOMES = ("accepted", "duplicate", "in_flight", "ignored", "bad_signature", "bad_request", "too_large",
            "unavailable")
LATENCY_BUCKETS_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)


class ReceiverMetrics:
    """The receiver's counters and its receive-to-ack latency histogram, in a registry of their own."""

    def __init__(self) -> None:
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
            return generate_latest(registry)
        return generate_latest(self.registry)
