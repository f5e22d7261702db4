"""The dead-letter queue: every task that failed for good, with why, kept until it is replayed.

Entries are keyed by what failed (the message contract names the ids), so the same failure recorded
twice is one entry, with its attempts and times updated.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import redis

from fulfillment.store import KEY_PREFIX, reachable

_ENTRIES = f"{KEY_PREFIX}dlq"  #: hash: entry id → JSON
_ORDER = f"{KEY_PREFIX}dlq:index"  #: sorted set: entry id by time of (last) failure


@dataclass(frozen=True)
class DeadLetter:
    """One task that will not be retried any more."""

    id: str
    task: str  #: the task's name, e.g. fulfill_item
    args: list[str]
    error: str
    reason: str  #: "permanent" (retrying cannot help) or "exhausted" (out of attempts)
    attempts: int
    first_failed_at: float = field(default_factory=time.time)
    failed_at: float = field(default_factory=time.time)


class DeadLetters:
    """The dead-letter queue, in Redis."""

    def __init__(self, client: redis.Redis) -> None:
        self._redis = client

    def add(self, key: str, task: str, args: list[str], error: str, *, reason: str, attempts: int) -> DeadLetter:
        """Record a task that failed for good, under its id (``messaging.contract.dead_letter_id``)."""
        now = time.time()
        previous = self.get(key)
        letter = DeadLetter(id=key, task=task, args=list(args), error=error[:2000], reason=reason,
                            attempts=attempts, first_failed_at=previous.first_failed_at if previous else now,
                            failed_at=now)
        with reachable(), self._redis.pipeline() as pipe:
            pipe.hset(_ENTRIES, key, json.dumps(asdict(letter)))
            pipe.zadd(_ORDER, {key: now})
            pipe.execute()
        return letter

    def get(self, letter_id: str) -> DeadLetter | None:
        """One entry, or None."""
        with reachable():
            raw = self._redis.hget(_ENTRIES, letter_id)
        return DeadLetter(**json.loads(raw)) if raw else None

    def list(self, limit: int = 1000) -> list[DeadLetter]:
        """Entries, oldest failure first."""
        with reachable():
            ids: list[str] = self._redis.zrange(_ORDER, 0, limit - 1)  # type: ignore[assignment]
            if not ids:
                return []
            raws: list[Any] = self._redis.hmget(_ENTRIES, ids)
        return [DeadLetter(**json.loads(raw)) for raw in raws if raw]

    def remove(self, letter_id: str) -> bool:
        """Drop an entry (after a replay); False when there was none."""
        with reachable(), self._redis.pipeline() as pipe:
            pipe.hdel(_ENTRIES, letter_id)
            pipe.zrem(_ORDER, letter_id)
            removed, _ = pipe.execute()
        return bool(removed)

    def count(self) -> int:
        with reachable():
            return int(self._redis.zcard(_ORDER))

