"""The event inbox: every verified webhook, keyed by event id, with the state of its delivery.

States: ``enqueued`` → ``processing`` → ``processed`` (or ``failed``, dead-lettered), and ``ignored``
for event types crossfill does not handle. A new event is recorded and its task message pushed onto
the queue in ONE Lua script: either both happen or neither does, so there is no state in between to
lose (a delivery that failed left nothing behind, and the sender's retry enqueues the event) and no
window in which two deliveries of one event can both enqueue it.

An event left ``enqueued`` or ``processing`` past the stuck threshold has lost its message (kombu's
Redis transport takes a message with BRPOP before it records it as unacked: a worker killed in
between loses it). A new delivery of such an event pushes its message again (``requeued``), in the
same script, instead of answering ``duplicate``; the sweeper does the same for events nobody resends.

A thin notification and its snapshot twin announce one change under two event ids (a platform
migrating runs a snapshot endpoint and a thin destination side by side). Both carry the snapshot
event's id: the snapshot event as its ``id``, the thin one as ``snapshot_event``. That id is the
*change*: the record script keeps ``change:<snapshot id>`` → the first event recorded for it, and a
twin arriving after it (in any order, concurrently too: the script is atomic) is recorded as
``ignored`` with reason ``twin`` and the first event's id, and nothing is queued: one read of the
session instead of two. The ledger's per-item claim keeps one effect per item whatever gets through.
"""
from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import redis

from fulfillment import defaults
from fulfillment.records import InboxEvent, livemode_of
from fulfillment.store import KEY_PREFIX, Replication, reachable, run_replicated

STATUSES = ("enqueued", "processing", "processed", "failed", "ignored")
#: Why an event is ignored when nothing else is said: crossfill does not handle its type.
UNHANDLED_TYPE = "unhandled_type"
#: Why an event is ignored when its twin (the same change, snapshot or thin) was recorded first.
TWIN = "twin"
#: Outcomes of :meth:`Inbox.record`.
ENQUEUED, DUPLICATE, REQUEUED, TWINNED = "enqueued", "duplicate", "requeued", "twin"
#: The statuses in which an event waits on a message (queued, or held by a worker).
IN_FLIGHT = ("enqueued", "processing")

# Shared Lua: push the message of an event that has been enqueued or processing for at least
# `stuck_after` seconds since its last move, and make it enqueued again (moved now). Returns the
# status it had, or false when it is not stuck.
_LUA_REQUEUE = """
local function requeue_if_stuck(key, prefix, queue, event_id, message, now, stuck_after)
  local status = redis.call('HGET', key, 'status')
  if status ~= 'enqueued' and status ~= 'processing' then return false end
  local received = redis.call('HGET', key, 'received_at') or tostring(now)
  local moved = tonumber(redis.call('HGET', key, status .. '_at') or received) or 0
  if now - moved < stuck_after then return false end
  redis.call('LPUSH', queue, message)
  redis.call('ZREM', prefix .. status, event_id)
  redis.call('ZADD', prefix .. 'enqueued', received, event_id)
  redis.call('HSET', key, 'status', 'enqueued', 'enqueued_at', tostring(now))
  redis.call('HINCRBY', key, 'requeued', 1)
  return status
end
"""

