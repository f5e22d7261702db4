"""Signs of life in Redis: worker heartbeats and the last successful reconciliation.

Workers write a heartbeat (their host name, scored by time) on each of Celery's beats (every 2 s);
the console and ``/metrics`` read the names seen recently, which costs one sorted-set read instead
of a broadcast ping.
The reconcile job writes :data:`RECONCILE_LAST_SUCCESS` (unix seconds, as a string) when a run
succeeds.
"""
from __future__ import annotations

import time

import redis

from fulfillment.store import KEY_PREFIX, reachable

WORKERS = f"{KEY_PREFIX}workers"  #: sorted set: worker host name by its last heartbeat, unix seconds
RECONCILE_LAST_SUCCESS = f"{KEY_PREFIX}reconcile:last_success"  #: unix seconds of the last good run
ALIVE_WITHIN_S = 30.0  #: a worker whose last heartbeat is older than this counts as gone, seconds


def beat(client: redis.Redis, hostname: str, *, now: float | None = None) -> None:
    """Record that *hostname* is alive now, and forget workers silent for a day."""
    stamp = time.time() if now is None else now
    with reachable(), client.pipeline(transaction=False) as pipe:
        pipe.zadd(WORKERS, {hostname: stamp})
        pipe.zremrangebyscore(WORKERS, "-inf", stamp - 86_400)
        pipe.execute()


def alive_workers(client: redis.Redis, *, now: float | None = None, within_s: float = ALIVE_WITHIN_S) -> list[str]:
    """Host names of the workers that beat within *within_s* seconds."""
    stamp = time.time() if now is None else now
    with reachable():
        names: list[str] = client.zrangebyscore(WORKERS, stamp - within_s, "+inf")  # type: ignore[assignment]
    return sorted(names)


def last_reconcile(client: redis.Redis) -> float | None:
    """Unix time of the last successful reconciliation, or None when there was none."""
    with reachable():
        raw = client.get(RECONCILE_LAST_SUCCESS)
    try:
        return float(raw) if raw else None
    except ValueError:
        return None
