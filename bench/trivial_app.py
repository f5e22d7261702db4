"""The benchmark's baseline: a 200-only Flask endpoint at the receiver's path, nothing else.

It reads the body and answers ``{"received": true}`` like the receiver, but verifies, records and
enqueues nothing, so that serving it costs what gunicorn + Flask cost and no more. The benchmark
serves it with the receiver's own gunicorn configuration (``webhooks.gunicorn_conf``).
"""
from __future__ import annotations

from flask import Flask, Response, jsonify, request


def create_app() -> Flask:
    """Build the baseline app (gunicorn: ``trivial_app:create_app()``)."""
    app = Flask(__name__)

    @app.post("/webhooks/stripe")
    def receive() -> Response:
        request.get_data()
        return jsonify({"received": True})

    @app.get("/healthz")
    def healthz() -> Response:  # the load generator's connection check (bench/flash_sale.py)
        return Response("ok\n", mimetype="text/plain")

    return app
