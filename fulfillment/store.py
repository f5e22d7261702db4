"""The Redis connection crossfill's domain uses (inbox, ledger, dead letters)."""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from itertools import islice
from typing import TypeVar

import redis

from fulfillment import defaults
from fulfillment.errors import StoreUnavailable

KEY_PREFIX = "crossfill:"  #: every key crossfill writes starts with this (Celery's queues do not)

T = TypeVar("T")


def connect(url: str) -> redis.Redis:
    """Open a pooled client with short timeouts, so a dead Redis is noticed within seconds."""
    return redis.Redis.from_url(
        url,
        socket_connect_timeout=defaults.REDIS_CONNECT_TIMEOUT_S,
        socket_timeout=defaults.REDIS_SOCKET_TIMEOUT_S,
        decode_responses=True,
    )


@contextmanager
def reachable() -> Iterator[None]:
    """Turn any Redis failure inside the block into :class:`StoreUnavailable`, naming its kind."""
    try:
        yield
    except redis.RedisError as error:
        raise StoreUnavailable(f"Redis is unreachable: {type(error).__name__}") from error


def batches(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """*items* in lists of *size* (the last one shorter): one Redis round trip per list."""
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch
