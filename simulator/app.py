"""The simulator's HTTP shell: Stripe's ``/v1`` API and the ``/sim`` Dashboard, buyer and fault actions.

Views only parse params and call :class:`simulator.state.Store`; the ``/v1`` hooks do what Stripe
does around every request: authenticate the key, apply injected faults, replay Idempotency-Keys.
"""
from __future__ import annotations

import logging
import re
import time
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, Flask, Response, current_app, g, jsonify, request
from werkzeug.exceptions import HTTPException

from simulator import defaults
from simulator.config import SimConfig
from simulator.delivery import Dispatcher
from simulator.errors import ApiError, AuthenticationFailed, InvalidRequest
from simulator.faults import FaultInjector, plan_faults
from simulator.forms import decode, parse_query
from simulator.idempotency import IdempotencyCache, SavedResponse
from simulator.params import Params, to_int
from simulator.resources import new_id
from simulator.state import INTERVALS, MODES, OUTCOMES, TAX_BEHAVIORS, LineItemSpec, RequestInfo, Store

log = logging.getLogger(__name__)

_API_KEY = re.compile(r"^(sk|rk)_test_[A-Za-z0-9_]+$")
_EVENT_TYPE = re.compile(r"^(\*|[a-z_]+(\.[a-z_]+)+)$")
EXTENSION = "crossfill_sim"


class Simulator:
    """One simulated Stripe account: its objects, webhook delivery, faults and idempotency keys."""

    def __init__(self, config: SimConfig | None = None) -> None:
        self.config = config or SimConfig()
        self.store = Store(self.config)
        self.dispatcher = Dispatcher(self.config, self.store.endpoint_secrets)
        self.store.set_event_hook(lambda event, endpoints: self.dispatcher.dispatch(event, endpoints))
        self.faults = FaultInjector()
        self.idempotency = IdempotencyCache()

    def close(self) -> None:
        """Stop webhook delivery (its threads); the objects stay readable."""
        self.dispatcher.stop()


def create_sim_app(config: SimConfig | None = None, *, simulator: Simulator | None = None) -> Flask:
    """Build the simulator's Flask app around *simulator* (a new one from *config* by default)."""
    app = Flask(__name__)
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions[EXTENSION] = simulator or Simulator(config)
    app.register_blueprint(api)
    app.register_blueprint(sim)

    @app.errorhandler(ApiError)
    def api_error(error: ApiError) -> Response:
        return _error_response(error)

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Response:
        status = error.code or 500
        message = (f"Unrecognized request URL ({request.method}: {request.path}). Please see "
                   "https://stripe.com/docs or the simulator's README for the supported paths.")
        if status not in (404, 405):
            message = error.description or str(error)
        failure = ApiError(message)
        failure.status = 404 if status == 405 else status
        return _error_response(failure)

    @app.errorhandler(Exception)
    def crash(error: Exception) -> Response:
        log.exception("simulator crashed on %s %s", request.method, request.path)
        failure = ApiError(f"The simulator failed on this request ({type(error).__name__}); see its log")
        failure.status, failure.kind = 500, "api_error"
        return _error_response(failure)

    @app.after_request
    def stamp(response: Response) -> Response:
        response.headers.setdefault("Request-Id", _request_id())
        response.headers["Stripe-Version"] = request.headers.get("Stripe-Version", defaults.API_VERSION)
        return response

    return app


def current_sim() -> Simulator:
    """The simulator behind the app serving this request."""
    return current_app.extensions[EXTENSION]  # type: ignore[no-any-return]


def _request_id() -> str:
    if "request_id" not in g:
        g.request_id = new_id("req_", 14)
    return str(g.request_id)


def _error_response(error: ApiError) -> Response:
    response = jsonify(error.to_json())
    response.status_code = error.status
    for name, value in error.headers().items():
        response.headers[name] = value
    return response


def _params() -> Params:
    if "params" not in g:
        pairs = parse_query(request.query_string)
        if request.method == "POST":
            if request.is_json and request.blueprint == "sim":
                g.params = Params(_stringify(request.get_json(silent=True) or {}) | decode(pairs))
                return g.params  # type: ignore[no-any-return]
            pairs += parse_query(request.get_data(cache=True))
        g.params = Params(decode(pairs))
    return g.params  # type: ignore[no-any-return]


