"""Workers that outlive their broker: kombu's Redis channel hardened, tasks that keep their message
through a Redis outage, and a worker's exit status kept.

Why the channel needs it (celery 5.7.0, kombu 5.7.0, redis-py 8.1; reproduced on a real Redis killed
with SIGKILL while a threads-pool worker ran acks-late tasks and waited in BRPOP for more):

1. When the broker connection breaks, Celery's consumer calls ``connection.collect()`` and then, since
   5.7.0, ``connection.close()`` too (celery PR 10242, "close broken connection in error handler").
2. ``collect()`` closes the channels and then releases the transport: ``transport.client = None``.
   But kombu's ``Channel.close()`` first reads the reply of a BRPOP in flight; on a dead socket that
   raises ``ConnectionError`` *before* the channel is marked closed and before its unacknowledged
   deliveries are handed back. ``collect()`` swallows the error, and the channel stays half open.
3. ``close()`` then closes that channel again. It now restores its unacked deliveries, needs a new
   connection pool, and ``Channel._connparams`` reads ``transport.client.hostname``: ``AttributeError``.
   That is not a connection error, so Celery's ``ignore_errors`` lets it through the consumer's
   reconnect path: the worker logs ``Unrecoverable error`` and stops (with status 1, which
   ``Celery.worker_main`` then drops: see :func:`run_worker`).

The deliveries are safe in Redis meanwhile (kombu records each in its ``unacked`` hash when it hands
it out; the visibility-timeout sweep requeues them once Redis is back), so the one thing missing is the
right error type: a channel whose transport was released must raise a connection error, which every
layer above already treats as "the broker is gone, reconnect". :func:`harden_kombu_redis` makes kombu's
own Redis channel do so. It patches the class rather than naming a subclass in ``broker_transport``,
because that setting would also rename the broker URL's scheme everywhere it is shown (the worker's
banner, ``as_uri()``), and Flower picks its broker client by that scheme. Drop it once kombu's channel
raises a connection error by itself: ``tests/integration/test_broker_outage.py`` runs Celery's sequence against
the unpatched channel and fails when it stops crashing.
"""
from __future__ import annotations

from typing import Any

import redis
from celery import Celery, Task
from celery.bin.celery import celery as celery_command
from celery.exceptions import Reject
from kombu.exceptions import OperationalError
from kombu.transport import redis as kombu_redis

from fulfillment.errors import StoreUnavailable
from worker import redelivery

#: What a task raises when Redis went away under it: crossfill's stores, redis-py, kombu's producer.
OUTAGE_ERRORS = (StoreUnavailable, redis.ConnectionError, redis.TimeoutError, OperationalError)

#: kombu's own ``Channel._connparams``: the connection parameters of a new pool, read from the transport.
kombu_connparams = kombu_redis.Channel._connparams


def _connparams(self: kombu_redis.Channel, asynchronous: bool = False) -> dict[str, Any]:
    """kombu's ``_connparams``, raising a connection error once the channel's transport was released."""
    transport = self.connection
    if transport is None or transport.client is None:
        raise redis.ConnectionError("the broker connection was closed; this channel cannot reconnect")
    params: dict[str, Any] = kombu_connparams(self, asynchronous=asynchronous)
    return params


def harden_kombu_redis() -> None:
    """Make kombu's Redis channel fail as a lost connection after its transport was released, and its
    QoS put a dead consumer's messages back at once (worker/redelivery.py); idempotent."""
    kombu_redis.Channel._connparams = _connparams  # type: ignore[method-assign]
    redelivery.install()


class OutageTolerantTask(Task):
    """A task that, failing because Redis is unreachable, puts its message back instead of dropping it.

    With late acks Celery acknowledges (or rejects without requeue) the message of a task that
    raised, and ``Task.retry()`` rejects it without requeue when the retry cannot be published; so
    a task that Redis left mid-run dropped its work for good: measured under a Redis SIGKILL, an
    event whose inbox write lost its reply, and an event whose retry could not be sent, each left
    ``processing`` with no message anywhere. Raising
    ``Reject(requeue=True)`` instead makes Celery requeue the message once it is connected again,
    or, if that fails too, leaves it in kombu's ``unacked`` hash for the visibility timeout.
    Every task may run twice anyway (ARCHITECTURE.md); ``Retry`` and other errors pass through.
    """

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().__call__(*args, **kwargs)
        except OUTAGE_ERRORS as error:
            raise Reject(f"Redis unreachable, message requeued: {error!r}", requeue=True) from error
        except Reject as rejected:
            # Task.retry() turns a retry it could not publish into Reject(requeue=False).
            if rejected.requeue or not isinstance(rejected.reason, OUTAGE_ERRORS):
                raise
            raise Reject(f"Redis unreachable, retry not sent, message requeued: {rejected.reason!r}",
                         requeue=True) from rejected


def run_worker(app: Celery, argv: list[str]) -> int:
    """Run ``celery worker`` with *argv* in this process and return the worker's exit status.

    ``Celery.worker_main`` and ``Celery.start`` drop the status (they run Celery's click command in
    non-standalone mode and ignore what it returns), so a worker that stopped on an unrecoverable
    error would exit 0 and a restart-on-failure supervisor would leave it down.
    """
    celery_command.params[0].default = app
    try:
        status = celery_command.main(args=argv, standalone_mode=False)
    finally:
        celery_command.params[0].default = None
    return status if isinstance(status, int) else 0
