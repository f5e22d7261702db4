"""The order ledger in Redis: one record per order and per line item, changed only atomically.

An item moves ``pending → in_progress (a lease) → done | failed``. Claiming is a compare-and-set
in a Lua script, so however many runs of the same item race, one holds the lease; a run that finds
the item ``done`` gets the recorded result instead of calling the handler again; a lease left by a
dead worker expires and the item can be claimed again. When every item of an order has ended, the
order becomes ``fulfilled`` (all done) or ``partially_failed``.
"""
from __future__ import annotations

import dataclasses
import json
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import redis

from fulfillment import defaults
from fulfillment.records import ORDER_STATUSES, Order, OrderItem
from fulfillment.store import KEY_PREFIX, Replication, batches, reachable, run_replicated


def lag_label(bound: float) -> str:
    """A lag bucket's field name in Redis and its ``le`` label on /metrics: ``0.5``, ``60``."""
    return format(bound, "g")


#: Claim outcomes.
CLAIMED, DONE, FAILED, BUSY, MISSING = "claimed", "done", "failed", "busy", "missing"

# Shared Lua: move an order between status sets, and end an order whose items have all ended.
_LUA_COMMON = """
local function set_order_status(order_key, sets, sid, status, now)
  local current = redis.call('HGET', order_key, 'status')
  if current == status then return end
  if current then redis.call('SREM', sets .. current, sid) end
  redis.call('SADD', sets .. status, sid)
  redis.call('HSET', order_key, 'status', status, 'updated_at', now)
  -- Indexes: every order by creation time (the console's listing), and orders fulfilled but not
  -- yet counted in the daily cross-sell rollups (fulfillment/report.py drains it).
  redis.call('ZADD', sets .. 'by_created', 'NX', redis.call('HGET', order_key, 'created_at') or now, sid)
  if status == 'fulfilled' then redis.call('SADD', sets .. 'to_report', sid) end
  -- Orders still waiting on something (items, or the money), by their last change: the sweeper's list.
  if status == 'fulfilling' or status == 'awaiting_payment' then redis.call('ZADD', sets .. 'active', now, sid)
  else redis.call('ZREM', sets .. 'active', sid) end
  -- Orders paid with items still open, by when they were paid: how late the oldest is (fulfillment/lateness.py).
  if status == 'fulfilling' then
    redis.call('ZADD', sets .. 'unfulfilled', 'NX', redis.call('HGET', order_key, 'paid_at') or now, sid)
  else redis.call('ZREM', sets .. 'unfulfilled', sid) end
end
-- The fulfillment lag of an item done now: paid → done, counted once in the all-time histogram and in
-- the histogram of this 5-minute slot (kept 2 h; the console's "last hour").
local function observe_lag(order_key, now)
  local paid = tonumber(redis.call('HGET', order_key, 'paid_at') or '')
  if not paid then return end
  local seconds = math.max(0, tonumber(now) - paid)
  local slot = '+Inf'
  for _, bucket in ipairs({ {LAG_BUCKETS} }) do
    if seconds <= bucket[1] then slot = bucket[2]; break end
  end
  local slot_key = '{LAG}:' .. math.floor(tonumber(now) / {LAG_SLOT})
  for _, key in ipairs({'{LAG}', slot_key}) do
    redis.call('HINCRBY', key, slot, 1)
    redis.call('HINCRBY', key, 'count', 1)
    redis.call('HINCRBYFLOAT', key, 'sum', seconds)
  end
  redis.call('EXPIRE', slot_key, {LAG_SLOT_TTL})
end
-- Retention: an order's keys expire `ttl` seconds after its creation, and the indexes forget orders
-- that old (a bounded number per call: every new order trims a little).
local function retain(order_key, items_key, sets, now, ttl)
  local created = tonumber(redis.call('HGET', order_key, 'created_at') or now)
  local deadline = math.floor(created + tonumber(ttl))
  redis.call('EXPIREAT', order_key, deadline)
  redis.call('EXPIREAT', items_key, deadline)
  local old = redis.call('ZRANGEBYSCORE', sets .. 'by_created', '-inf', tonumber(now) - tonumber(ttl), 'LIMIT', 0, 100)
  for _, gone in ipairs(old) do
    for _, name in ipairs({ {ORDER_SETS} }) do redis.call('SREM', sets .. name, gone) end
    redis.call('ZREM', sets .. 'active', gone)
    redis.call('ZREM', sets .. 'unfulfilled', gone)
    redis.call('ZREM', sets .. 'by_created', gone)
  end
  return deadline
end
local function settle_order(order_key, items_key, item_prefix, sets, sid, now)
  local ids = redis.call('ZRANGE', items_key, 0, -1)
  local failed = false
  for _, id in ipairs(ids) do
    local status = redis.call('HGET', item_prefix .. id, 'status')
    if status == 'pending' or status == 'in_progress' then return end
    if status == 'failed' then failed = true end
  end
  if failed then set_order_status(order_key, sets, sid, 'partially_failed', now)
  else set_order_status(order_key, sets, sid, 'fulfilled', now) end
end
"""

