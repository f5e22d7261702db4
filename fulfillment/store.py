"""The Redis connection crossfill's domain uses (inbox, ledger, dead letters), direct or through Sentinel.

With Sentinel (``sentinel://host:port;sentinel://host2:port``, Celery's form) the client asks the
sentinels for the current master on every new connection, and a connection that fails is replaced, so
a process follows a failover by itself. Replication is asynchronous: a write the master acknowledged can still be lost
with it. A write crossfill answers for (an event acknowledged to Stripe, an item marked done) is
therefore followed by ``WAIT numreplicas timeout`` on the same connection, and counts only when
enough replicas hold it (:func:`run_replicated`).
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import islice
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

import redis
from redis.sentinel import Sentinel

from fulfillment import defaults
from fulfillment.errors import NotReplicated, StoreUnavailable

KEY_PREFIX = "crossfill:"  #: every key crossfill writes starts with this (Celery's queues do not)
SENTINEL_SCHEME = "sentinel"  #: ``sentinel://[:password@]host:port[/db][;sentinel://host2:port…]``
SENTINEL_PORT = 26379  #: a sentinel's port when the URL names none

T = TypeVar("T")


@dataclass(frozen=True)
class SentinelURL:
    """What a ``sentinel://`` URL says: the sentinels to ask, and the master's password and database."""

    sentinels: tuple[tuple[str, int], ...]
    password: str | None = None
    db: int = 0


@dataclass(frozen=True)
class Replication:
    """How many replicas must hold a write before crossfill acts on it (``WAIT numreplicas timeout``)."""

    replicas: int = 0  #: 0: the master's reply is enough (a single Redis)
    timeout_ms: int = defaults.REDIS_WAIT_TIMEOUT_MS  #: longest wait for them, milliseconds


def is_sentinel(url: str) -> bool:
    """Whether *url* names sentinels rather than a Redis server."""
    return url.strip().lower().startswith(f"{SENTINEL_SCHEME}://")


def parse_sentinel_url(url: str) -> SentinelURL:
    """The sentinels, password and database of a ``sentinel://`` URL (``;`` between sentinels).

    The first part that carries a password or a database gives it (Celery reads them so too).

    Raises:
        ValueError: a part is not ``sentinel://host[:port][/db]``, or its port or database is not a number.
    """
    sentinels: list[tuple[str, int]] = []
    password: str | None = None
    db: int | None = None
    for part in url.strip().split(";"):
        parts = urlsplit(part.strip())
        if parts.scheme.lower() != SENTINEL_SCHEME or not parts.hostname:
            raise ValueError(f"not a sentinel://host:port URL: {part.strip()!r}")
        sentinels.append((parts.hostname, parts.port or SENTINEL_PORT))  # .port raises ValueError itself
        if password is None and parts.password:
            password = unquote(parts.password)
        path = parts.path.strip("/")
        if path and not path.isdigit():
            raise ValueError(f"the database must be a number, got {path!r}")
        if db is None and path:
            db = int(path)
    return SentinelURL(tuple(sentinels), password, db or 0)


def connect(url: str, *, master_name: str = defaults.REDIS_SENTINEL_MASTER) -> redis.Redis:
    """Open a pooled client with short timeouts, so a dead Redis is noticed within seconds.

    A ``sentinel://`` *url* gives a client of the master *master_name*: its pool asks the sentinels
    for the master's address on every new connection and drops its connections when a reply shows the
    address changed, so a failover costs the commands in flight (connection errors), not a restart.
    """
    timeouts: dict[str, Any] = {"socket_connect_timeout": defaults.REDIS_CONNECT_TIMEOUT_S,
                                "socket_timeout": defaults.REDIS_SOCKET_TIMEOUT_S}
    if not is_sentinel(url):
        return redis.Redis.from_url(url, decode_responses=True, **timeouts)
    parsed = parse_sentinel_url(url)
    sentinel = Sentinel(list(parsed.sentinels), sentinel_kwargs=dict(timeouts), **timeouts)
    client: redis.Redis = sentinel.master_for(master_name, redis_class=redis.Redis, password=parsed.password,
                                              db=parsed.db, decode_responses=True)
    return client


def run_replicated(client: redis.Redis, script: Any, keys: list[str], args: list[Any],
                   replication: Replication) -> Any:
    """Run a registered Lua *script*; with replicas required, then ``WAIT`` for them on the same connection.

    ``WAIT`` counts the replicas that hold every write of its own connection so far, so the script
    and the ``WAIT`` go in one pipeline (one connection). A script that wrote nothing gives ``WAIT``
    nothing to wait for: a script whose outcome is to be vouched for writes even when it changes
    nothing (the ledger's claim of an item already done stamps it).

    Raises:
        NotReplicated: the master ran the script, but fewer replicas than required acknowledged it
            in time; the write may be lost in a failover, so its caller must not act on it yet.
        StoreUnavailable: Redis is unreachable (the write may or may not have happened).
    """
    with reachable():
        if replication.replicas <= 0:
            return script(keys=keys, args=args)
        with client.pipeline(transaction=False) as pipe:
            script(keys=keys, args=args, client=pipe)
            pipe.wait(replication.replicas, replication.timeout_ms)
            result, acknowledged = pipe.execute()
    if int(acknowledged) < replication.replicas:
        raise NotReplicated(f"the write reached {acknowledged} of the {replication.replicas} replica(s) required "
                            f"within {replication.timeout_ms} ms")
    return result


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
