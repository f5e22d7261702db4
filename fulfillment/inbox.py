"""The event inbox: every verified webhook, keyed by event id, with the state of its delivery.

States: ``receiving`` (a delivery claimed it and is enqueueing it) → ``enqueued`` → ``processing``
→ ``processed`` (or ``failed``, dead-lettered); ``enqueue_failed`` when the broker refused it (a redelivery claims it again);
``ignored`` for event types crossfill does not handle. A ``receiving`` claim is a lease: a delivery
that died between claim and enqueue is retaken once the lease has passed.
"""
from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import redis

from fulfillment import defaults
from fulfillment.store import KEY_PREFIX, reachable

STATUSES = ("receiving", "enqueued", "enqueue_failed", "processing", "processed", "failed", "ignored")
#: Claim outcomes.
CLAIMED, DUPLICATE, IN_FLIGHT = "claimed", "duplicate", "in_flight"

# KEYS: event hash, status-set prefix. ARGV: now, lease, ttl, token, type, session_id, body, event_id.
_CLAIM = """
local status = redis.call('HGET', KEYS[1], 'status')
local now = tonumber(ARGV[1])
if status and status ~= 'enqueue_failed' then
  if status == 'receiving' then
    local claimed = tonumber(redis.call('HGET', KEYS[1], 'claimed_at') or '0')
    if now - claimed < tonumber(ARGV[2]) then
      redis.call('HINCRBY', KEYS[1], 'deliveries', 1)
      return {'in_flight', status}
    end
  else
    redis.call('HINCRBY', KEYS[1], 'deliveries', 1)
    return {'duplicate', status}
  end
end
if status then redis.call('SREM', KEYS[2] .. status, ARGV[8]) end
redis.call('HSET', KEYS[1], 'status', 'receiving', 'claimed_at', ARGV[1], 'token', ARGV[4],
           'type', ARGV[5], 'session_id', ARGV[6], 'body', ARGV[7])
redis.call('HSETNX', KEYS[1], 'received_at', ARGV[1])
redis.call('HINCRBY', KEYS[1], 'deliveries', 1)
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3]))
redis.call('SADD', KEYS[2] .. 'receiving', ARGV[8])
return {'claimed', ARGV[4]}
"""

# Move an event from one status to another; ARGV: event_id, new status, now, [required token],
# [allowed current statuses...]. Returns the status it had, or false when the guard refused.
_MOVE = """
local current = redis.call('HGET', KEYS[1], 'status')
if not current then return false end
if ARGV[4] ~= '' and redis.call('HGET', KEYS[1], 'token') ~= ARGV[4] then return false end
local allowed = #ARGV < 5
for i = 5, #ARGV do if ARGV[i] == current then allowed = true end end
if not allowed then return false end
redis.call('SREM', KEYS[2] .. current, ARGV[1])
redis.call('SADD', KEYS[2] .. ARGV[2], ARGV[1])
redis.call('HSET', KEYS[1], 'status', ARGV[2], ARGV[2] .. '_at', ARGV[3])
return current
"""


@dataclass(frozen=True)
class InboxEvent:
    """One event as the inbox holds it."""

    id: str
    type: str
    session_id: str
    status: str
    body: str
    received_at: float
    deliveries: int


def _event_key(event_id: str) -> str:
    return f"{KEY_PREFIX}event:{event_id}"


_STATUS_PREFIX = f"{KEY_PREFIX}inbox:"


class Inbox:
    """Durable record of received events, deduplicated on the event id."""

    def __init__(self, client: redis.Redis, *, lease_s: int = defaults.INBOX_CLAIM_LEASE_S,
                 ttl_s: int = defaults.INBOX_TTL_S) -> None:
        self._redis = client
        self._lease_s = lease_s
        self._ttl_s = ttl_s
        self._claim = client.register_script(_CLAIM)
        self._move = client.register_script(_MOVE)

    def claim(self, event_id: str, event_type: str, session_id: str, body: str,
              *, now: float | None = None) -> tuple[str, str]:
        """Record a delivery of an event and decide whether this delivery should enqueue it.

        Returns:
            ``("claimed", token)`` when this delivery must enqueue it (new, or an earlier enqueue
            failed, or an earlier claim's lease ran out); ``("duplicate", status)`` when it was
            already enqueued or processed; ``("in_flight", "receiving")`` while a concurrent
            delivery holds the claim.

        Raises:
            StoreUnavailable: when Redis cannot be reached; nothing was recorded then.
        """
        stamp = time.time() if now is None else now
        token = uuid.uuid4().hex
        args = [stamp, self._lease_s, self._ttl_s, token, event_type, session_id, body, event_id]
        outcome, detail = self._call(self._claim, event_id, args)
        return str(outcome), str(detail)

    def mark_enqueued(self, event_id: str, token: str) -> bool:
        """Note that this delivery's enqueue succeeded (unless the worker already moved it on)."""
        return self._call(self._move, event_id, [event_id, "enqueued", time.time(), token, "receiving"]) is not None

    def mark_enqueue_failed(self, event_id: str, token: str) -> bool:
        """Note that the enqueue failed, so that the next delivery claims the event again."""
        return self._call(self._move, event_id, [event_id, "enqueue_failed", time.time(), token, "receiving"]) is not None

    def record_ignored(self, event_id: str, event_type: str) -> None:
        """Record a verified event of a type crossfill does not handle."""
        key = _event_key(event_id)
        with reachable(), self._redis.pipeline() as pipe:
            pipe.hsetnx(key, "received_at", time.time())
            pipe.hset(key, mapping={"status": "ignored", "type": event_type, "session_id": ""})
            pipe.hincrby(key, "deliveries", 1)
            pipe.expire(key, self._ttl_s)
            pipe.sadd(_STATUS_PREFIX + "ignored", event_id)
            pipe.execute()

    def move(self, event_id: str, status: str, *, allowed_from: Iterable[str] = ()) -> str | None:
        """Set an event's status; with *allowed_from*, only from one of those. Returns the old status."""
        if status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {status!r}")
        result = self._call(self._move, event_id, [event_id, status, time.time(), "", *allowed_from])
        return None if result is None else str(result)

    def get(self, event_id: str) -> InboxEvent | None:
        """Load an event, or None when the inbox has no such event (never received, or expired)."""
        with reachable():
            fields: dict[str, Any] = self._redis.hgetall(_event_key(event_id))  # type: ignore[assignment]
        if not fields:
            return None
        return InboxEvent(
            id=event_id,
            type=fields.get("type", ""),
            session_id=fields.get("session_id", ""),
            status=fields.get("status", ""),
            body=fields.get("body", ""),
            received_at=float(fields.get("received_at", 0)),
            deliveries=int(fields.get("deliveries", 0)),
        )

    def counts(self) -> dict[str, int]:
        """Number of events in each status.

        Raises:
            StoreUnavailable: when Redis cannot be reached.
        """
        with reachable(), self._redis.pipeline() as pipe:
            for status in STATUSES:
                pipe.scard(_STATUS_PREFIX + status)
            return dict(zip(STATUSES, pipe.execute(), strict=True))

    def _call(self, script: Any, event_id: str, args: list[Any]) -> Any:
        with reachable():
            return script(keys=[_event_key(event_id), _STATUS_PREFIX], args=args)
