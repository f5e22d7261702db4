"""The Redis connection crossfill's domain uses (inbox, ledger, dead letters)."""
from __future__ import annotations

import redis

from fulfillment import defaults

KEY_PREFIX = "crossfill:"  #: every key crossfill writes starts with this (Celery's queues do not)


def connect(url: str) -> redis.Redis:
    """Open a pooled client with short timeouts, so a dead Redis is noticed within seconds."""
    return redis.Redis.from_url(
        url,
        socket_connect_timeout=defaults.REDIS_CONNECT_TIMEOUT_S,
        socket_timeout=defaults.REDIS_SOCKET_TIMEOUT_S,
        decode_responses=True,
    )
