"""gunicorn settings for the receiver; the CLI passes bind and worker count on the command line.

The master also serves the internal metrics endpoint (:func:`when_ready`), whoever starts gunicorn:
``crossfill web``, the Procfile, compose or systemd.
"""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
from typing import Any, NoReturn

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


def when_ready(server: Any) -> None:
    """Serve GET /metrics from the master, on CROSSFILL_METRICS_BIND:CROSSFILL_METRICS_PORT.

    One listener per deployment, never on the public port: the master sums its workers' files and
    reads the pipeline's state (the workers' too) from Redis. A bad setting, or a metrics port another
    process holds, exits 2 (no restart can help) with one line naming the variable.
    """
    from fulfillment.errors import ConfigError
    from fulfillment.settings import load_settings
    from webhooks.metrics_server import create_metrics_app, serve_metrics
    from webhooks.settings import load_receiver_settings

    try:
        receiver = load_receiver_settings()
        app = create_metrics_app(load_settings())
    except ConfigError as error:
        _exit(server, f"crossfill: {error}", 2)
    try:
        server.crossfill_metrics = serve_metrics(app, receiver.metrics_bind, receiver.metrics_port)
    except OSError as error:
        _exit(server, f"crossfill: CROSSFILL_METRICS_PORT={receiver.metrics_port} cannot be listened on at "
                      f"{receiver.metrics_bind} ({error.strerror or error}): stop what listens there, or set "
                      "CROSSFILL_METRICS_PORT to a free port", 2)


def post_fork(server: Any, worker: Any) -> None:
    """Make this worker's metrics use the shared directory, before the app creates them; and let go of
    the master's metrics listener, so that the master alone holds the port.

    prometheus-client picks its value store when it is first imported, and the master imported it
    (through the ``webhooks`` package, on loading this file) before :func:`on_starting` set the
    directory: pick again now that it is set.
    """
    from prometheus_client import values

    values.ValueClass = values.get_value_class()
    listener = getattr(server, "crossfill_metrics", None)
    if listener is not None:
        listener.close_listener()


def on_exit(server: Any) -> None:
    """Stop the metrics endpoint; remove the metrics directory :func:`on_starting` made (one passed in
    is its owner's)."""
    listener = getattr(server, "crossfill_metrics", None)
    if listener is not None:
        listener.stop()
    made = getattr(server, "crossfill_metrics_dir", None)
    if made:
        shutil.rmtree(made, ignore_errors=True)


def _exit(server: Any, line: str, status: int) -> NoReturn:
    print(line, file=sys.stderr, flush=True)
    on_exit(server)
    sys.exit(status)


def child_exit(server: Any, worker: Any) -> None:
    """Drop a dead worker's live gauges from the multiprocess metrics (counters are kept)."""
    try:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
    except (ImportError, KeyError, ValueError):
        pass
