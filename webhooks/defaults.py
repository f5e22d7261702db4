"""The receiver's defaults, with their units."""
from __future__ import annotations

PORT = 8000  #: port of the webhook receiver
METRICS_BIND = "127.0.0.1"  #: address the internal metrics endpoint listens on (never the public one)
METRICS_PORT = 9464  #: port of the internal metrics endpoint (Prometheus' default for exporters of its kind)
SIGNATURE_TOLERANCE_S = 300  #: max clock skew for webhook timestamps, seconds, both directions
MAX_BODY_BYTES = 262_144  #: largest webhook body accepted, bytes
MAX_SIGNATURE_HEADER_BYTES = 4096  #: largest Stripe-Signature header accepted, bytes
RETRY_AFTER_S = 5  #: Retry-After sent with a 503 when a dependency is down, seconds


def web_workers(cpu_count: int) -> int:
    """Default number of gunicorn workers: two per core, plus one (gunicorn's own advice)."""
    return 2 * cpu_count + 1
