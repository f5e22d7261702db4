"""Console sessions, recorded server-side in Redis: a signed cookie alone no longer signs anyone in.

The cookie carries a random session id; Redis keeps, under a digest of it, who signed in. Sign-out
deletes that record, so a cookie saved before it (and the CSRF token in it) is refused afterwards;
the record expires a fixed time after sign-in whatever the browser does (an absolute lifetime, never
extended by activity); and an operator can end every session of a token's name at once (a token
shared by mistake, a person who left) without changing the token.
"""
from __future__ import annotations

import hashlib
import secrets
import time

import redis

from console.settings import SESSION_LIFETIME_S
from fulfillment.store import KEY_PREFIX, reachable

_SESSION = f"{KEY_PREFIX}console:session:"  #: + digest of the session id → hash {name, started}
_BY_NAME = f"{KEY_PREFIX}console:sessions:"  #: + token name → set of session digests


def _digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


class SessionStore:
    """Start, look up and end console sessions; each lives at most *lifetime_s* seconds."""

    def __init__(self, client: redis.Redis, lifetime_s: float = SESSION_LIFETIME_S) -> None:
        self._redis = client
        self._lifetime_ms = max(1, int(lifetime_s * 1000))

    def start(self, name: str) -> str:
        """Record a new session of *name*; its id, for the cookie."""
        session_id = secrets.token_urlsafe(32)
        digest = _digest(session_id)
        with reachable(), self._redis.pipeline() as pipe:
            pipe.hset(_SESSION + digest, mapping={"name": name, "started": f"{time.time():.3f}"})
            pipe.pexpire(_SESSION + digest, self._lifetime_ms)
            pipe.sadd(_BY_NAME + name, digest)
            pipe.pexpire(_BY_NAME + name, self._lifetime_ms)
            pipe.execute()
        return session_id

    def holder(self, session_id: str) -> str | None:
        """The name a live session belongs to; None when it ended, expired or never existed."""
        with reachable():
            name = self._redis.hget(_SESSION + _digest(session_id), "name")
        return None if name is None else str(name)

    def end(self, session_id: str) -> None:
        """End one session (sign-out)."""
        digest = _digest(session_id)
        with reachable():
            name = self._redis.hget(_SESSION + digest, "name")
            with self._redis.pipeline() as pipe:
                pipe.delete(_SESSION + digest)
                if name is not None:
                    pipe.srem(_BY_NAME + str(name), digest)
                pipe.execute()

    def end_all(self, name: str) -> int:
        """End every session of *name*; how many were live."""
        with reachable():
            digests = [str(d) for d in self._redis.smembers(_BY_NAME + name)]
            with self._redis.pipeline() as pipe:
                for digest in digests:
                    pipe.delete(_SESSION + digest)
                pipe.delete(_BY_NAME + name)
                ended = pipe.execute()
        return sum(int(count) for count in ended[:-1])