LAG = f"{KEY_PREFIX}lag"  #: hash: the fulfillment lag histogram, all time (bucket bound → count, sum, count)
LAG_SLOT_S = 300  #: ``LAG:<unix time // this>``: the same histogram per 5-minute slot, kept 2 h
_LUA_COMMON = (_LUA_COMMON.replace("{ORDER_SETS}", ", ".join(f"'{name}'" for name in (*ORDER_STATUSES, "to_report")))
               .replace("{LAG_BUCKETS}", ", ".join(f"{{{bound!r}, '{lag_label(bound)}'}}"
                                                   for bound in defaults.LAG_BUCKETS_S))
               .replace("{LAG_SLOT_TTL}", str(2 * 3600)).replace("{LAG_SLOT}", str(LAG_SLOT_S)).replace("{LAG}", LAG))

# KEYS: order, order items, item prefix, status-set prefix, anomaly counters. ARGV: sid, now,
# order json, retention seconds, paid at (unix seconds: kept from the first call), then (item id, item
# json, anomalies comma-separated) triples —
# passed as strings, since cjson would turn an empty list into {}. Anomalies are counted once, when
# an item is new.
_OPEN = _LUA_COMMON + """
local sid, now = ARGV[1], ARGV[2]
redis.call('HSETNX', KEYS[1], 'created_at', now)
redis.call('HSETNX', KEYS[1], 'paid_at', ARGV[5])
redis.call('HSET', KEYS[1], 'data', ARGV[3], 'updated_at', now)
local deadline = retain(KEYS[1], KEYS[2], KEYS[4], now, ARGV[4])
for i = 6, #ARGV, 3 do
  local key = KEYS[3] .. ARGV[i]
  if redis.call('EXISTS', key) == 0 then
    redis.call('HSET', key, 'status', 'pending', 'attempts', 0, 'created_at', now, 'data', ARGV[i + 1])
    redis.call('EXPIREAT', key, deadline)
    redis.call('ZADD', KEYS[2], (i - 3) / 3, ARGV[i])
    for anomaly in string.gmatch(ARGV[i + 2], '[^,]+') do redis.call('HINCRBY', KEYS[5], anomaly, 1) end
  end
end
redis.call('EXPIREAT', KEYS[2], deadline)
local status = redis.call('HGET', KEYS[1], 'status')
if status ~= 'fulfilled' and status ~= 'partially_failed' then
  set_order_status(KEYS[1], KEYS[4], sid, 'fulfilling', now)
end
settle_order(KEYS[1], KEYS[2], KEYS[3], KEYS[4], sid, now)
local open = {redis.call('HGET', KEYS[1], 'status')}
for _, id in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
  local s = redis.call('HGET', KEYS[3] .. id, 'status')
  if s == 'pending' or s == 'in_progress' then table.insert(open, id) end
end
return open
"""

# KEYS: order, status-set prefix, order items. ARGV: sid, status, now, data json, retention seconds,
# allowed current statuses...
_MARK = _LUA_COMMON + """
local current = redis.call('HGET', KEYS[1], 'status')
local allowed = (current == false)
for i = 6, #ARGV do if ARGV[i] == current then allowed = true end end
if not allowed then return current end
redis.call('HSETNX', KEYS[1], 'created_at', ARGV[3])
redis.call('HSET', KEYS[1], 'data', ARGV[4])
retain(KEYS[1], KEYS[3], KEYS[2], ARGV[3], ARGV[5])
set_order_status(KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3])
return ARGV[2]
"""