# KEYS: event hash, status-set prefix, queue list, and optionally the change key (change:<snapshot
# event id>). ARGV: now, ttl, type, session_id, body, event_id, message, account ("" for the
# platform's own; a Connect event's acct_... otherwise, kept only then), stuck_after seconds (0: never
# requeue), livemode ("true", "false", or "" when the event does not say). The push comes first: if
# Redis refuses it, the script stops before recording anything.
# With a change key naming another event (this one's twin came first), the event is recorded ignored
# (reason 'twin') and nothing is pushed: {'twin', <first event id>}.
_RECORD = _LUA_REQUEUE + """
local status = redis.call('HGET', KEYS[1], 'status')
if status then
  redis.call('HINCRBY', KEYS[1], 'deliveries', 1)
  local stuck_after = tonumber(ARGV[9] or '0') or 0
  if stuck_after > 0 then
    local was = requeue_if_stuck(KEYS[1], KEYS[2], KEYS[3], ARGV[6], ARGV[7], tonumber(ARGV[1]), stuck_after)
    if was then
      redis.call('EXPIRE', KEYS[1], tonumber(ARGV[2]))
      return {'requeued', was}
    end
  end
  return {'duplicate', status}
end
if KEYS[4] then
  local first = redis.call('GET', KEYS[4])
  if first and first ~= ARGV[6] then
    redis.call('HSET', KEYS[1], 'status', 'ignored', 'type', ARGV[3], 'session_id', ARGV[4], 'reason', 'twin',
               'twin', first, 'received_at', ARGV[1], 'deliveries', 1)
    if ARGV[8] and ARGV[8] ~= '' then redis.call('HSET', KEYS[1], 'account', ARGV[8]) end
    if ARGV[10] and ARGV[10] ~= '' then redis.call('HSET', KEYS[1], 'livemode', ARGV[10]) end
    redis.call('EXPIRE', KEYS[1], tonumber(ARGV[2]))
    redis.call('ZADD', KEYS[2] .. 'ignored', ARGV[1], ARGV[6])
    return {'twin', first}
  end
  redis.call('SET', KEYS[4], ARGV[6], 'EX', tonumber(ARGV[2]))
end
redis.call('LPUSH', KEYS[3], ARGV[7])
redis.call('HSET', KEYS[1], 'status', 'enqueued', 'type', ARGV[3], 'session_id', ARGV[4], 'body', ARGV[5],
           'received_at', ARGV[1], 'enqueued_at', ARGV[1], 'deliveries', 1)
if ARGV[8] and ARGV[8] ~= '' then redis.call('HSET', KEYS[1], 'account', ARGV[8]) end
if ARGV[10] and ARGV[10] ~= '' then redis.call('HSET', KEYS[1], 'livemode', ARGV[10]) end
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[2]))
redis.call('ZADD', KEYS[2] .. 'enqueued', ARGV[1], ARGV[6])
-- The status index is scored by receipt time: drop what has expired from the inbox itself.
redis.call('ZREMRANGEBYSCORE', KEYS[2] .. 'enqueued', '-inf', tonumber(ARGV[1]) - tonumber(ARGV[2]))
return {'enqueued', 'enqueued'}
"""

# Move an event from one status to another; ARGV: event_id, new status, now, ttl, [allowed current
# statuses...]. Returns the status it had, or false when the guard refused.
_MOVE = """
local current = redis.call('HGET', KEYS[1], 'status')
if not current then return false end
local allowed = #ARGV < 5
for i = 5, #ARGV do if ARGV[i] == current then allowed = true end end
if not allowed then return false end
local received = redis.call('HGET', KEYS[1], 'received_at') or ARGV[3]
redis.call('ZREM', KEYS[2] .. current, ARGV[1])
redis.call('ZADD', KEYS[2] .. ARGV[2], received, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2] .. ARGV[2], '-inf', tonumber(ARGV[3]) - tonumber(ARGV[4]))
redis.call('HSET', KEYS[1], 'status', ARGV[2], ARGV[2] .. '_at', ARGV[3])
return current
"""

# KEYS: event hash, status-set prefix, queue list. ARGV: event_id, message, now, stuck_after.
_REQUEUE = _LUA_REQUEUE + """
return requeue_if_stuck(KEYS[1], KEYS[2], KEYS[3], ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]))
"""

# A replay (CLI, console, a dead letter): push the message of an event the inbox holds and make it
# enqueued again, in one call. KEYS: event hash, status-set prefix, queue list. ARGV: event_id,
# message, now. Returns the status it had; false when the event is unknown, or 'ignored' (nothing
# pushed: an ignored event is never fulfilled by a replay).
_REPLAY = """
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return false end
if status == 'ignored' then return status end
redis.call('LPUSH', KEYS[3], ARGV[2])
local received = redis.call('HGET', KEYS[1], 'received_at') or ARGV[3]
redis.call('ZREM', KEYS[2] .. status, ARGV[1])
redis.call('ZADD', KEYS[2] .. 'enqueued', received, ARGV[1])
redis.call('HSET', KEYS[1], 'status', 'enqueued', 'enqueued_at', ARGV[3])
return status
"""


