"""Helpers of the simulator's tests: a recording webhook endpoint and a catalog builder."""
from __future__ import annotations

import contextlib
import json
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import stripe

API_KEY = "sk_test_crossfill_simulator_tests"
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Received:
    """One webhook POST as the endpoint saw it."""

    body: bytes
    signature: str
    headers: dict[str, str]
    at: float

    @property
    def event(self) -> dict[str, Any]:
        return json.loads(self.body)  # type: ignore[no-any-return]


class WebhookEndpoint:
    """A local HTTP endpoint answering scripted statuses (then *default_status*), recording each POST."""

    def __init__(self) -> None:
        self.default_status = 200
        self.script: list[int] = []
        self.delay_s = 0.0  #: how long each answer takes, seconds
        self.received: list[Received] = []
        self._changed = threading.Condition()
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if endpoint.delay_s:
                    time.sleep(endpoint.delay_s)
                status = endpoint.record(Received(body, self.headers.get("Stripe-Signature", ""),
                                                  dict(self.headers.items()), time.time()))
                self.send_response(status)
                if 300 <= status < 400:
                    self.send_header("Location", "/elsewhere")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/webhooks/stripe"
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    def record(self, received: Received) -> int:
        with self._changed:
            self.received.append(received)
            status = self.script.pop(0) if self.script else self.default_status
            self._changed.notify_all()
            return status

    def wait_for(self, predicate: Callable[[list[Received]], bool], timeout: float = 5.0) -> list[Received]:
        """Wait until *predicate* holds over everything received; fail the test otherwise."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not predicate(self.received):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    pytest.fail(f"the endpoint got {len(self.received)} webhooks; the expected ones never came")
                self._changed.wait(remaining)
            return list(self.received)

    def of_type(self, event_type: str) -> list[Received]:
        with self._changed:
            return [r for r in self.received if r.event["type"] == event_type]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class Catalog:
    """The products of a test, created through stripe-python."""

    client: stripe.StripeClient

    def product(self, product_id: str, *, currency: str = "usd", unit_amount: int = 1000,
                interval: str | None = None, tax_behavior: str = "unspecified", prices: int = 1) -> str:
        """Create *product_id* with *prices* identical prices; returns the first price's id."""
        self.client.v1.products.create({"id": product_id, "name": product_id.replace("_", " ").title()})
        first = ""
        for _ in range(prices):
            params: dict[str, Any] = {"product": product_id, "currency": currency, "unit_amount": unit_amount,
                                      "tax_behavior": tax_behavior}
            if interval:
                params["recurring"] = {"interval": interval}
            price = self.client.v1.prices.create(params)  # type: ignore[arg-type]
            first = first or price.id
        return first


@contextlib.contextmanager
def sim_process(*args: str) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """``crossfill sim --port 0 *args`` as a real process; yields it and its URL, stops it after."""
    proc = subprocess.Popen([sys.executable, "-m", "crossfill.cli", "sim", "--port", "0", *args], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        assert proc.stdout is not None
        url = ""
        deadline = time.monotonic() + 30  # generous: the machine may be busy
        while not url and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line and proc.poll() is not None:
                break
            match = re.search(r"listening on (http://\S+)", line)
            url = match.group(1) if match else ""
        assert url, f"crossfill sim did not start (exit code {proc.poll()})"
        yield proc, url
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