# KEYS: item, order. ARGV: now, lease seconds, token.
_CLAIM = """
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return {'missing', ''} end
if status == 'done' then return {'done', redis.call('HGET', KEYS[1], 'result') or ''} end
if status == 'failed' then return {'failed', redis.call('HGET', KEYS[1], 'error') or ''} end
local now = tonumber(ARGV[1])
if status == 'in_progress' then
  local lease = tonumber(redis.call('HGET', KEYS[1], 'lease_until') or '0')
  if lease > now then return {'busy', tostring(lease - now)} end
end
redis.call('HSET', KEYS[1], 'status', 'in_progress', 'owner', ARGV[3], 'lease_until', now + tonumber(ARGV[2]),
           'started_at', ARGV[1])
local attempt = tostring(redis.call('HINCRBY', KEYS[1], 'attempts', 1))
-- What the handler is given comes back with the lease: two round trips fewer per item.
return {'claimed', attempt, redis.call('HGETALL', KEYS[1]), redis.call('HGET', KEYS[2], 'data') or '{}'}
"""

# KEYS: item, order, order items, item prefix, status-set prefix.
# ARGV: token, new status (done|failed|pending), now, field, value, sid.
_FINISH = _LUA_COMMON + """
if redis.call('HGET', KEYS[1], 'status') ~= 'in_progress' or redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then
  return 0
end
redis.call('HSET', KEYS[1], 'status', ARGV[2], ARGV[4], ARGV[5], 'lease_until', 0)
if ARGV[2] ~= 'pending' then
  redis.call('HSET', KEYS[1], 'finished_at', ARGV[3])
  if ARGV[2] == 'done' then observe_lag(KEYS[2], ARGV[3]) end
  settle_order(KEYS[2], KEYS[3], KEYS[4], KEYS[5], ARGV[6], ARGV[3])
end
-- 2: the order is fulfilled and not yet counted in the report (the caller counts it: no second round trip)
if redis.call('SISMEMBER', KEYS[5] .. 'to_report', ARGV[6]) == 1 then return 2 end
return 1
"""

# KEYS: item. ARGV: now. A write after the item's done mark, for WAIT to vouch for the mark (a claim
# that finds the item done writes nothing itself).
_CONFIRM = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
return redis.call('HSET', KEYS[1], 'confirmed_at', ARGV[1])
"""

# KEYS: the items' hashes. ARGV: now, lease seconds, then one token per key. Extends each lease still
# held by its token (in progress, same owner); answers 1 or 0 per key.
_RENEW = """
local renewed = {}
local deadline = tonumber(ARGV[1]) + tonumber(ARGV[2])
for i, key in ipairs(KEYS) do
  if redis.call('HGET', key, 'status') == 'in_progress' and redis.call('HGET', key, 'owner') == ARGV[i + 2] then
    redis.call('HSET', key, 'lease_until', deadline)
    renewed[i] = 1
  else
    renewed[i] = 0
  end
end
return renewed
"""

# A dead-letter replay. KEYS: item hash, order hash, order sets, queue list. ARGV: session_id, now,
# message. An item already done is left alone (-1, nothing pushed); a failed one becomes pending
# again (1); either way but done, the message is pushed in the same call (0 when it was not failed).
_REOPEN = _LUA_COMMON + """
local status = redis.call('HGET', KEYS[1], 'status')
if status == 'done' then return -1 end
redis.call('LPUSH', KEYS[4], ARGV[3])
if status ~= 'failed' then return 0 end
redis.call('HSET', KEYS[1], 'status', 'pending', 'attempts', 0, 'lease_until', 0)
redis.call('HDEL', KEYS[1], 'finished_at')
set_order_status(KEYS[2], KEYS[3], ARGV[1], 'fulfilling', ARGV[2])
return 1
"""


@dataclass(frozen=True)
class Claim:
    """The outcome of :meth:`Ledger.claim_item`."""

    outcome: str  #: claimed, done, failed, busy or missing
    token: str = ""  #: proves ownership of the lease, when claimed
    attempt: int = 0  #: which attempt this is, when claimed
    result: Any = None  #: the recorded result, when done
    error: str = ""  #: the recorded error, when failed
    wait_s: float = 0.0  #: time left on another run's lease, when busy
    item: OrderItem | None = None  #: the item as :meth:`Ledger.item` reads it, when claimed
    order: Order | None = None  #: the order as :meth:`Ledger.order_summary` reads it, when claimed


def order_key(sid: str) -> str:
    """The Redis hash of an order (its status, times and summary); the report's script writes it too."""
    return f"{KEY_PREFIX}order:{sid}"