# Shared Lua: a waiting event (its fields f = status, type, account, session_id, received_at) becomes
# processing, held by a batch until `held_until`; its id, type, session and body are appended to `out`.
_LUA_CLAIM_HELD = """
local function claim_held(prefix, key, id, f, now, held_until, out)
  redis.call('ZREM', prefix .. 'enqueued', id)
  redis.call('ZADD', prefix .. 'processing', f[5] or now, id)
  redis.call('HSET', key, 'status', 'processing', 'processing_at', now, 'batch_until', held_until)
  table.insert(out, id)
  table.insert(out, f[2])
  table.insert(out, f[4])
  table.insert(out, redis.call('HGET', key, 'body') or '')
end
"""

# Take an event for processing and, with it, other events of the same account waiting behind it (a
# batch: their sessions are read together). KEYS: status-set prefix, the taken event's hash.
# ARGV: taken event id, now, ttl, account ("" = the platform's), most others to claim, how many waiting
# events to look through (oldest first), claim ends (unix seconds), types a batch may take...
# The taken event becomes processing as _MOVE makes it; each claimed one becomes processing with
# `batch_until` set (its own message, when a worker takes it, waits for that or sees it processed).
# Returns {the taken event's old status or false, id, type, session_id, body, id, type, ...}.
_CLAIM = _LUA_CLAIM_HELD + """
local prefix, now, ttl = KEYS[1], ARGV[2], tonumber(ARGV[3])
local current = redis.call('HGET', KEYS[2], 'status')
local out = {false}
if not current then return out end
local received = redis.call('HGET', KEYS[2], 'received_at') or now
redis.call('ZREM', prefix .. current, ARGV[1])
redis.call('ZADD', prefix .. 'processing', received, ARGV[1])
redis.call('ZREMRANGEBYSCORE', prefix .. 'processing', '-inf', tonumber(now) - ttl)
redis.call('HSET', KEYS[2], 'status', 'processing', 'processing_at', now)
redis.call('HDEL', KEYS[2], 'batch_until')
out[1] = current
if redis.call('HEXISTS', KEYS[2], 'read_alone') == 1 then return out end
local most = tonumber(ARGV[5])
if most <= 0 then return out end
local types = {}
for i = 8, #ARGV do types[ARGV[i]] = true end
local claimed = 0
for _, id in ipairs(redis.call('ZRANGE', prefix .. 'enqueued', 0, tonumber(ARGV[6]) - 1)) do
  if id ~= ARGV[1] then
    local key = '""" + KEY_PREFIX + """event:' .. id
    local f = redis.call('HMGET', key, 'status', 'type', 'account', 'session_id', 'received_at', 'read_alone')
    if f[1] == 'enqueued' and types[f[2]] and (f[3] or '') == ARGV[4] and f[4] and f[4] ~= '' and not f[6] then
      claim_held(prefix, key, id, f, now, ARGV[7], out)
      claimed = claimed + 1
      if claimed >= most then break end
    end
  end
end
return out
"""


# Claim the waiting events of some sessions (those on a page a batch just read). KEYS: status-set
# prefix. ARGV: now, account ("" = the platform's), claim ends, how many waiting events to look through,
# number of types, types..., session ids... Claimed as _CLAIM claims; returns {id, type, session_id, body, ...}.
_CLAIM_SESSIONS = _LUA_CLAIM_HELD + """
local prefix, now = KEYS[1], ARGV[1]
local ntypes = tonumber(ARGV[5])
local types, sessions = {}, {}
for i = 6, 5 + ntypes do types[ARGV[i]] = true end
for i = 6 + ntypes, #ARGV do sessions[ARGV[i]] = true end
local out = {}
for _, id in ipairs(redis.call('ZRANGE', prefix .. 'enqueued', 0, tonumber(ARGV[4]) - 1)) do
  local key = '""" + KEY_PREFIX + """event:' .. id
  local f = redis.call('HMGET', key, 'status', 'type', 'account', 'session_id', 'received_at')
  if f[1] == 'enqueued' and types[f[2]] and (f[3] or '') == ARGV[2] and f[4] and sessions[f[4]] then
    claim_held(prefix, key, id, f, now, ARGV[3], out)
  end
end
return out
"""


