"""The tasks now waiting on a retry, so ops can see how many and why (``crossfill status``).

Ops' view only: the task retry path (``worker/retries.py``) notes a task here when it schedules a
retry, with the delay from ``fulfillment/backoff.py``, and clears it when the task succeeds or is
dead-lettered. Celery holds the retry itself; an entry lost here loses nothing but the view.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

import redis

from fulfillment.store import KEY_PREFIX, reachable


@dataclass(frozen=True)
class WaitingRetry:
    """A task waiting to be tried again: what failed, why, and when it runs next."""

    id: str  #: the task's dead-letter id (what it would be filed under if it ran out of time)
    task: str
    args: list[str]
    error: str
    attempts: int
    first_attempt_at: float
    next_attempt_at: float


_RETRIES = f"{KEY_PREFIX}retries"  #: hash: id → JSON of a WaitingRetry
_RETRIES_DUE = f"{KEY_PREFIX}retries:due"  #: sorted set: id by next attempt time


class WaitingRetries:
    """The tasks now waiting on a retry, so ops can see how many and why (``crossfill status``)."""

    def __init__(self, client: redis.Redis) -> None:
        self._redis = client

    def note(self, retry: WaitingRetry) -> None:
        """Record (or update) a task that will be tried again."""
        with reachable(), self._redis.pipeline() as pipe:
            pipe.hset(_RETRIES, retry.id, json.dumps(asdict(retry)))
            pipe.zadd(_RETRIES_DUE, {retry.id: retry.next_attempt_at})
            pipe.execute()

    def clear(self, retry_id: str) -> None:
        """Forget a task that succeeded or was dead-lettered."""
        with reachable(), self._redis.pipeline() as pipe:
            pipe.hdel(_RETRIES, retry_id)
            pipe.zrem(_RETRIES_DUE, retry_id)
            pipe.execute()

    def list(self, limit: int = 1000) -> list[WaitingRetry]:
        """Waiting tasks, the next one due first."""
        with reachable():
            ids: list[str] = self._redis.zrange(_RETRIES_DUE, 0, limit - 1)  # type: ignore[assignment]
            raws: list[Any] = self._redis.hmget(_RETRIES, ids) if ids else []
        return [WaitingRetry(**json.loads(raw)) for raw in raws if raw]

    def summary(self, *, now: float, stale_after_s: float) -> dict[str, Any]:
        """How many tasks wait, by task and by reason (the error's kind), leaving out entries whose
        retry is long overdue (a task replayed or swept by other means leaves such an entry)."""
        waiting = [retry for retry in self.list() if retry.next_attempt_at >= now - stale_after_s]
        by_reason: dict[str, int] = {}
        by_task: dict[str, int] = {}
        for retry in waiting:
            reason = retry.error.split(":", 1)[0]
            by_reason[reason] = by_reason.get(reason, 0) + 1
            by_task[retry.task] = by_task.get(retry.task, 0) + 1
        return {"waiting": len(waiting), "by_task": by_task, "by_reason": by_reason}
