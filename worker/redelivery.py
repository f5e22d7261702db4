"""A dead consumer's messages go back to their queue within seconds, not after the visibility timeout.

kombu's Redis transport keeps every message a worker took, until it is acknowledged, in its
``unacked`` hash (and ``unacked_index``, by time). A worker that dies leaves them there, and kombu
puts them back only once the visibility timeout has passed (3600 s by default): with the default,
a ``kill -9``ed worker's orders waited an hour. Lowering the timeout is no cure: Celery holds a
countdown retry's message unacked until its time comes, so a retry delayed past the timeout would be
delivered twice while its worker is alive.

So each consumer says who holds what, and whether it is alive:

- **owner**: every broker connection of a worker process has an owner name
  (``host:pid:random``); when kombu records a message as unacked, the same Redis transaction records
  it in the owner's hash (delivery tag → its queue and the message, ready to be pushed back), and
  an acknowledgement removes both (``worker/broker.py`` adds this to kombu's ``QoS``);
- **beat**: each connection's event loop already wakes every ``unacked_restore_interval`` seconds
  to look for expired messages; it now also scores its owner in :data:`OWNERS` with the time. A
  process killed, or a connection lost with Redis, stops beating (a reconnected worker has a new
  connection, so a new owner);
- **restore**: an owner silent for :data:`~fulfillment.defaults.CONSUMER_DEAD_AFTER_S` is dead. Any
  live worker (on its next beat) and the sweeper push each of its messages still unacked back onto
  its queue and drop it from ``unacked``/``unacked_index``, in one Lua call.

A live consumer's messages, its countdown retries included, are never touched. A message whose
previous run is still going (a slow consumer taken for dead) runs twice at most: the ledger's
claim and the handlers' idempotency keys make that one effect, as with any redelivery.
"""
from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from typing import Any

import redis
from kombu.transport import redis as kombu_redis
from kombu.transport import virtual
from kombu.utils.json import dumps
from redis.commands.core import Script

from fulfillment import defaults
from fulfillment.store import KEY_PREFIX

log = logging.getLogger(__name__)

OWNERS = f"{KEY_PREFIX}consumers"  #: sorted set: owner name by its last beat, unix seconds
UNACKED = "unacked"  #: kombu's Redis transport: delivery tag → [message, exchange, routing key]
UNACKED_INDEX = "unacked_index"  #: kombu's: delivery tag by the time it was taken
_QUEUE_SEPARATOR, _MESSAGE_SEPARATOR = "\t", "\n"  #: an owner's entry: queue[\tqueue...]\nmessage


def owner_key(owner: str) -> str:
    """The hash of the messages *owner* holds unacked: delivery tag → queue(s), a newline, the message."""
    return f"{KEY_PREFIX}consumer:{owner}:unacked"


def new_owner() -> str:
    """A name for one broker connection of this process: host, pid and a random part (a reconnection
    of the same process is another owner)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def entry(queues: list[str], message: str) -> str:
    """What an owner's hash keeps for one message: the queue list(s) to push it back onto, and itself."""
    return _QUEUE_SEPARATOR.join(queues) + _MESSAGE_SEPARATOR + message


# KEYS: owners, the owner's hash, kombu's unacked hash, kombu's unacked index. ARGV: owner, dead before
# (unix seconds). An owner that beat after *dead before* is alive: nothing happens (-1). Otherwise each
# of its messages still unacked is pushed back where BRPOP takes next (the right end, as kombu's own
# restore does) and forgotten by kombu; messages acknowledged meanwhile are left alone. Returns how
# many were pushed back.
_RESTORE = r"""
local last = redis.call('ZSCORE', KEYS[1], ARGV[1])
if last and tonumber(last) > tonumber(ARGV[2]) then return -1 end
local held = redis.call('HGETALL', KEYS[2])
local restored = 0
for i = 1, #held, 2 do
  local tag, value = held[i], held[i + 1]
  if redis.call('HEXISTS', KEYS[3], tag) == 1 then
    local cut = string.find(value, '\n', 1, true)
    if cut then
      local message = string.sub(value, cut + 1)
      for queue in string.gmatch(string.sub(value, 1, cut - 1), '[^\t]+') do
        redis.call('RPUSH', queue, message)
      end
      redis.call('HDEL', KEYS[3], tag)
      redis.call('ZREM', KEYS[4], tag)
      restored = restored + 1
    end
  end
end
redis.call('DEL', KEYS[2])
redis.call('ZREM', KEYS[1], ARGV[1])
return restored
"""
#: Bytes, so that no client is needed to build it: each call names its client (kombu's or crossfill's).
_restore_script = Script(None, _RESTORE.encode())  # type: ignore[arg-type]


def beat(client: Any, owner: str, *, now: float | None = None) -> None:
    """Record that *owner*'s connection is alive now (kombu's client or crossfill's)."""
    client.zadd(OWNERS, {owner: time.time() if now is None else now})


