"""A lock in Redis with an expiry: one run of a job at a time across hosts (reconcile, sweep).

Taken with ``SET key token NX PX ttl``; renewed and released only by its holder (compare the token,
then act, in one Lua call), so a run that outlived its expiry cannot release the next run's lock.
A holder that dies leaves the lock to expire.
"""
from __future__ import annotations

import uuid

import redis

from fulfillment.store import KEY_PREFIX, reachable

# KEYS: lock. ARGV: token. Delete the lock only if this token holds it.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

# KEYS: lock. ARGV: token, ttl ms. Extend the lock only if this token holds it.
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""


def lock_key(name: str) -> str:
    return f"{KEY_PREFIX}lock:{name}"


class Lock:
    """A named lock held for at most *ttl_s* seconds unless renewed."""

    def __init__(self, client: redis.Redis, name: str, *, ttl_s: float) -> None:
        self._redis = client
        self.key = lock_key(name)
        self._ttl_ms = max(1, int(ttl_s * 1000))
        self._token = uuid.uuid4().hex
        self._release = client.register_script(_RELEASE)
        self._renew = client.register_script(_RENEW)

    def acquire(self) -> bool:
        """Take the lock; False when another holder has it."""
        with reachable():
            return bool(self._redis.set(self.key, self._token, nx=True, px=self._ttl_ms))

    def renew(self) -> bool:
        """Extend the lock by its ttl from now; False when it was lost (expired, taken by another run)."""
        with reachable():
            return bool(self._renew(keys=[self.key], args=[self._token, self._ttl_ms]))

    def release(self) -> bool:
        """Let the lock go; False when this holder no longer had it."""
        with reachable():
            return bool(self._release(keys=[self.key], args=[self._token]))
