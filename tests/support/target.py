"""A local fulfillment system: an HTTP server that counts crossfill's calls by idempotency key."""
from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from fulfillment.signing import compute_signature


class FulfillmentTarget:
    """Answers POSTs with a scripted status; records every call and the unique effects.

    ``calls`` counts requests per idempotency key (retries included); ``effects`` is what a
    well-behaved fulfillment system would do: one effect per key, however often it is called. A call
    must carry both signatures (``Crossfill-Signature``, and Standard Webhooks' checked by its own
    library) under *secret*, or under its order's account's secret in *account_secrets*: else 401.
    """

    def __init__(self, secret: str, account_secrets: Mapping[str, str] | None = None) -> None:
        self.secret = secret
        self.account_secrets = dict(account_secrets or {})
        self.status = 200
        self.delay_s = 0.0
        self.calls: Counter[str] = Counter()
        self.effects: dict[str, dict[str, Any]] = {}
        self.bad_signatures = 0
        self.entered = threading.Event()  #: set when a call starts (to crash a worker mid-call)
        self._lock = threading.Lock()
        target = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                key = self.headers.get("Idempotency-Key", "")
                target.entered.set()
                if target.delay_s:
                    time.sleep(target.delay_s)
                status = target.record(key, body, dict(self.headers.items()))
                payload = json.dumps({"ok": 200 <= status < 300, "key": key}).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the caller died mid-request (a worker killed on purpose)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/fulfill"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def record(self, key: str, body: bytes, headers: Mapping[str, str]) -> int:
        valid = self.is_signed(body, headers)
        with self._lock:
            self.calls[key] += 1
            if not valid:
                self.bad_signatures += 1
                return 401
            if 200 <= self.status < 300:
                self.effects.setdefault(key, json.loads(body))
            return self.status

    def is_signed(self, body: bytes, headers: Mapping[str, str]) -> bool:
        """Whether both signatures of a call hold under the secret of its order's account."""
        try:
            account = json.loads(body).get("order", {}).get("account")
        except (ValueError, AttributeError):
            return False
        secret = self.account_secrets.get(account, self.secret)
        lowered = {name.lower(): value for name, value in headers.items()}
        parts = dict(part.split("=", 1) for part in lowered.get("crossfill-signature", "").split(",") if "=" in part)
        if parts.get("v1") != compute_signature(body, secret, int(parts.get("t", "0") or 0)):
            return False
        try:  # the library's own key rule: whsec_ + base64 decoded, anything else as its bytes
            Webhook(secret if secret.startswith("whsec_") else secret.encode()).verify(body, lowered)
        except (WebhookVerificationError, ValueError):
            return False
        return lowered.get("webhook-id") == lowered.get("idempotency-key")

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
