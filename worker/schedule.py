"""Celery beat's schedule and its two tasks, thin shells over worker/reconcile.py and worker/sweeper.py.

``crossfill beat`` (or ``celery --app worker.main beat``) sends ``reconcile`` every
``CROSSFILL_RECONCILE_EVERY`` and ``sweep`` every ``CROSSFILL_SWEEP_EVERY``; any worker runs them.
Each run takes a Redis lock, so two beats by mistake, or a run slower than its period, never overlap.
A message waiting longer than its period expires: workers back after an outage run one of each, not
a backlog of them.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from celery import Celery, Task
from celery.signals import beat_init

from fulfillment.settings import Settings
from messaging.contract import EVENTS_QUEUE, RECONCILE, SWEEP
from ops.runtime import Runtime
from worker.reconcile import reconcile
from worker.sweeper import sweep

SCHEDULE_FILE = "celerybeat-schedule"  #: beat's record of its last runs, in the data dir


def reconcile_task(task: Task, since: float | None = None) -> dict[str, Any]:
    """Run one reconciliation over the configured window (or since *since*, unix seconds)."""
    runtime: Runtime = task.app.runtime
    return dataclasses.asdict(reconcile(runtime, since=since))


def sweep_task(task: Task) -> dict[str, Any]:
    """Run one sweep of stuck events, items and orders."""
    runtime: Runtime = task.app.runtime
    return dataclasses.asdict(sweep(runtime))


def beat_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    """The periodic tasks for *settings*: reconcile and sweep, each expiring after its own period."""
    recovery = settings.recovery
    return {
        RECONCILE: {"task": RECONCILE, "schedule": recovery.reconcile_every,
                    "options": {"queue": EVENTS_QUEUE, "expires": recovery.reconcile_every}},
        SWEEP: {"task": SWEEP, "schedule": recovery.sweep_every,
                "options": {"queue": EVENTS_QUEUE, "expires": recovery.sweep_every}},
    }


def register(app: Celery, settings: Settings) -> None:
    """Register the reconcile and sweep tasks on *app*, and beat's schedule (its file in the data dir,
    which beat creates when it starts: ``celery --app worker.main beat`` needs no ``--schedule``)."""
    app.task(name=RECONCILE, bind=True, ignore_result=True)(reconcile_task)
    app.task(name=SWEEP, bind=True, ignore_result=True)(sweep_task)
    app.conf.beat_schedule = beat_schedule(settings)
    app.conf.beat_schedule_filename = str(settings.data_dir / SCHEDULE_FILE)
    beat_init.connect(_make_schedule_dir, weak=False, dispatch_uid="crossfill-beat-schedule-dir")


def _make_schedule_dir(sender: Any, **_: Any) -> None:
    Path(sender.app.conf.beat_schedule_filename).parent.mkdir(parents=True, exist_ok=True)
