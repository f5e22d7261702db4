"""Worker heartbeats in Redis (fulfillment/liveness.py), so "how many workers are alive" costs one read.

Celery's worker already beats every 2 s (its ``Heart``, which also feeds Flower); the
``heartbeat_sent`` signal fires on each beat, and this writes the worker's name and the time.
"""
from __future__ import annotations

import logging
from typing import Any

from celery.signals import heartbeat_sent

from fulfillment.errors import StoreUnavailable
from fulfillment.liveness import beat

log = logging.getLogger(__name__)


def _on_heartbeat(sender: Any, **_: Any) -> None:
    eventer = sender.eventer
    runtime = getattr(eventer.app, "runtime", None)
    if runtime is None:
        return
    try:
        beat(runtime.redis, str(eventer.hostname))
    except StoreUnavailable as error:
        # The next beat tries again; the worker's own reconnect logic handles the broker.
        log.debug("heartbeat not recorded: %s", error)


def install() -> None:
    """Connect the heartbeat writer (idempotent); before the worker starts, as Celery reads the
    signal's receivers when it builds its Heart."""
    heartbeat_sent.connect(_on_heartbeat, weak=False, dispatch_uid="crossfill.heartbeat")