def _items_key(sid: str) -> str:
    return f"{KEY_PREFIX}order:{sid}:items"


def _item_prefix(sid: str) -> str:
    return f"{KEY_PREFIX}item:{sid}:"


_ORDER_SETS = f"{KEY_PREFIX}orders:"
UNFULFILLED = f"{_ORDER_SETS}unfulfilled"  #: sorted set: orders paid with items still open, by when paid
BY_CREATED = f"{_ORDER_SETS}by_created"  #: sorted set: session id by the order's creation time
TO_REPORT = f"{_ORDER_SETS}to_report"  #: set: fulfilled orders not yet counted in the report rollups
ACTIVE = f"{_ORDER_SETS}active"  #: sorted set: orders fulfilling or awaiting payment, by their last change (or check)
#: The statuses in which an order waits on something: its items, or the money.
ACTIVE_STATUSES = ("fulfilling", "awaiting_payment")
_ANOMALIES = f"{KEY_PREFIX}anomalies"  #: hash: anomaly name → cross-sell items flagged with it


class Ledger:
    """Orders and their items, in Redis."""

    def __init__(self, client: redis.Redis, *, ttl_s: float = defaults.RETENTION_S,
                 replication: Replication = Replication()) -> None:
        """*ttl_s*: an order and its items expire this long after the order's creation (the retention);
        *replication*: the replicas an item's end (done, failed, given back) must reach before it counts."""
        self._redis = client
        self._ttl_s = int(ttl_s)
        self._replication = replication
        self._confirm = client.register_script(_CONFIRM)
        self._open = client.register_script(_OPEN)
        self._mark = client.register_script(_MARK)
        self._claim = client.register_script(_CLAIM)
        self._finish = client.register_script(_FINISH)
        self._reopen = client.register_script(_REOPEN)
        self._renew = client.register_script(_RENEW)

    def open_order(self, session_id: str, order: Order, items: Sequence[OrderItem], *,
                   paid_at: float | None = None) -> tuple[str, list[str]]:
        """Record an order to fulfill and its items; idempotent.

        *paid_at* is when it was paid (the event's ``created``; default now), kept from the first call:
        the fulfillment lag of each item is measured from it. Items already known keep their state.
        Returns the order's status and the ids of the items not yet ended, to dispatch.
        """
        keys = [order_key(session_id), _items_key(session_id), _item_prefix(session_id), _ORDER_SETS, _ANOMALIES]
        now = time.time()
        args: list[Any] = [session_id, now, json.dumps(order.stored()), self._ttl_s, now if paid_at is None else paid_at]
        for item in items:
            args += [item.id, json.dumps(item.stored()), ",".join(item.anomalies)]
        status, *open_ids = self._call(self._open, keys, args)
        return str(status), [str(item_id) for item_id in open_ids]

    def mark_order(self, session_id: str, status: str, order: Order, *,
                   allowed_from: Iterable[str] = ()) -> str | None:
        """Set an order's status when it is new or in one of *allowed_from*; returns the status it has now."""
        if status not in ORDER_STATUSES:
            raise ValueError(f"status must be one of {ORDER_STATUSES}, got {status!r}")
        keys = [order_key(session_id), _ORDER_SETS, _items_key(session_id)]
        result = self._call(self._mark, keys, [session_id, status, time.time(), json.dumps(order.stored()), self._ttl_s,
                                               *allowed_from])
        return None if result is None else str(result)

    def claim_item(self, session_id: str, line_item_id: str, *, lease_s: float) -> Claim:
        """Take the lease on an item, or learn why not (done, failed, busy elsewhere, unknown).

        Raises:
            NotReplicated: the item is done on the master but not yet on enough replicas (a run before
                ours marked it and lost its WAIT): not a result to hand out yet; retry.
        """
        token = uuid.uuid4().hex
        item_key = _item_prefix(session_id) + line_item_id
        outcome, detail, *claimed = self._call(self._claim, [item_key, order_key(session_id)],
                                               [time.time(), lease_s, token])
        if outcome == DONE and self._replication.replicas:
            run_replicated(self._redis, self._confirm, [item_key], [time.time()], self._replication)
        if outcome == CLAIMED:
            fields, order = claimed
            row = dict(zip(fields[::2], fields[1::2], strict=True))
            return Claim(CLAIMED, token=token, attempt=int(detail), item=_item_view(row),
                         order=_summary_view(session_id, order))
        if outcome == DONE:
            return Claim(DONE, result=json.loads(detail) if detail else None)
        if outcome == FAILED:
            return Claim(FAILED, error=str(detail))
        if outcome == BUSY:
            return Claim(BUSY, wait_s=float(detail))
        return Claim(MISSING)

    def renew_leases(self, leases: Sequence[tuple[str, str, str]], *, lease_s: float) -> list[bool]:
        """Extend the leases of claimed items, ``(session_id, line_item_id, token)`` each, to *lease_s*
        from now, in one call; False for a lease no longer held (ended, or expired and retaken)."""
        if not leases:
            return []
        keys = [_item_prefix(sid) + line_item_id for sid, line_item_id, _ in leases]
        renewed = self._call(self._renew, keys, [time.time(), lease_s, *(token for _, _, token in leases)])
        return [bool(flag) for flag in renewed]

    def record_result(self, session_id: str, line_item_id: str, token: str, result: Any) -> bool:
        """Mark a claimed item done with its result; False when the lease was lost meanwhile.

        Raises:
            NotReplicated: marked on the master, not yet on enough replicas: not durable, so the
                task is retried (its next claim finds the item done once the replicas hold it, or
                claims it again after a failover lost the mark; the idempotency key keeps it one effect).
        """
        return self._end(session_id, line_item_id, token, "done", "result", json.dumps(result))

    def record_result_due(self, session_id: str, line_item_id: str, token: str, result: Any) -> tuple[bool, bool]:
        """:meth:`record_result`, and in the same call whether the order is now fulfilled and not yet
        counted in the cross-sell report (``TO_REPORT``): (recorded, report due). Raises as it does."""
        keys = [_item_prefix(session_id) + line_item_id, order_key(session_id), _items_key(session_id),
                _item_prefix(session_id), _ORDER_SETS]
        outcome = int(run_replicated(self._redis, self._finish, keys,
                                     [token, "done", time.time(), "result", json.dumps(result), session_id],
                                     self._replication))
        return outcome > 0, outcome == 2

    def record_failure(self, session_id: str, line_item_id: str, token: str, error: str) -> bool:
        """Mark a claimed item failed for good (it goes to the dead-letter queue)."""
        return self._end(session_id, line_item_id, token, "failed", "error", error)

    def release_item(self, session_id: str, line_item_id: str, token: str, error: str) -> bool:
        """Give a claimed item back after a transient error, so that the retry can claim it."""
        return self._end(session_id, line_item_id, token, "pending", "last_error", error)

    def reopen_item(self, session_id: str, line_item_id: str, *, queue: str, message: str) -> bool:
        """Replay an item (a dead letter): unless it is done, push *message* onto *queue* and make a
        failed item pending again, in one atomic call. Returns False when the item was done already
        (nothing pushed). :mod:`messaging.dispatch` builds the message."""
        keys = [_item_prefix(session_id) + line_item_id, order_key(session_id), _ORDER_SETS, queue]
        return int(self._call(self._reopen, keys, [session_id, time.time(), message])) >= 0

    def order(self, session_id: str) -> Order | None:
        """The order and its items, or None when unknown."""
        with reachable():
            fields: dict[str, str] = self._redis.hgetall(order_key(session_id))  # type: ignore[assignment]
            ids: list[str] = self._redis.zrange(_items_key(session_id), 0, -1)  # type: ignore[assignment]
            with self._redis.pipeline(transaction=False) as pipe:
                for item_id in ids:
                    pipe.hgetall(_item_prefix(session_id) + item_id)
                rows = pipe.execute()
        if not fields:
            return None
        return _order_view(session_id, fields, [_item_view(row) for row in rows])

    def order_summary(self, session_id: str) -> Order:
        """The order's summary without its items or state (what a handler is told about the order)."""
        with reachable():
            raw: str | None = self._redis.hget(order_key(session_id), "data")  # type: ignore[assignment]
        return _summary_view(session_id, raw)

    def item(self, session_id: str, line_item_id: str) -> OrderItem | None:
        """One item, or None when unknown."""
        key = _item_prefix(session_id) + line_item_id
        with reachable():
            row: dict[str, str] = self._redis.hgetall(key)  # type: ignore[assignment]
        return _item_view(row) if row else None

    def counts(self) -> dict[str, int]:
        """Number of orders in each status."""
        with reachable(), self._redis.pipeline(transaction=False) as pipe:
            for status in ORDER_STATUSES:
                pipe.scard(_ORDER_SETS + status)
            return dict(zip(ORDER_STATUSES, pipe.execute(), strict=True))

    def recent(self, *, before: tuple[float, str] | None = None, since: float | None = None,
               until: float | None = None, limit: int = 100) -> list[tuple[str, float]]:
        """Session ids and creation times, newest first, strictly after the cursor *before*
        (a ``(created_at, session_id)`` pair a previous call returned), within [since, until]."""
        top = until if until is not None else "+inf"
        if before is not None:
            top = before[0] if until is None else min(before[0], until)
        bottom = since if since is not None else "-inf"
        # Orders created in the same instant sort by id, descending: skip those up to the cursor.
        skip = 0
        if before is not None:
            with reachable():
                skip = int(self._redis.zcount(BY_CREATED, before[0], before[0])) + 1
        with reachable():
            rows: list[tuple[str, float]] = self._redis.zrevrangebyscore(  # type: ignore[assignment]
                BY_CREATED, top, bottom, start=0, num=limit + skip, withscores=True)
        if before is not None:
            rows = [(sid, score) for sid, score in rows if score < before[0] or (score == before[0] and sid < before[1])]
        return rows[:limit]

    def backfill_created_index(self, batch: int = 500) -> int:
        """Index orders recorded before :data:`BY_CREATED` existed (idempotent; once per Redis, flagged).

        Returns how many orders were added to the index.
        """
        flag = f"{BY_CREATED}:backfilled"
        added = 0
        with reachable():
            if self._redis.exists(flag):
                return 0
            for status in ORDER_STATUSES:
                for chunk in batches(self._redis.sscan_iter(_ORDER_SETS + status, count=batch), batch):
                    with self._redis.pipeline(transaction=False) as pipe:
                        for sid in chunk:
                            pipe.hget(order_key(sid), "created_at")
                        stamps = pipe.execute()
                    scores = {sid: float(stamp) for sid, stamp in zip(chunk, stamps, strict=True) if stamp}
                    if scores:
                        added += int(self._redis.zadd(BY_CREATED, scores, nx=True))  # type: ignore[arg-type]
            self._redis.set(flag, str(time.time()))
        return added

    def orders(self, session_ids: Sequence[str]) -> list[Order | None]:
        """Several orders with their items, in two round trips (:meth:`order`'s shape, None when unknown)."""
        with reachable():
            with self._redis.pipeline(transaction=False) as pipe:
                for sid in session_ids:
                    pipe.hgetall(order_key(sid))
                    pipe.zrange(_items_key(sid), 0, -1)
                heads = pipe.execute()
            with self._redis.pipeline(transaction=False) as pipe:
                for position, sid in enumerate(session_ids):
                    for item_id in heads[2 * position + 1]:
                        pipe.hgetall(_item_prefix(sid) + item_id)
                rows = iter(pipe.execute())
        found: list[Order | None] = []
        for position, sid in enumerate(session_ids):
            fields, ids = heads[2 * position], heads[2 * position + 1]
            items = [_item_view(next(rows)) for _ in ids]
            found.append(_order_view(sid, fields, items) if fields else None)
        return found

    def statuses(self, session_ids: Sequence[str]) -> list[str | None]:
        """Each order's status (None when there is no order), in one round trip."""
        with reachable(), self._redis.pipeline(transaction=False) as pipe:
            for sid in session_ids:
                pipe.hget(order_key(sid), "status")
            return [status or None for status in pipe.execute()]

    def unchanged_since(self, before: float, *, limit: int) -> list[tuple[str, str]]:
        """Orders fulfilling or awaiting payment that have not changed (nor been checked) since
        *before*, oldest first: ``(session_id, status)`` pairs. Orders gone (expired) leave the index."""
        with reachable():
            sids: list[str] = self._redis.zrangebyscore(ACTIVE, "-inf", before, start=0,  # type: ignore[assignment]
                                                        num=limit)
        found, gone = [], []
        for sid, status in zip(sids, self.statuses(sids), strict=True):
            if status in ACTIVE_STATUSES:
                found.append((sid, str(status)))
            else:
                gone.append(sid)
        if gone:
            with reachable():
                self._redis.zrem(ACTIVE, *gone)
        return found

    def touch(self, session_id: str, *, now: float | None = None) -> None:
        """Note that an active order was just checked: the sweeper looks at it again only after its threshold
        (*now* in the future defers it further)."""
        with reachable():
            self._redis.zadd(ACTIVE, {session_id: time.time() if now is None else now}, xx=True)

    def open_items(self, session_id: str, *, now: float | None = None) -> list[str]:
        """Ids of the order's items nobody works on: ``pending`` (never claimed, or given back for a
        retry), or ``in_progress`` with an expired lease (its worker died)."""
        stamp = time.time() if now is None else now
        with reachable():
            ids: list[str] = self._redis.zrange(_items_key(session_id), 0, -1)  # type: ignore[assignment]
            with self._redis.pipeline(transaction=False) as pipe:
                for item_id in ids:
                    pipe.hmget(_item_prefix(session_id) + item_id, ["status", "lease_until"])
                rows = pipe.execute()
        return [item_id for item_id, (status, lease) in zip(ids, rows, strict=True)
                if status == "pending" or (status == "in_progress" and float(lease or 0) <= stamp)]

    def anomaly_counts(self) -> dict[str, int]:
        """How many cross-sell items were flagged with each anomaly, ever."""
        with reachable():
            raw: dict[str, str] = self._redis.hgetall(_ANOMALIES)  # type: ignore[assignment]
        return {name: int(count) for name, count in raw.items()}

    def _end(self, sid: str, item_id: str, token: str, status: str, field: str, value: str) -> bool:
        keys = [_item_prefix(sid) + item_id, order_key(sid), _items_key(sid), _item_prefix(sid), _ORDER_SETS]
        return bool(run_replicated(self._redis, self._finish, keys, [token, status, time.time(), field, value, sid],
                                   self._replication))

    def _call(self, script: Any, keys: list[str], args: list[Any]) -> Any:
        with reachable():
            return script(keys=keys, args=args)



def _float(raw: str | None) -> float | None:
    return float(raw) if raw else None


def _summary_view(session_id: str, data: str | None) -> Order:
    """An order from its stored summary (the hash's ``data``), without state or items."""
    return Order.from_mapping(json.loads(data or "{}"), session_id=session_id)


def _order_view(session_id: str, fields: dict[str, str], items: list[OrderItem]) -> Order:
    return dataclasses.replace(_summary_view(session_id, fields.get("data")), status=fields.get("status", ""),
                               created_at=_float(fields.get("created_at")),
                               updated_at=_float(fields.get("updated_at")), items=tuple(items))


def _item_view(row: dict[str, str]) -> OrderItem:
    """An item from its hash: the stored classification (``data``) and the ledger's state fields."""
    return OrderItem.from_mapping(
        json.loads(row.get("data") or "{}"),
        status=row.get("status", ""),
        attempts=int(row.get("attempts") or 0),
        result=json.loads(row["result"]) if row.get("result") else None,
        error=row.get("error") or row.get("last_error") or None,
        created_at=_float(row.get("created_at")),
        started_at=_float(row.get("started_at")),
        finished_at=_float(row.get("finished_at")),
    )
