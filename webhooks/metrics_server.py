"""The internal metrics endpoint: ``GET /metrics`` on ``CROSSFILL_METRICS_BIND:CROSSFILL_METRICS_PORT``.

Metrics carry account ids and revenue, so the public receiver never serves them. One listener per
deployment serves them instead, started in gunicorn's master (``webhooks/gunicorn_conf.py``): it sums
the files every receiver worker writes (prometheus-client's multiprocess mode) and reads the whole
pipeline's state — queues, inbox, orders, and the workers' counters — from Redis at scrape time, so
the workers need no endpoint of their own.
"""
from __future__ import annotations

import logging
import socket
import threading
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from flask import Flask, Response

from fulfillment.settings import Settings, load_settings
from fulfillment.store import connect
from messaging.contract import QUEUES
from webhooks.metrics import ReceiverMetrics, StateCollector, render_state

log = logging.getLogger(__name__)

EXPOSITION_TYPE = "text/plain; version=0.0.4; charset=utf-8"  #: Prometheus' text format


def create_metrics_app(settings: Settings | None = None, counters: ReceiverMetrics | None = None) -> Flask:
    """The metrics app: ``GET /metrics`` and nothing else.

    Args:
        settings: where the pipeline's state is read (its Redis); read from the environment when None.
        counters: the receiver's counters, when they live in this process (an app under test); under
            gunicorn they are read from the workers' files, whoever asks.
    """
    settings = load_settings() if settings is None else settings
    state = StateCollector(connect(settings.resolved_redis_url), QUEUES)
    return metrics_app(ReceiverMetrics() if counters is None else counters, state)


def metrics_app(counters: ReceiverMetrics, state: StateCollector) -> Flask:
    """The metrics app over *counters* and the pipeline *state*: ``GET /metrics``, and 404 for the rest."""
    app = Flask(__name__)
    app.extensions["crossfill_metrics"] = {"state": state}

    @app.get("/metrics")
    def metrics() -> Response:
        return Response(counters.render() + render_state(state), mimetype=EXPOSITION_TYPE)

    return app


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    """A WSGI server answering each scrape in a thread of its own."""

    daemon_threads = True


class _ThreadingServer6(_ThreadingServer):
    address_family = socket.AF_INET6


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass  # one line per scrape is noise; failures are logged where they happen


class MetricsServer:
    """The metrics app listening on one address, served from a daemon thread."""

    def __init__(self, app: Flask, bind: str, port: int) -> None:
        server_class = _ThreadingServer6 if ":" in bind else _ThreadingServer
        self._server = make_server(bind, port, app, server_class=server_class, handler_class=_QuietHandler)
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, name="crossfill-metrics", daemon=True)

    def start(self) -> MetricsServer:
        self._thread.start()
        return self

    def close_listener(self) -> None:
        """Close this process's copy of the listening socket (a forked child must not hold the port)."""
        self._server.socket.close()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def serve_metrics(app: Flask, bind: str, port: int) -> MetricsServer:
    """Serve *app* on *bind*:*port* from a thread; raises OSError when the address is taken."""
    server = MetricsServer(app, bind, port).start()
    log.info("metrics on http://%s:%d/metrics", f"[{bind}]" if ":" in bind else bind, server.port)
    return server
