"""Idempotency-Key on POST, as Stripe keeps it: the first answer is replayed for the same key.

A key is scoped to the API key that sent it. The same key with other parameters (or another path)
is a 400 ``idempotency_error``; while the first request still runs, a 409 (which clients retry).
Answers of 409 and 429, and injected faults, are not saved, so a retry really runs again.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from simulator import defaults
from simulator.errors import IdempotencyConflict

MAX_KEY_LENGTH = 255  #: Stripe's limit on an Idempotency-Key, characters


@dataclass(frozen=True)
class SavedResponse:
    """The first answer given for a key."""

    status: int
    body: bytes
    request_id: str


@dataclass
class _Entry:
    fingerprint: tuple[str, str, bytes]
    created: float
    response: SavedResponse | None = None  #: None while the first request runs


class IdempotencyCache:
    """Remembers (api key, idempotency key) → first response, for ``ttl_s`` seconds."""

    def __init__(self, ttl_s: float = defaults.IDEMPOTENCY_TTL_S, clock: Callable[[], float] = time.time) -> None:
        self._ttl_s = ttl_s
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: dict[tuple[str, str], _Entry] = {}

    def begin(self, scope: str, key: str, fingerprint: tuple[str, str, bytes]) -> SavedResponse | None:
        """Claim *key* for a request, or return the saved answer to replay.

        Raises:
            IdempotencyConflict: when the key is too long, reused with other params, or in use.
        """
        if len(key) > MAX_KEY_LENGTH:
            raise IdempotencyConflict(f"Idempotency-Key is {len(key)} characters; at most {MAX_KEY_LENGTH} allowed")
        now = self._clock()
        with self._lock:
            entry = self._entries.get((scope, key))
            if entry is not None and now - entry.created > self._ttl_s:
                entry = None
            if entry is None:
                self._entries[(scope, key)] = _Entry(fingerprint=fingerprint, created=now)
                return None
            if entry.fingerprint != fingerprint:
                raise IdempotencyConflict(
                    "Keys for idempotent requests can only be used with the same parameters they were first used "
                    f"with. Try using a key other than {key!r} if you meant to execute a different request.")
            if entry.response is None:
                raise IdempotencyConflict(
                    "There is currently another in-progress request using this Idempotent Key (that probably "
                    "means you submitted twice, and the other request is still going through): "
                    f"{key!r}. Please try again later.", status=409)
            return entry.response

    def finish(self, scope: str, key: str, response: SavedResponse | None) -> None:
        """Save the answer to replay, or (None) release the key so a retry runs afresh."""
        with self._lock:
            entry = self._entries.get((scope, key))
            if entry is None or entry.response is not None:
                return
            if response is None:
                del self._entries[(scope, key)]
            else:
                entry.response = response