def _stringify(value: Any) -> Any:
    """JSON bodies of /sim calls, as strings the way a form would carry them."""
    if isinstance(value, dict):
        return {str(k): _stringify(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_stringify(v) for v in value]
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def _request_info() -> RequestInfo:
    return RequestInfo(id=_request_id(), idempotency_key=request.headers.get("Idempotency-Key"))


def _expansions(params: Params, *allowed: str) -> set[str]:
    wanted = set(params.expand())
    for path in wanted - set(allowed):
        raise InvalidRequest(f"This property cannot be expanded ({path}).", param="expand")
    return wanted


# -- /v1: Stripe's API ------------------------------------------------------------------------------

api = Blueprint("api", __name__, url_prefix="/v1")


@api.before_request
def before_api() -> Response | None:
    g.api_key = _authenticate()
    decision = current_sim().faults.decide(request.path)
    if decision.delay_s:
        time.sleep(decision.delay_s)
    if decision.error is not None:
        raise decision.error
    key = request.headers.get("Idempotency-Key")
    if request.method == "POST" and key:
        fingerprint = (request.method, request.path, request.get_data(cache=True))
        saved = current_sim().idempotency.begin(g.api_key, key, fingerprint)
        if saved is not None:
            response = Response(saved.body, status=saved.status, mimetype="application/json")
            response.headers["Request-Id"] = saved.request_id
            response.headers["Idempotent-Replayed"] = "true"
            response.headers["Idempotency-Key"] = key
            return response
        g.idempotency_key = key
    return None


@api.after_request
def after_api(response: Response) -> Response:
    key = g.pop("idempotency_key", None)
    if key is not None:
        keep = response.status_code < 500 and response.status_code not in (409, 429)
        saved = SavedResponse(response.status_code, response.get_data(), _request_id()) if keep else None
        current_sim().idempotency.finish(g.api_key, key, saved)
        response.headers["Idempotency-Key"] = key
    return response


@api.teardown_request
def teardown_api(error: BaseException | None) -> None:
    key = g.pop("idempotency_key", None)
    if key is not None:
        current_sim().idempotency.finish(g.api_key, key, None)


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
        raise AuthenticationFailed(f"Invalid API Key provided: {shown}; the simulator accepts any sk_test_... key")
    return credential


@api.post("/products")
def create_product() -> Any:
    params = _params()
    params.allow("id", "name", "active", "description", "metadata")
    name = params.string("name", required=True)
    assert name is not None
    return current_sim().store.create_product(
        name=name, product_id=params.string("id", max_length=255), active=params.boolean("active", default=True),
        description=params.string("description"), metadata=params.metadata(), request=_request_info())


@api.get("/products")
def list_products() -> Any:
    params = _params()
    params.allow("active", "limit", "starting_after", "ending_before")
    active = params.boolean("active") if "active" in params else None
    return current_sim().store.list_products(params, active)


@api.get("/products/<product_id>")
def get_product(product_id: str) -> Any:
    _params().allow()
    return current_sim().store.get_product(product_id)


@api.post("/products/<product_id>")
def update_product(product_id: str) -> Any:
    params = _params()
    params.allow("name", "active", "description", "metadata")
    active = params.boolean("active") if "active" in params else None
    return current_sim().store.update_product(
        product_id, name=params.string("name"), active=active, description=params.string("description"),
        metadata=params.metadata(), request=_request_info())


@api.post("/prices")
def create_price() -> Any:
    params = _params()
    params.allow("product", "currency", "unit_amount", "recurring", "tax_behavior", "active", "nickname",
                 "lookup_key", "metadata")
    product = params.string("product", required=True)
    currency = params.currency("currency", required=True)
    unit_amount = params.integer("unit_amount", required=True, minimum=0, maximum=99_999_999)
    recurring = Params(params.hash("recurring"))
    interval = recurring.choice("interval", INTERVALS, required="recurring" in params)
    interval_count = recurring.integer("interval_count", minimum=1, maximum=365) if interval else None
    if "interval_count" in recurring and interval is None:
        raise InvalidRequest("recurring[interval_count] needs recurring[interval]", param="recurring[interval]")
    assert product is not None and currency is not None and unit_amount is not None
    return current_sim().store.create_price(
        product=product, currency=currency, unit_amount=unit_amount, interval=interval,
        interval_count=interval_count,
        tax_behavior=params.choice("tax_behavior", TAX_BEHAVIORS, default="unspecified") or "unspecified",
        active=params.boolean("active", default=True), nickname=params.string("nickname"),
        lookup_key=params.string("lookup_key"), metadata=params.metadata(), request=_request_info())


@api.get("/prices/<price_id>")
def get_price(price_id: str) -> Any:
    params = _params()
    params.allow()
    return current_sim().store.get_price(price_id, expand_product="product" in _expansions(params, "product"))


@api.get("/prices")
def list_prices() -> Any:
    params = _params()
    params.allow("product", "active", "limit", "starting_after", "ending_before")
    active = params.boolean("active") if "active" in params else None
    return current_sim().store.list_prices(params, product=params.string("product"), active=active,
                                           expand_product="data.product" in _expansions(params, "data.product"))


@api.post("/checkout/sessions")
def create_session() -> Any:
    params = _params()
    params.allow("mode", "line_items", "automatic_tax", "metadata", "client_reference_id", "customer_email",
                 "success_url", "cancel_url", "sim")
    mode = params.choice("mode", MODES, required=True)
    assert mode is not None
    extras = Params(params.hash("sim"))
    extras.allow("subscription_upsells")
    return current_sim().store.create_session(
        mode=mode, line_items=_line_items(params), base_url=request.host_url,
        automatic_tax=Params(params.hash("automatic_tax")).boolean("enabled"),
        subscription_upsells=extras.boolean("subscription_upsells"), metadata=params.metadata(),
        client_reference_id=params.string("client_reference_id", max_length=200),
        customer_email=params.string("customer_email"), success_url=params.string("success_url"),
        cancel_url=params.string("cancel_url"))


def _line_items(params: Params) -> list[LineItemSpec]:
    raw = params.raw("line_items")
    if raw is None or raw == "":
        return []
    if not isinstance(raw, list) or not all(isinstance(item, dict) for item in raw):
        raise InvalidRequest("line_items must be a list: line_items[0][price]=...&line_items[0][quantity]=...",
                             param="line_items")
    specs = []
    for index, item in enumerate(raw):
        where = f"line_items[{index}]"
        for name in item:
            if name not in ("price", "quantity"):
                raise InvalidRequest(f"Received unknown parameter: {where}[{name}]", param=f"{where}[{name}]")
        if not item.get("price"):
            raise InvalidRequest(f"Missing required param: {where}[price].", param=f"{where}[price]",
                                 code="parameter_missing")
        if item.get("quantity") in (None, ""):
            raise InvalidRequest(f"Quantity is required. Add `quantity` to `{where}`", param=f"{where}[quantity]",
                                 code="parameter_missing")
        quantity = to_int(item["quantity"], f"{where}[quantity]", minimum=1, maximum=999_999)
        specs.append(LineItemSpec(price=str(item["price"]), quantity=quantity))
    return specs


@api.get("/checkout/sessions")
def list_sessions() -> Any:
    params = _params()
    params.allow("status", "limit", "starting_after", "ending_before")
    return current_sim().store.list_sessions(params, status=params.choice("status", ("open", "complete", "expired")))


@api.get("/checkout/sessions/<session_id>")
def get_session(session_id: str) -> Any:
    params = _params()
    params.allow()
    wanted = _expansions(params, "line_items", "line_items.data.price.product")
    return current_sim().store.get_session(session_id, expand_line_items=bool(wanted),
                                           expand_product="line_items.data.price.product" in wanted)


@api.post("/checkout/sessions/<session_id>/expire")
def expire_session_api(session_id: str) -> Any:
    _params().allow()
    current_sim().store.expire_session(session_id)
    return current_sim().store.get_session(session_id)


@api.get("/checkout/sessions/<session_id>/line_items")
def list_line_items(session_id: str) -> Any:
    params = _params()
    params.allow("limit", "starting_after", "ending_before")
    expand = "data.price.product" in _expansions(params, "data.price.product")
    return current_sim().store.list_line_items(session_id, params, expand_product=expand)


@api.get("/events")
def list_events() -> Any:
    params = _params()
    params.allow("type", "types", "created", "limit", "starting_after", "ending_before", "delivery_success")
    types = params.strings("types")
    single = params.string("type")
    if single and types:
        raise InvalidRequest("You may only specify one of these parameters: type, types.", param="types")
    if len(types) > 20:
        raise InvalidRequest(f"types takes at most 20 event types (got {len(types)})", param="types")
    listed = current_sim().store.list_events(params, types=[single] if single else types, created=_created(params))
    listed["data"] = [_with_pending(event) for event in listed["data"]]
    return listed


def _with_pending(event: dict[str, Any]) -> dict[str, Any]:
    """The event with ``pending_webhooks`` as of now (deliveries not yet acknowledged nor given up)."""
    return {**event, "pending_webhooks": current_sim().dispatcher.pending_count(event["id"])}


def _created(params: Params) -> dict[str, int]:
    raw = params.raw("created")
    if raw is None or raw == "":
        return {}
    if isinstance(raw, str):
        exact = to_int(raw, "created")
        return {"gte": exact, "lte": exact}
    if not isinstance(raw, dict):
        raise InvalidRequest("created must be a timestamp or created[gte|gt|lte|lt]=...", param="created")
    bounds = {}
    for op, value in raw.items():
        if op not in ("gt", "gte", "lt", "lte"):
            raise InvalidRequest(f"Received unknown parameter: created[{op}]", param=f"created[{op}]")
        bounds[op] = to_int(value, f"created[{op}]")
    return bounds


@api.get("/events/<event_id>")
def get_event(event_id: str) -> Any:
    _params().allow()
    return _with_pending(current_sim().store.get_event(event_id))


@api.post("/webhook_endpoints")
def create_endpoint() -> Any:
    params = _params()
    params.allow("url", "enabled_events", "description", "metadata", "api_version", "secret", "connect")
    url = params.string("url", required=True)
    assert url is not None
    secret = params.string("secret")
    if secret is not None and not secret.startswith("whsec_"):
        raise InvalidRequest(f"secret must start with whsec_ (got {secret[:6]!r}...)", param="secret")
    return current_sim().store.create_endpoint(
        url=_url(url), enabled_events=_events(params, required=True), secret=secret,
        description=params.string("description"), metadata=params.metadata(),
        api_version=params.string("api_version"))


def _url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InvalidRequest(f"Invalid URL: {url!r}; use an http:// or https:// URL", param="url")
    return url


def _events(params: Params, *, required: bool) -> list[str]:
    events = params.strings("enabled_events")
    if required and not events:
        raise InvalidRequest("Missing required param: enabled_events.", param="enabled_events",
                             code="parameter_missing")
    for event in events:
        if not _EVENT_TYPE.match(event):
            raise InvalidRequest(f"Invalid enabled_events: {event!r} is not an event type (or '*')",
                                 param="enabled_events")
    return events


@api.get("/webhook_endpoints")
def list_endpoints() -> Any:
    params = _params()
    params.allow("limit", "starting_after", "ending_before")
    return current_sim().store.list_endpoints(params)


@api.get("/webhook_endpoints/<endpoint_id>")
def get_endpoint(endpoint_id: str) -> Any:
    _params().allow()
    return current_sim().store.get_endpoint(endpoint_id)


@api.post("/webhook_endpoints/<endpoint_id>")
def update_endpoint(endpoint_id: str) -> Any:
    params = _params()
    params.allow("url", "enabled_events", "disabled")
    url = params.string("url")
    disabled = params.boolean("disabled") if "disabled" in params else None
    return current_sim().store.update_endpoint(endpoint_id, url=_url(url) if url else None,
                                               enabled_events=_events(params, required=False), disabled=disabled)


@api.delete("/webhook_endpoints/<endpoint_id>")
def delete_endpoint(endpoint_id: str) -> Any:
    _params().allow()
    return current_sim().store.delete_endpoint(endpoint_id)


# -- /sim: the Dashboard, the buyer, delivery control and faults -------------------------------------

sim = Blueprint("sim", __name__, url_prefix="/sim")


@sim.get("/health")
def health() -> Any:
    return {"object": "sim.health", "ok": True}


@sim.get("/account")
def get_account() -> Any:
    return current_sim().store.account_json()


@sim.post("/account")
def update_account() -> Any:
    params = _params()
    params.allow("default_tax_behavior")
    behavior = params.choice("default_tax_behavior", TAX_BEHAVIORS, required=True)
    assert behavior is not None
    return current_sim().store.set_default_tax_behavior(behavior)


@sim.get("/products/<product_id>/cross_sell")
def get_cross_sell(product_id: str) -> Any:
    return current_sim().store.cross_sell_json(product_id)


@sim.post("/products/<product_id>/cross_sell")
def set_cross_sell(product_id: str) -> Any:
    params = _params()
    params.allow("product")
    target = params.string("product", required=True)
    assert target is not None
    return current_sim().store.set_cross_sell(product_id, target)


@sim.delete("/products/<product_id>/cross_sell")
def remove_cross_sell(product_id: str) -> Any:
    return current_sim().store.remove_cross_sell(product_id)


@sim.get("/checkout/sessions/<session_id>")
def sim_session(session_id: str) -> Any:
    return current_sim().store.sim_session_json(session_id)


@sim.post("/checkout/sessions/<session_id>/cross_sell")
def add_cross_sell_item(session_id: str) -> Any:
    params = _params()
    params.allow("quantity")
    if params.integer("quantity", default=1) != 1:
        raise InvalidRequest("a cross-sell's quantity is fixed at 1", param="quantity")
    return current_sim().store.add_cross_sell(session_id)


@sim.delete("/checkout/sessions/<session_id>/cross_sell")
def remove_cross_sell_item(session_id: str) -> Any:
    return current_sim().store.remove_cross_sell_item(session_id)


@sim.post("/checkout/sessions/<session_id>/complete")
def complete_session(session_id: str) -> Any:
    params = _params()
    params.allow("outcome", "email", "name")
    outcome = params.choice("outcome", OUTCOMES, default="paid")
    assert outcome is not None
    return current_sim().store.complete_session(session_id, outcome, email=params.string("email"),
                                                name=params.string("name"))


@sim.post("/checkout/sessions/<session_id>/expire")
def expire_session(session_id: str) -> Any:
    return current_sim().store.expire_session(session_id)


@sim.get("/events/<event_id>/deliveries")
def deliveries(event_id: str) -> Any:
    current_sim().store.get_event(event_id)
    data = current_sim().dispatcher.deliveries_of(event_id)
    return {"object": "list", "data": data, "has_more": False, "url": f"/sim/events/{event_id}/deliveries"}


@sim.post("/events/<event_id>/resend")
def resend(event_id: str) -> Any:
    params = _params()
    params.allow("webhook_endpoint")
    store = current_sim().store
    event = store.get_event(event_id)
    endpoints = store.endpoints_for(event, params.string("webhook_endpoint"))
    sent = current_sim().dispatcher.dispatch(event, endpoints, resend=True)
    return {"object": "list", "data": [d.to_json() for d in sent], "has_more": False,
            "url": f"/sim/events/{event_id}/resend"}


@sim.post("/webhook_endpoints/<endpoint_id>/roll_secret")
def roll_secret(endpoint_id: str) -> Any:
    params = _params()
    params.allow("expires_in_s", "secret")
    expires = params.integer("expires_in_s", minimum=0, maximum=7 * 24 * 3600, default=defaults.ROLLED_SECRET_TTL_S)
    assert expires is not None
    secret = params.string("secret")
    if secret is not None and not secret.startswith("whsec_"):
        raise InvalidRequest("secret must start with whsec_", param="secret")
    return current_sim().store.roll_secret(endpoint_id, expires_in_s=expires, secret=secret)


@sim.post("/deliveries/wait")
def wait_deliveries() -> Any:
    params = _params()
    params.allow("timeout_s")
    timeout = params.integer("timeout_s", minimum=0, maximum=600, default=30)
    assert timeout is not None
    idle = current_sim().dispatcher.wait_idle(timeout)
    return {"object": "sim.deliveries", "idle": idle}


@sim.get("/faults")
def get_faults() -> Any:
    return current_sim().faults.plan.to_json()


@sim.post("/faults")
def set_faults() -> Any:
    plan = plan_faults(_params())
    current_sim().faults.set_plan(plan)
    return plan.to_json()


@sim.delete("/faults")
def clear_faults() -> Any:
    current_sim().faults.clear()
    return current_sim().faults.plan.to_json()