def dead_owners(client: Any, *, now: float | None = None,
                dead_after: float = defaults.CONSUMER_DEAD_AFTER_S) -> list[str]:
    """Owners silent for more than *dead_after* seconds."""
    stamp = time.time() if now is None else now
    found = client.zrangebyscore(OWNERS, "-inf", stamp - dead_after)
    return [name.decode() if isinstance(name, bytes) else str(name) for name in found]


def restore_dead(client: Any, *, now: float | None = None,
                 dead_after: float = defaults.CONSUMER_DEAD_AFTER_S) -> int:
    """Push every message a dead owner held back onto its queue (see the module). Returns how many.

    Raises:
        redis.RedisError: Redis is unreachable (the caller's own error handling applies).
    """
    stamp = time.time() if now is None else now
    restored = 0
    for owner in dead_owners(client, now=stamp, dead_after=dead_after):
        count = int(_restore_script(keys=[OWNERS, owner_key(owner), UNACKED, UNACKED_INDEX],
                                    args=[owner, stamp - dead_after], client=client))
        if count > 0:
            log.warning("consumer %s is gone (no beat for %.0f s): %d message(s) it held put back on their queue",
                        owner, dead_after, count)
            restored += count
    return restored


def held_by(client: redis.Redis, owner: str) -> dict[str, str]:
    """Delivery tag → message of what *owner* holds unacked (ops and tests)."""
    raw: dict[Any, Any] = client.hgetall(owner_key(owner))
    held = {}
    for tag, value in raw.items():
        text = value.decode() if isinstance(value, bytes) else str(value)
        held[tag.decode() if isinstance(tag, bytes) else str(tag)] = text.split(_MESSAGE_SEPARATOR, 1)[-1]
    return held


# --- kombu's Redis QoS, owner-aware -------------------------------------------------------------------

#: kombu's own methods, wrapped below.
_kombu_remove_from_indices = kombu_redis.QoS._remove_from_indices
_kombu_restore_visible = kombu_redis.QoS.restore_visible


def _owner_of(qos: kombu_redis.QoS) -> str:
    """The owner name of *qos*'s broker connection (kombu's transport object), made on first use."""
    transport = qos.channel.connection
    if transport is None:  # a closed channel: fail as the lost connection it is (worker/broker.py)
        raise redis.ConnectionError("the broker connection was closed; this channel holds nothing any more")
    owner = transport.__dict__.get("crossfill_owner")
    if owner is None:
        owner = transport.__dict__.setdefault("crossfill_owner", new_owner())  # one name even if threads race
    return str(owner)


def _append(self: kombu_redis.QoS, message: Any, delivery_tag: str) -> None:
    """kombu's ``QoS.append`` (record the message as unacked), recording its owner in the same transaction."""
    delivery = message.delivery_info
    exchange, routing_key = delivery["exchange"], delivery["routing_key"]
    raw = message._raw
    # Pushed back as kombu's own restore would: marked redelivered, onto the queue's list for its priority
    # (crossfill routes every task with its queue's name as the routing key: worker/app.py).
    again = {**raw, "headers": {**(raw.get("headers") or {}), "redelivered": True},
             "properties": {**raw["properties"],
                            "delivery_info": {**raw["properties"].get("delivery_info", {}), "redelivered": True}}}
    queue = self.channel._q_for_pri(routing_key, self.channel._get_message_priority(raw, reverse=False))
    owner, now = _owner_of(self), time.time()
    with self.pipe_or_acquire() as pipe:
        pipe.zadd(self.unacked_index_key, {delivery_tag: now})
        pipe.hset(self.unacked_key, delivery_tag, dumps([raw, exchange, routing_key]))
        pipe.hset(owner_key(owner), delivery_tag, entry([queue], dumps(again)))
        pipe.zadd(OWNERS, {owner: now})
        pipe.execute()
    virtual.QoS.append(self, message, delivery_tag)


def _remove_from_indices(self: kombu_redis.QoS, delivery_tag: str, pipe: Any = None) -> Any:
    """kombu's (on ack, reject and restore), forgetting the tag in this connection's owner hash too."""
    return _kombu_remove_from_indices(self, delivery_tag, pipe).hdel(owner_key(_owner_of(self)), delivery_tag)


def _restore_visible(self: kombu_redis.QoS, start: int = 0, num: int = 10, interval: int = 10) -> None:
    """Every ``unacked_restore_interval``: beat, put back what dead consumers held, then kombu's own look
    for messages past the visibility timeout."""
    with self.channel.conn_or_acquire() as client:
        beat(client, _owner_of(self))
        restore_dead(client)
    _kombu_restore_visible(self, start, num, interval)


def install() -> None:
    """Make kombu's Redis QoS record owners, beat and restore dead owners' messages (idempotent)."""
    kombu_redis.QoS.append = _append  # type: ignore[method-assign]
    kombu_redis.QoS._remove_from_indices = _remove_from_indices  # type: ignore[method-assign]
    kombu_redis.QoS.restore_visible = _restore_visible  # type: ignore[method-assign]
