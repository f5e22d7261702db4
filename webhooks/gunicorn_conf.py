"""gunicorn settings for the receiver; the CLI passes bind and worker count on the command line."""
from __future__ import annotations

from typing import Any

worker_class = "gthread"
threads = 4
keepalive = 5  #: seconds an idle keep-alive connection is held open
timeout = 30
graceful_timeout = 10
accesslog = None
control_socket_disable = True  #: no control socket in the home directory


def child_exit(server: Any, worker: Any) -> None:
    """Drop a dead worker's live gauges from the multiprocess metrics (counters are kept)."""
    try:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
    except (ImportError, KeyError, ValueError):
        pass
