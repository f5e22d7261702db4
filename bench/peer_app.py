"""The synchronous peer: a webhook receiver built the way Stripe's fulfillment guide builds one.

Served by ``bench/peer_sync.py`` under crossfill's gunicorn configuration, as
``gunicorn ... 'peer_app:create_app()'``. Inside the webhook request it:

1. verifies the signature with the ``stripe`` SDK (``StripeClient.construct_event``);
2. for ``checkout.session.completed`` / ``async_payment_succeeded``, retrieves the session with its
   line items expanded (one API call, the SDK's own retries on);
3. when the session is paid, posts each line item to the fulfillment system (the same sink, the
   same ``Idempotency-Key`` = session:line item, signed as crossfill signs its calls);
4. answers 200 only then; anything that fails answers 500, so Stripe would deliver again.

This is the pattern most Stripe users run; nothing here queues or limits its own rate. Settings come
from the environment of the benchmark: ``STRIPE_API_KEY``, ``STRIPE_API_BASE``,
``STRIPE_WEBHOOK_SECRET``, ``BENCH_SINK_URL``, ``CROSSFILL_HANDLER_SECRET``.
"""
from __future__ import annotations

import json
import os
import time
from typing import Any

import requests
import stripe
from flask import Flask, Response, jsonify, request

from fulfillment.signing import sign

FULFILLED_TYPES = ("checkout.session.completed", "checkout.session.async_payment_succeeded")


def create_app() -> Flask:
    app = Flask(__name__)
    client = stripe.StripeClient(os.environ["STRIPE_API_KEY"],
                                 base_addresses={"api": os.environ["STRIPE_API_BASE"]})
    secret = os.environ["STRIPE_WEBHOOK_SECRET"]
    sink_url = os.environ["BENCH_SINK_URL"]
    sink_secret = os.environ["CROSSFILL_HANDLER_SECRET"]
    http = requests.Session()

    def fulfill(session_id: str) -> None:
        session = client.checkout.sessions.retrieve(session_id, {"expand": ["line_items"]})
        if session.payment_status == "unpaid":
            return
        for item in session.line_items.data if session.line_items else []:
            body = json.dumps({"session_id": session_id, "line_item_id": item.id, "quantity": item.quantity,
                               "price": item.price.id if item.price else None}).encode()
            answer = http.post(sink_url, data=body, timeout=10, headers={
                "Content-Type": "application/json", "Idempotency-Key": f"{session_id}:{item.id}",
                "Crossfill-Signature": sign(body, [sink_secret], timestamp=int(time.time()))})
            answer.raise_for_status()

    @app.post("/webhooks/stripe")
    def webhook() -> Any:
        try:
            event = client.construct_event(request.get_data(), request.headers.get("Stripe-Signature", ""), secret)
        except (ValueError, stripe.SignatureVerificationError):
            return jsonify(error="bad payload or signature"), 400
        if event.type in FULFILLED_TYPES:
            fulfill(event.data.object["id"])
        return jsonify(received=True)

    @app.get("/healthz")
    def healthz() -> Response:
        return Response("ok\n", mimetype="text/plain")

    return app
