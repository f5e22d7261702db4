"""The Flask app factory and the receiver view."""
from __future__ import annotations

import logging
import time
from typing import Any

import redis
from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from fulfillment import defaults
from fulfillment.errors import ConfigError, StoreUnavailable
from fulfillment.inbox import DUPLICATE, Inbox
from fulfillment.settings import Settings, load_settings
from fulfillment.store import connect
from webhooks.envelope import HANDLED_TYPES, parse_event
from webhooks.errors import InvalidPayload, PayloadTooLarge, SignatureVerificationError, WebhookError
from webhooks.metrics import ReceiverMetrics, StateCollector
from webhooks.signature import verify
from worker.app import EVENTS_QUEUE, FULFILLMENT_QUEUE, PROCESS_EVENT, make_celery, task_message

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None) -> Flask:
    """Build the receiver. With no *settings*, they are read from the environment (the edge).

    Raises:
        ConfigError: when no webhook secret or no Redis URL is configured.
    """
    settings = load_settings() if settings is None else settings
    if not settings.webhook_secrets:
        raise ConfigError("STRIPE_WEBHOOK_SECRET", "", "set the endpoint's signing secret (whsec_...)")
    client = connect(settings.resolved_redis_url)
    inbox = Inbox(client)
    celery = make_celery(settings)
    # The receiver builds task messages with Celery (task_message) and pushes them itself, inside
    # the inbox's script; it never publishes through Celery's producer nor reads a result.
    metrics = ReceiverMetrics(StateCollector(client, (EVENTS_QUEUE, FULFILLMENT_QUEUE)))

    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = None  # the view enforces the limit itself, with a JSON answer
    app.extensions["crossfill"] = {"settings": settings, "inbox": inbox, "celery": celery, "metrics": metrics}

    def answer(status: int, body: dict[str, Any], event_type: str, outcome: str, started: float,
               headers: dict[str, str] | None = None) -> Response:
        metrics.observe(event_type, outcome, time.perf_counter() - started)
        response = jsonify(body)
        response.status_code = status
        response.headers.update(headers or {})
        return response

    def unavailable(event_type: str, started: float, reason: str) -> Response:
        log.warning("webhook refused, dependency down: %s", reason)
        return answer(503, {"error": {"type": "unavailable",
                                      "message": "crossfill cannot record events right now; retry later"}},
                      event_type, "unavailable", started, {"Retry-After": str(defaults.RETRY_AFTER_S)})

    @app.post("/webhooks/stripe")
    def receive() -> Response:
        started = time.perf_counter()
        try:
            body = _read_body(settings.max_body_bytes)
            verify(body, request.headers.get("Stripe-Signature", ""), settings.webhook_secrets,
                   now=time.time(), tolerance=settings.signature_tolerance)
            event = parse_event(body)
        except PayloadTooLarge as error:
            return answer(error.status, error.to_json(), "unknown", "too_large", started)
        except SignatureVerificationError as error:
            return answer(error.status, error.to_json(), "unknown", "bad_signature", started)
        except WebhookError as error:
            return answer(error.status, error.to_json(), "unknown", "bad_request", started)

        event_id, event_type = event["id"], event["type"]
        try:
            if event_type not in HANDLED_TYPES:
                inbox.record_ignored(event_id, event_type)
                return answer(200, {"received": True, "ignored": True}, event_type, "ignored", started)
            # Recorded and enqueued in one atomic Redis call (fulfillment/inbox.py): either both or neither.
            message = task_message(celery, PROCESS_EVENT, [event_id], queue=EVENTS_QUEUE)
            outcome, _ = inbox.record(event_id, event_type, event["data"]["object"]["id"], body.decode("utf-8"),
                                      queue=EVENTS_QUEUE, message=message)
        except StoreUnavailable as error:
            return unavailable(event_type, started, str(error))
        if outcome == DUPLICATE:
            return answer(200, {"received": True, "duplicate": True}, event_type, "duplicate", started)
        log.info("event enqueued", extra={"event_id": event_id, "type": event_type})
        return answer(200, {"received": True}, event_type, "accepted", started)

    @app.get("/healthz")
    def healthz() -> Response:
        return jsonify({"status": "ok"})

    @app.get("/readyz")
    def readyz() -> Response | tuple[Response, int, dict[str, str]]:
        try:
            client.ping()
        except redis.RedisError as error:
            return (jsonify({"status": "unavailable", "redis": type(error).__name__}), 503,
                    {"Retry-After": str(defaults.RETRY_AFTER_S)})
        return jsonify({"status": "ready", "redis": "ok"})

    @app.get("/metrics")
    def metrics_view() -> Response:
        return Response(metrics.render(), mimetype="text/plain; version=0.0.4; charset=utf-8")

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Response:
        response = jsonify({"error": {"type": "http", "message": f"{error.code} {error.name}: {error.description}"}})
        response.status_code = error.code or 500
        if error.code == 405 and error.valid_methods:  # type: ignore[attr-defined]
            response.headers["Allow"] = ", ".join(error.valid_methods)  # type: ignore[attr-defined]
        return response

    @app.errorhandler(Exception)
    def unexpected(error: Exception) -> Response:
        # Never a stack trace to a client; the log keeps it for us.
        log.exception("unexpected error while serving %s %s", request.method, request.path)
        response = jsonify({"error": {"type": "internal", "message": "internal error; it has been logged"}})
        response.status_code = 500
        return response

    return app


def _read_body(limit: int) -> bytes:
    """Read at most *limit* bytes of the raw body, whatever Content-Length claims."""
    declared = request.content_length
    if declared is not None and declared > limit:
        raise PayloadTooLarge(f"the body is {declared} bytes; at most {limit} are accepted")
    try:
        body = request.stream.read(limit + 1)
    except Exception as error:  # noqa: BLE001 - the server's framing errors (bad chunked encoding,
        # a client gone mid-body) share no base class; they are the sender's fault, never a 500.
        raise InvalidPayload(f"the request body could not be read ({type(error).__name__})") from None
    if len(body) > limit:
        raise PayloadTooLarge(f"the body is over {limit} bytes; at most {limit} are accepted")
    return body

