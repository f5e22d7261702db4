"""Serving the simulator over real HTTP: threaded, in this process, on a given or free port."""
from __future__ import annotations

import logging
import threading

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from simulator import defaults
from simulator.app import create_sim_app
from simulator.config import SimConfig
from simulator.simulation import Simulator

LISTEN_BACKLOG = 1024  #: pending connections the socket queues (bursts of concurrent clients)
POLL_INTERVAL_S = 0.05  #: how often the serving loop checks for shutdown, seconds


class _QuietHandler(WSGIRequestHandler):
    """Werkzeug's handler, logging each request at DEBUG instead of printing it."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        logging.getLogger("simulator.http").debug("%s %s", self.requestline, code)


class SimServer:
    """The simulator on ``host:port`` (port 0 picks a free one), a thread per request.

    Use as a context manager, or :meth:`start` / :meth:`stop`::

        with SimServer(SimConfig(retry_base_ms=50)) as server:
            stripe.api_base = server.url
    """

    def __init__(self, config: SimConfig | None = None, *, host: str = defaults.HOST, port: int = 0,
                 quiet: bool = True, simulator: Simulator | None = None) -> None:
        self.simulator = simulator or Simulator(config)
        self.app = create_sim_app(simulator=self.simulator)
        BaseWSGIServer.request_queue_size = LISTEN_BACKLOG
        self._server = make_server(host, port, self.app, threaded=True,
                                   request_handler=_QuietHandler if quiet else None)
        self._server.daemon_threads = True  # type: ignore[attr-defined]
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The port it listens on."""
        return int(self._server.server_port)

    @property
    def url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:12111`` (what ``stripe.api_base`` takes)."""
        return f"http://{self._server.host}:{self.port}"

    def start(self) -> SimServer:
        """Serve in a background thread."""
        self._thread = threading.Thread(target=self._server.serve_forever, args=(POLL_INTERVAL_S,), name="sim-http",
                                        daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in this thread until interrupted."""
        try:
            self._server.serve_forever(POLL_INTERVAL_S)
        finally:
            self.stop()

    def stop(self) -> None:
        """Stop serving and delivering; safe to call twice."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=10)
            self._thread = None
        self._server.server_close()
        self.simulator.close()

    def __enter__(self) -> SimServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
