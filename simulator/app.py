"""The simulator's Flask app: the factory and what happens around every request.

The views live with their surface: :mod:`simulator.api` (``/v1``, Stripe's API) and
:mod:`simulator.dashboard` (``/sim``, Dashboard, buyer, delivery control and faults). Around each
``/v1`` request this module does what Stripe does: authenticate the key (of the mode of the
account acted for), enforce rate limits, apply injected faults, replay Idempotency-Keys, tally the
answer; and it renders every error in Stripe's ``{"error": {...}}`` shape.
"""
from __future__ import annotations

import logging
import re
import time

from flask import Flask, Response, g, jsonify, request
from werkzeug.exceptions import HTTPException

from simulator import defaults
from simulator.api import api
from simulator.config import SimConfig
from simulator.context import EXTENSION, current_account, current_sim, current_store, request_id
from simulator.dashboard import sim
from simulator.errors import ApiError, AuthenticationFailed, RateLimited
from simulator.idempotency import SavedResponse
from simulator.simulation import Simulator
from simulator.store import Store
from simulator.v2 import v2

log = logging.getLogger(__name__)

_API_KEY = re.compile(r"^(sk|rk)_(test|live)_[A-Za-z0-9_]+$")
_ROUTE_ARGUMENT = re.compile(r"<[^>]+>")


def create_sim_app(config: SimConfig | None = None, *, simulator: Simulator | None = None) -> Flask:
    """Build the simulator's Flask app around *simulator* (a new one from *config* by default)."""
    app = Flask(__name__)
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions[EXTENSION] = simulator or Simulator(config)
    app.register_blueprint(api)
    app.register_blueprint(sim)
    app.register_blueprint(v2)
    app.before_request(_before_api)
    app.after_request(_after_api)
    app.teardown_request(_teardown_api)
    app.after_request(_stamp)
    app.register_error_handler(ApiError, _error_response)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _crash)
    return app


# -- around every /v1 request ------------------------------------------------------------------------

def _is_api() -> bool:
    return request.blueprint in (api.name, v2.name)


def _before_api() -> Response | None:
    if not _is_api():
        return None
    g.api_key = _authenticate()
    _check_mode(g.api_key, current_store())  # an unknown Stripe-Account is refused here too
    _limit_rate()
    decision = current_sim().faults.decide(request.path, request.method)
    if decision.delay_s:
        time.sleep(decision.delay_s)
    if decision.error is not None:
        raise decision.error
    key = request.headers.get("Idempotency-Key")
    if request.method == "POST" and key:
        fingerprint = (request.method, request.path, request.get_data(cache=True))
        saved = current_sim().idempotency.begin(_idempotency_scope(), key, fingerprint)
        if saved is not None:
            response = Response(saved.body, status=saved.status, mimetype="application/json")
            response.headers["Request-Id"] = saved.request_id
            response.headers["Idempotent-Replayed"] = "true"
            response.headers["Idempotency-Key"] = key
            return response
        g.idempotency_key = key
    return None


def _after_api(response: Response) -> Response:
    if _is_api():
        current_sim().rate_limiter.record(current_account() or defaults.PLATFORM_ACCOUNT, _endpoint(),
                                          response.status_code)
    key = g.pop("idempotency_key", None)
    if key is not None:
        keep = response.status_code < 500 and response.status_code not in (409, 429)
        saved = SavedResponse(response.status_code, response.get_data(), request_id()) if keep else None
        current_sim().idempotency.finish(_idempotency_scope(), key, saved)
        response.headers["Idempotency-Key"] = key
    return response


def _teardown_api(error: BaseException | None) -> None:
    key = g.pop("idempotency_key", None)
    if key is not None:
        current_sim().idempotency.finish(_idempotency_scope(), key, None)


def _idempotency_scope() -> str:
    """Keys are the API key's, per account acted for (as Stripe scopes them)."""
    return f"{g.api_key}:{current_account() or ''}"


def _endpoint() -> str:
    """The operation asked for, as Stripe counts endpoints: ``GET /v1/checkout/sessions/{id}``."""
    rule = request.url_rule.rule if request.url_rule is not None else request.path
    return f"{request.method} {_ROUTE_ARGUMENT.sub('{id}', rule)}"


def _limit_rate() -> None:
    limiter = current_sim().rate_limiter
    if not limiter.limits.enabled:
        return
    endpoint = _endpoint()
    refusal = limiter.admit(current_account() or defaults.PLATFORM_ACCOUNT, endpoint)
    if refusal is not None:
        where = "this account" if refusal.scope == "account" else endpoint
        raise RateLimited(
            f"Request rate limit exceeded: at most {refusal.limit_per_s} requests per second to {where} "
            f"({limiter.limits.mode} mode). Slow down, and retry with backoff; see "
            "https://docs.stripe.com/rate-limits")


def _authenticate() -> str:
    header = request.headers.get("Authorization", "")
    if not header:
        raise AuthenticationFailed(
            "You did not provide an API key. You need to provide your API key in the Authorization header, "
            "using Bearer auth (e.g. 'Authorization: Bearer sk_test_...').")
    scheme, _, credential = header.partition(" ")
    if scheme.lower() == "basic" and request.authorization is not None:
        credential = request.authorization.username or ""
    elif scheme.lower() != "bearer":
        raise AuthenticationFailed(f"Invalid Authorization header scheme {scheme!r}; use 'Bearer sk_test_...'")
    if not _API_KEY.match(credential):
        shown = credential[:8] + "*" * max(0, len(credential) - 12) + credential[-4:] if credential else "(empty)"
        raise AuthenticationFailed(f"Invalid API Key provided: {shown}; the simulator accepts any sk_test_... key "
                                   "(sk_live_... in live mode)")
    return credential


def _check_mode(api_key: str, store: Store) -> None:
    """A test key reads test objects only, a live key live ones (as on Stripe)."""
    live_key = api_key.split("_")[1] == "live"
    if live_key != store.livemode:
        whose = f"account {store.account}" if store.account else "the platform's account"
        raise AuthenticationFailed(
            f"A {'live' if live_key else 'test'} mode key was used, but {whose} is in "
            f"{'live' if store.livemode else 'test'} mode here; use an {api_key[:2]}_"
            f"{'live' if store.livemode else 'test'}_... key")


# -- every answer ------------------------------------------------------------------------------------

def _stamp(response: Response) -> Response:
    response.headers.setdefault("Request-Id", request_id())
    response.headers["Stripe-Version"] = request.headers.get("Stripe-Version", defaults.API_VERSION)
    return response


def _error_response(error: ApiError) -> Response:
    response = jsonify(error.to_json())
    response.status_code = error.status
    for name, value in error.headers().items():
        response.headers[name] = value
    return response


def _http_error(error: HTTPException) -> Response:
    status = error.code or 500
    message = (f"Unrecognized request URL ({request.method}: {request.path}). Please see "
               "https://stripe.com/docs or the simulator's README for the supported paths.")
    if status not in (404, 405):
        message = error.description or str(error)
    failure = ApiError(message)
    failure.status = 404 if status == 405 else status
    return _error_response(failure)


def _crash(error: Exception) -> Response:
    log.exception("simulator crashed on %s %s", request.method, request.path)
    failure = ApiError(f"The simulator failed on this request ({type(error).__name__}); see its log")
    failure.status, failure.kind = 500, "api_error"
    return _error_response(failure)
