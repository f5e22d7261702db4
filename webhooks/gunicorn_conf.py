"""gunicorn settings for the receiver; the CLI passes bind and worker count on the command line."""
from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any

METRICS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"

worker_class = "gthread"
threads = 4
keepalive = 5  #: seconds an idle keep-alive connection is held open
timeout = 30
graceful_timeout = 10
accesslog = None
control_socket_disable = True  #: no control socket in the home directory


def on_starting(server: Any) -> None:
    """Give the workers one metrics directory before they fork, so /metrics sums all of them.

    ``crossfill web`` passes a fresh one in PROMETHEUS_MULTIPROC_DIR; a plain ``gunicorn`` (Procfile,
    docker-compose) gets a temporary one here, removed when gunicorn exits.
    """
    if not os.environ.get(METRICS_DIR_ENV):
        server.crossfill_metrics_dir = os.environ[METRICS_DIR_ENV] = tempfile.mkdtemp(prefix="crossfill-metrics-")


def post_fork(server: Any, worker: Any) -> None:
    """Make this worker's metrics use the shared directory, before the app creates them.

    prometheus-client picks its value store when it is first imported, and the master imported it
    (through the ``webhooks`` package, on loading this file) before :func:`on_starting` set the
    directory: pick again now that it is set.
    """
    from prometheus_client import values

    values.ValueClass = values.get_value_class()


def on_exit(server: Any) -> None:
    """Remove the metrics directory :func:`on_starting` made (one passed in is its owner's)."""
    made = getattr(server, "crossfill_metrics_dir", None)
    if made:
        shutil.rmtree(made, ignore_errors=True)


def child_exit(server: Any, worker: Any) -> None:
    """Drop a dead worker's live gauges from the multiprocess metrics (counters are kept)."""
    try:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
    except (ImportError, KeyError, ValueError):
        pass
