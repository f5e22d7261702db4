"""The Flask app factory and the receiver view."""
from __future__ import annotations

import logging
import time
from typing import Any

import redis
from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from fulfillment.errors import ConfigError, StoreUnavailable
from fulfillment.events import action_type, is_handled
from fulfillment.inbox import DUPLICATE, REQUEUED, TWINNED, Inbox
from fulfillment.livemode import MISMATCH, is_mismatch
from fulfillment.problems import Problem, from_http_exception, internal
from fulfillment.settings import Settings, load_settings
from fulfillment.stats import LIVEMODE_MISMATCH, Stats
from fulfillment.store import connect
from messaging.dispatch import enqueue_event
from webhooks import defaults
from webhooks.delivery import parse_delivery
from webhooks.errors import InvalidPayload, PayloadTooLarge, SignatureVerificationError, WebhookError
from webhooks.metrics import ReceiverMetrics
from webhooks.settings import ReceiverSettings, load_receiver_settings
from webhooks.signature import verify

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None, receiver: ReceiverSettings | None = None) -> Flask:
    """Build the receiver. Settings not given are read from the environment (the edge).

    Raises:
        ConfigError: when no webhook secret or no Redis URL is configured.
    """
    settings = load_settings() if settings is None else settings
    receiver = load_receiver_settings() if receiver is None else receiver
    if not receiver.webhook_secrets:
        raise ConfigError("STRIPE_WEBHOOK_SECRET", "", "set the endpoint's signing secret (whsec_...)")
    client = connect(settings.resolved_redis_url, master_name=settings.redis.sentinel_master)
    # A redelivery of an event stuck in flight past the threshold pushes its message again (lost by a worker);
    # under Sentinel a delivery is answered 200 only once a replica holds it (else 503: Stripe retries).
    inbox = Inbox(client, ttl_s=settings.recovery.retention, stuck_after_s=settings.recovery.stuck_after,
                  replication=settings.redis.replication)
    stats = Stats(client)
    # The receiver queues through messaging.dispatch (the message pushed inside the inbox's script);
    # it never publishes through Celery's producer nor reads a result. It counts; /metrics is served
    # inside, on its own port (webhooks/metrics_server.py), never here.
    metrics = ReceiverMetrics()

    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = None  # the view enforces the limit itself, with a JSON answer
    app.extensions["crossfill"] = {"settings": settings, "receiver": receiver, "inbox": inbox, "metrics": metrics}

    def answer(status: int, body: dict[str, Any], event_type: str | None, outcome: str, started: float,
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
            body = _read_body(receiver.max_body_bytes)
            verify(body, request.headers.get("Stripe-Signature", ""), receiver.webhook_secrets,
                   now=time.time(), tolerance=receiver.signature_tolerance)
            event = parse_delivery(body)  # a snapshot event or a thin notification (webhooks/delivery.py)
        except PayloadTooLarge as error:
            return answer(error.status, error.to_json(), None, "too_large", started)
        except SignatureVerificationError as error:
            return answer(error.status, error.to_json(), None, "bad_signature", started)
        except WebhookError as error:
            return answer(error.status, error.to_json(), None, "bad_request", started)

        # Metrics count a thin notification under the snapshot type it announces.
        event_id, event_type = event.id, action_type(event.type)
        try:
            if is_mismatch(event.livemode, receiver.livemode):
                # Stripe sends test events of connected accounts to live Connect endpoints too: check livemode.
                inbox.record_ignored(event_id, event.type, reason=MISMATCH, session_id=event.session_id)
                stats.incr(LIVEMODE_MISMATCH, "receiver")
                return answer(200, {"received": True, "ignored": True, "reason": MISMATCH}, event_type, "ignored",
                              started)
            if not is_handled(event.type):
                inbox.record_ignored(event_id, event.type)
                return answer(200, {"received": True, "ignored": True}, event_type, "ignored", started)
            # Recorded and enqueued in one atomic Redis call (messaging/dispatch.py): either both or neither.
            outcome, first = enqueue_event(inbox, event_id, event.type, event.session_id, body.decode("utf-8"),
                                           account=event.account, livemode=event.livemode, change=event.change)
        except StoreUnavailable as error:
            return unavailable(event_type, started, str(error))
        if outcome == DUPLICATE:
            return answer(200, {"received": True, "duplicate": True}, event_type, "duplicate", started)
        if outcome == TWINNED:  # its snapshot (or thin) twin was recorded first, and is processed
            return answer(200, {"received": True, "duplicate": True, "twin": first}, event_type, "duplicate",
                          started)
        if outcome == REQUEUED:
            log.warning("event %s was stuck in flight (its message lost); enqueued again", event_id)
            return answer(200, {"received": True, "requeued": True}, event_type, "requeued", started)
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

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Response:
        return problem_response(from_http_exception(error))

    @app.errorhandler(Exception)
    def unexpected(error: Exception) -> Response:
        # Never a stack trace to a client; the log keeps it for us.
        log.exception("unexpected error while serving %s %s", request.method, request.path)
        return problem_response(internal())

    return app


def problem_response(problem: Problem) -> Response:
    """A refused request's JSON answer, with the problem's status and headers."""
    response = jsonify(problem.to_json())
    response.status_code = problem.status
    response.headers.update(problem.headers)
    return response


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
    if declared is not None and len(body) < declared:  # the sender stopped early: not the body it signed
        raise InvalidPayload(f"the body ended after {len(body)} of the {declared} bytes its Content-Length "
                             "announced")
    return body