@dataclass(frozen=True)
class Claimed:
    """A waiting event a batch took: read its session with the batch's, then decide it."""

    id: str
    type: str
    session_id: str
    body: str


def _event_key(event_id: str) -> str:
    return f"{KEY_PREFIX}event:{event_id}"


def _change_key(snapshot_event_id: str) -> str:
    return f"{KEY_PREFIX}change:{snapshot_event_id}"


_STATUS_PREFIX = f"{KEY_PREFIX}inbox:"  #: sorted sets per status: event id scored by receipt time
_FLAGS = {True: "true", False: "false"}  #: how the ``livemode`` field is stored
_MODES = {"true": True, "false": False}


class Inbox:
    """Durable record of received events, deduplicated on the event id."""

    def __init__(self, client: redis.Redis, *, ttl_s: float = defaults.RETENTION_S, stuck_after_s: float = 0,
                 replication: Replication = Replication()) -> None:
        """*ttl_s*: how long an event is kept after its last delivery (the retention); *stuck_after_s*:
        a delivery of an event in flight that long pushes its message again (0: never); *replication*:
        the replicas a recorded delivery must reach before :meth:`record` returns (under Sentinel)."""
        self._redis = client
        self._replication = replication
        self._ttl_s = int(ttl_s)
        self._stuck_after_s = stuck_after_s
        self._record = client.register_script(_RECORD)
        self._move = client.register_script(_MOVE)
        self._requeue = client.register_script(_REQUEUE)
        self._replay = client.register_script(_REPLAY)
        self._claim = client.register_script(_CLAIM)
        self._claim_sessions = client.register_script(_CLAIM_SESSIONS)

    def record(self, event_id: str, event_type: str, session_id: str, body: str, *, queue: str, message: str,
               account: str | None = None, livemode: bool | None = None, change: str | None = None,
               now: float | None = None) -> tuple[str, str]:
        """Record a delivery of an event; when the event is new, push *message* onto the list *queue*.

        *account* is the connected account of a Connect event (its ``account`` field): the worker
        reads the session as that account (``Stripe-Account``). *livemode* is the event's ``livemode``;
        when not given, it is read from *body* here, once, and kept as a field of the record.

        *change* is the snapshot event id the event announces (its own id for a snapshot event, a thin
        notification's ``snapshot_event``): of the twins naming one change, only the first is queued.

        Both happen in one atomic Redis call, so concurrent deliveries of one event enqueue it once.

        Returns:
            ``("enqueued", "enqueued")`` for a new event; ``("duplicate", status)`` for one already
            recorded (its delivery count goes up); ``("requeued", status)`` for one recorded but stuck
            in flight past the stuck threshold, whose *message* was pushed again; ``("twin", first id)``
            for one whose twin was recorded first (recorded ``ignored``, nothing pushed).

        Every outcome writes (a duplicate counts its delivery), so with replicas required it returns
        only once they hold the event and its message: the sender's 200 never outlives a failover.

        Raises:
            NotReplicated: recorded on the master, but not yet on enough replicas; answer so that the
                sender retries (its retry is a duplicate, returned once the replicas hold it).
            StoreUnavailable: when Redis cannot be reached or refuses; nothing was recorded then.
        """
        stamp = time.time() if now is None else now
        mode = livemode_of(body) if livemode is None else livemode
        args: list[Any] = [stamp, self._ttl_s, event_type, session_id, body, event_id, message, account or "",
                           self._stuck_after_s, "" if mode is None else _FLAGS[mode]]
        keys = [_event_key(event_id), _STATUS_PREFIX, queue]
        if change:
            keys.append(_change_key(change))
        outcome, detail = run_replicated(self._redis, self._record, keys, args, self._replication)
        return str(outcome), str(detail)

    def record_ignored(self, event_id: str, event_type: str, *, reason: str = UNHANDLED_TYPE,
                       session_id: str = "") -> None:
        """Record a verified event crossfill does not act on, and why (by default: its type is not handled);
        *session_id* when the event names one (a handled type of the other mode)."""
        key, now = _event_key(event_id), time.time()
        with reachable(), self._redis.pipeline() as pipe:
            pipe.hsetnx(key, "received_at", now)
            pipe.hset(key, mapping={"status": "ignored", "type": event_type, "session_id": session_id,
                                    "reason": reason})
            pipe.hincrby(key, "deliveries", 1)
            pipe.expire(key, self._ttl_s)
            pipe.zadd(_STATUS_PREFIX + "ignored", {event_id: now}, nx=True)
            pipe.zremrangebyscore(_STATUS_PREFIX + "ignored", "-inf", now - self._ttl_s)
            pipe.execute()

    def move(self, event_id: str, status: str, *, allowed_from: Iterable[str] = ()) -> str | None:
        """Set an event's status; with *allowed_from*, only from one of those. Returns the old status."""
        if status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {status!r}")
        result = self._call(self._move, event_id, [event_id, status, time.time(), self._ttl_s, *allowed_from])
        return None if result is None else str(result)

    def ignore(self, event_id: str, reason: str) -> str | None:
        """Move a recorded event to ``ignored`` with *reason* (the worker's gates). Returns the old status."""
        old = self.move(event_id, "ignored")
        if old is not None:
            with reachable():
                self._redis.hset(_event_key(event_id), "reason", reason)
        return old

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
            account=fields.get("account") or None,
            reason=fields.get("reason", ""),
            # Events recorded before the inbox kept livemode as a field: read it from the body.
            livemode=_MODES.get(fields["livemode"]) if "livemode" in fields else livemode_of(fields.get("body", "")),
            twin=fields.get("twin") or None,
            batch_until=float(fields.get("batch_until") or 0),
            read_alone=bool(fields.get("read_alone")),
        )

    def take(self, event_id: str, *, account: str | None = None, batch: int = 0, types: Iterable[str] = (),
             scan: int = defaults.BATCH_SCAN, lease_s: float = defaults.BATCH_LEASE_S,
             now: float | None = None) -> tuple[str | None, list[Claimed]]:
        """Move *event_id* to ``processing`` (as ``move`` does) and claim with it, in the same call, up to
        *batch* other ``enqueued`` events of *account* whose type is one of *types*, among the *scan*
        oldest waiting; none when the event is to be read alone, nor any event to be read alone. Each
        claimed event is ``processing``, held *lease_s* (``batch_until``).

        Returns the taken event's old status (None: not in the inbox) and the claimed events, oldest first.
        """
        stamp = time.time() if now is None else now
        args: list[Any] = [event_id, stamp, self._ttl_s, account or "", batch, scan, stamp + lease_s, *types]
        with reachable():
            result = self._claim(keys=[_STATUS_PREFIX, _event_key(event_id)], args=args)
        old, rest = result[0], result[1:]
        claimed = [Claimed(*(str(value) for value in rest[n:n + 4])) for n in range(0, len(rest), 4)]
        return (str(old) if old else None), claimed

    def claim_sessions(self, session_ids: Iterable[str], *, account: str | None = None, types: Iterable[str] = (),
                       scan: int = defaults.BATCH_SCAN, lease_s: float = defaults.BATCH_LEASE_S,
                       now: float | None = None) -> list[Claimed]:
        """Claim, as :meth:`take` claims, the ``enqueued`` events of *account* whose type is one of *types*
        and whose session is one of *session_ids*, among the *scan* oldest waiting."""
        wanted, kinds = list(session_ids), list(types)
        if not wanted:
            return []
        stamp = time.time() if now is None else now
        args: list[Any] = [stamp, account or "", stamp + lease_s, scan, len(kinds), *kinds, *wanted]
        with reachable():
            rest = self._claim_sessions(keys=[_STATUS_PREFIX], args=args)
        return [Claimed(*(str(value) for value in rest[n:n + 4])) for n in range(0, len(rest), 4)]

    def release(self, event_id: str, *, alone: bool = False) -> bool:
        """Give a claimed event back (its batch could not decide it): ``enqueued`` again, unheld, so its
        own message processes it; with *alone*, never batched again (no batch claims it, and its own
        message reads its session alone). False when it is no longer ``processing``."""
        if self.move(event_id, "enqueued", allowed_from=("processing",)) is None:
            return False
        with reachable(), self._redis.pipeline(transaction=False) as pipe:
            pipe.hdel(_event_key(event_id), "batch_until")
            if alone:
                pipe.hset(_event_key(event_id), "read_alone", 1)
            pipe.execute()
        return True

    def requeue_if_stuck(self, event_id: str, *, queue: str, message: str, stuck_after_s: float,
                         now: float | None = None) -> str | None:
        """Push *message* for an event in flight unchanged for *stuck_after_s* seconds, and make it
        ``enqueued`` again (the sweeper, once it knows no message holds it). Returns the status it had,
        or None when it was not stuck (moved on meanwhile, or gone)."""
        stamp = time.time() if now is None else now
        with reachable():
            result = self._requeue(keys=[_event_key(event_id), _STATUS_PREFIX, queue],
                                   args=[event_id, message, stamp, stuck_after_s])
        return str(result) if result else None

    def replay(self, event_id: str, *, queue: str, message: str, now: float | None = None) -> str | None:
        """Push *message* for a recorded event and make it ``enqueued`` again, atomically (a replay).

        Returns the status it had (``"ignored"``: refused, nothing pushed), or None when the inbox has
        no such event."""
        stamp = time.time() if now is None else now
        with reachable():
            result = self._replay(keys=[_event_key(event_id), _STATUS_PREFIX, queue], args=[event_id, message, stamp])
        return str(result) if result else None

    def in_flight_since(self, before: float, *, limit: int) -> list[str]:
        """Ids of events ``enqueued`` or ``processing`` whose last move was before *before*, oldest
        received first, at most *limit* of each status."""
        candidates: list[str] = []
        with reachable():
            for status in IN_FLIGHT:
                # The index is scored by receipt: an event received after *before* moved after it too.
                found: list[str] = self._redis.zrangebyscore(  # type: ignore[assignment]
                    _STATUS_PREFIX + status, "-inf", before, start=0, num=limit)
                candidates += found
            with self._redis.pipeline(transaction=False) as pipe:
                for event_id in candidates:
                    pipe.hmget(_event_key(event_id), ["status", "received_at", "enqueued_at", "processing_at"])
                rows = pipe.execute()
        stale = []
        for event_id, (status, received, enqueued, processing) in zip(candidates, rows, strict=True):
            if status not in IN_FLIGHT:
                continue
            moved = (enqueued if status == "enqueued" else processing) or received
            if moved is not None and float(moved) < before:
                stale.append(event_id)
        return stale

    def known(self, event_ids: list[str]) -> list[bool]:
        """Whether each of *event_ids* is in the inbox (in one round trip)."""
        with reachable(), self._redis.pipeline(transaction=False) as pipe:
            for event_id in event_ids:
                pipe.exists(_event_key(event_id))
            return [bool(found) for found in pipe.execute()]

    def counts(self) -> dict[str, int]:
        """Number of events in each status.

        Raises:
            StoreUnavailable: when Redis cannot be reached.
        """
        with reachable(), self._redis.pipeline() as pipe:
            for status in STATUSES:
                pipe.zcard(_STATUS_PREFIX + status)
            return dict(zip(STATUSES, pipe.execute(), strict=True))

    def _call(self, script: Any, event_id: str, args: list[Any]) -> Any:
        with reachable():
            return script(keys=[_event_key(event_id), _STATUS_PREFIX], args=args)
