"""``/api/v1``: the console's JSON API (Bearer tokens), documented at ``/api/v1/openapi.json``."""
from __future__ import annotations

import dataclasses
import functools
import re
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from apispec_webframeworks.flask import FlaskPlugin
from flask import Blueprint, Response, current_app, g, jsonify, request

from console import schemas
from console.auth import PERMISSIONS, Principal, bearer_token
from console.errors import BadRequest, Forbidden, Unauthorized, too_many
from console.service import OrderFilter
from console.state import console_state, record_action, refusals_audited
from fulfillment.ids import ACCOUNT_ID, SESSION_ID
from fulfillment.report import DEFAULT_DAYS, day_of

F = TypeVar("F", bound=Callable[..., Any])
blueprint = Blueprint("api", __name__)
#: (view, operations) of every documented route, for the OpenAPI document.
_DOCUMENTED: list[tuple[Callable[..., Any], dict[str, Any]]] = []
API_VERSION = "1.0.0"
TOKEN_NAME = re.compile(r"[^:,\s]{1,200}\Z")  #: a name in CROSSFILL_CONSOLE_TOKENS
MAX_REPORT_DAYS = 3660


_ERRORS = {
    400: "invalid parameters (the answer's error.fields names them)",
    401: "no Bearer token, or not a valid one",
    403: "the token's role may not do this",
    404: "not found (for a merchant: also an order of an account it does not hold)",
    409: "the event was recorded as ignored (other mode, or a type not handled): never replayed",
    429: "too many bad tokens from this client, or (a merchant token) too many calls this minute",
    503: "Redis, the broker or the Stripe API is unreachable; retry later",
}
#: Every operation may answer these: no or a bad token, a role without the permission, a throttled
#: client, Redis down.
_ALWAYS = (401, 403, 429, 503)
_PATH_PARAMETER = re.compile(r"<(?:[^<>:]+:)?([^<>]+)>")
#: Path parameters documented tighter than "a string": what the API accepts (anything else is 400).
PATH_SCHEMAS: dict[str, dict[str, Any]] = {
    "session_id": {"type": "string", "pattern": schemas.SESSION_PATTERN,
                   "description": "a Checkout Session id (cs_test_a1B2...)"},
    "name": {"type": "string", "pattern": schemas.documented_pattern(TOKEN_NAME),
             "description": "a name in CROSSFILL_CONSOLE_TOKENS"},
}
ACCOUNT_PARAMETER = {"in": "query", "name": "account", "required": False,
                     "description": "read the session as this connected account (a merchant: one of its own)",
                     "schema": {"type": "string", "pattern": schemas.ACCOUNT_PATTERN}}


def _responses(ok: tuple[int, ...], response: type[Any] | None, errors: tuple[int, ...]) -> dict[str, Any]:
    answers: dict[str, Any] = {}
    for code in ok:
        answers[str(code)] = {"description": {200: "OK", 202: "accepted: queued, or fulfilling now"}[code]}
        if response:
            answers[str(code)]["content"] = {"application/json": {"schema": response}}
    for code in sorted(set(errors) | set(_ALWAYS)):
        answers[str(code)] = {"description": _ERRORS[code],
                              "content": {"application/json": {"schema": schemas.ErrorSchema}}}
        if code == 429:
            answers[str(code)]["headers"] = {"Retry-After": {"description": "seconds to wait", "required": True,
                                                             "schema": {"type": "integer"}}}
    return answers


def route(rule: str, method: str, permission: str, summary: str, *, response: type[Any] | None = None,
          query: type[Any] | None = None, errors: tuple[int, ...] = (), ok: tuple[int, ...] = (200,),
          parameters: tuple[dict[str, Any], ...] = ()) -> Callable[[F], F]:
    """Register an API view that needs *permission*, and document it: its path and query parameters,
    each status it answers (*ok*, *errors* and those every operation may answer) and its auth."""

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            g.principal = authenticate(permission)
            return view(*args, **kwargs)

        blueprint.add_url_rule(rule, view_func=guarded, methods=[method])
        in_path = _PATH_PARAMETER.findall(rule)
        documented: list[Any] = [
            {"in": "path", "name": name, "required": True,
             "schema": PATH_SCHEMAS.get(name, {"type": "string", "minLength": 1})} for name in in_path]
        documented += [{"in": "query", "schema": query}] if query else []
        documented += list(parameters)
        roles = ", ".join(sorted(PERMISSIONS[permission]))
        operation: dict[str, Any] = {"summary": summary, "security": [{"bearer": []}],
                                     "description": f"Authorization: Bearer token of a role among: {roles}.",
                                     "responses": _responses(ok, response, errors + ((404,) if in_path else ()))}
        if documented:
            operation["parameters"] = documented
        _DOCUMENTED.append((guarded, {method.lower(): operation}))
        return guarded  # type: ignore[return-value]

    return decorate


def authenticate(permission: str) -> Principal:
    """The caller's identity from its Bearer token, allowed *permission*; else 401/403, or 429 for a
    client that sent bad tokens (throttled and audited as failed sign-ins are) or a merchant past its rate."""
    state = console_state()
    token = bearer_token(request.headers.get("Authorization"))
    if token is None:
        raise Unauthorized("send Authorization: Bearer <token> (CROSSFILL_CONSOLE_TOKENS)",
                           headers={"WWW-Authenticate": 'Bearer realm="crossfill"'})
    client = request.remote_addr or "unknown"
    wait = state.throttle.wait_s(client)
    if wait > 0:
        raise too_many("too many bad tokens from this client", wait)
    principal = state.tokens.authenticate(token)
    if principal is None:
        state.throttle.failed(client)
        state.audit.record("?", "-", "api-auth", f"client {client}", "refused: unknown token")
        raise Unauthorized("the token is not valid", headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
    if principal.role == "merchant":
        wait = state.merchant_rate.wait_s(principal.name)
        if wait > 0:
            raise too_many("this token made too many calls this minute", wait)
    if not principal.may(permission):
        if request.method == "POST":
            state.audit.record(principal.name, principal.role, request.path, "-", f"refused: role {principal.role}")
        raise Forbidden(f"the role {principal.role!r} may not do this; it needs one of "
                        f"{', '.join(sorted(PERMISSIONS[permission]))}")
    return principal


def _dump(schema: type[Any], value: Any, status: int = 200) -> Response:
    response = jsonify(schema().dump(value))
    response.status_code = status
    return response


def _session_id(session_id: str) -> str:
    if not SESSION_ID.match(session_id):
        raise BadRequest(f"not a Checkout Session id: {session_id[:80]!r} (they look like cs_test_a1B2...)",
                         fields={"session_id": ["invalid"]})
    return session_id


@route("/status", "GET", "read", "Queues, live workers, dead letters, inbox and orders by status, last reconcile",
       response=schemas.StatusSchema)
def status() -> Response:
    return _dump(schemas.StatusSchema, console_state().service.status())


@route("/orders", "GET", "read", "Orders, newest first, filtered; follow next_cursor for the next page",
       response=schemas.OrderPageSchema, query=schemas.OrderListQuery, errors=(400,))
def orders() -> Response:
    args = schemas.OrderListQuery().load(request.args)
    where = OrderFilter(status=args.get("status"), since=args.get("since"), until=args.get("until"),
                        product=args.get("product"), cross_sell=args.get("cross_sell"), account=args.get("account"))
    service = console_state().service
    page, cursor = service.orders(where, g.principal.scope, cursor=args.get("cursor"), limit=args["limit"])
    return _dump(schemas.OrderPageSchema, {"data": page, "next_cursor": cursor})


@route("/orders/<session_id>", "GET", "order", "One order: its status and items (as crossfill order --json)",
       response=schemas.OrderSchema, errors=(400,))
def order(session_id: str) -> Response:
    return _dump(schemas.OrderSchema, console_state().service.order(_session_id(session_id), g.principal.scope))


@route("/orders/<session_id>/fulfill", "POST", "fulfil",
       "Fulfil a session now (a success page, a fulfilment system): the webhook's idempotent path",
       response=schemas.FulfilSchema, errors=(400,), ok=(200, 202), parameters=(ACCOUNT_PARAMETER,))
def fulfil(session_id: str) -> Response:
    # A connected account's session (Connect): ?account=acct_..., else the account its order recorded.
    account = request.args.get("account") or None
    if account is not None and not ACCOUNT_ID.match(account):
        raise BadRequest(f"not a connected account id: {account[:80]!r} (they look like acct_1A2b...)",
                         fields={"account": ["invalid"]})
    with refusals_audited("fulfil", _session_id(session_id), account=account or ""):
        outcome = console_state().service.fulfil(session_id, g.principal.scope, account=account)
    order = outcome["order"]
    record_action("fulfil", session_id, f"{outcome['status']}, {outcome['dispatched']} item(s) queued",
                  account=(order.account if order is not None else None) or "platform")
    return _dump(schemas.FulfilSchema, outcome, 202 if outcome["status"] == "fulfilling" else 200)


@route("/dead-letters", "GET", "read", "Dead letters, oldest failure first", response=schemas.DeadLetterListSchema)
def dead_letters() -> Response:
    letters = console_state().service.dead_letters()
    return _dump(schemas.DeadLetterListSchema, {"data": [dataclasses.asdict(letter) for letter in letters]})


@route("/dead-letters/<letter_id>", "GET", "read", "One dead letter", response=schemas.DeadLetterSchema)
def dead_letter(letter_id: str) -> Response:
    return _dump(schemas.DeadLetterSchema, dataclasses.asdict(console_state().service.dead_letter(letter_id)))


@route("/dead-letters/<letter_id>/replay", "POST", "operate",
       "Run a dead-lettered task again (an item already done is not done twice)", response=schemas.ReplaySchema)
def replay(letter_id: str) -> Response:
    outcome = console_state().service.replay(letter_id)
    record_action("replay", letter_id, outcome)
    return _dump(schemas.ReplaySchema, {"id": letter_id, "outcome": outcome})


@route("/dead-letters/replay-all", "POST", "operate", "Replay every dead letter", response=schemas.ReplayAllSchema)
def replay_all() -> Response:
    outcomes = console_state().service.replay_all()
    record_action("replay-all", f"{len(outcomes)} dead letter(s)",
                  ", ".join(sorted({o for _, o in outcomes})) or "none")
    return _dump(schemas.ReplayAllSchema, {"data": [{"id": i, "outcome": o} for i, o in outcomes]})


@route("/events/<event_id>", "GET", "read", "An event from the inbox (no buyer details)", response=schemas.EventSchema)
def event(event_id: str) -> Response:
    return _dump(schemas.EventSchema, console_state().service.event(event_id))


@route("/events/<event_id>/replay", "POST", "operate",
       "Process an event from the inbox again (409: it was recorded as ignored, and is never acted on)",
       response=schemas.ReplaySchema, errors=(409,))
def replay_event(event_id: str) -> Response:
    with refusals_audited("replay-event", event_id):
        outcome = console_state().service.replay_event(event_id)
    record_action("replay-event", event_id, outcome)
    return _dump(schemas.ReplaySchema, {"id": event_id, "outcome": outcome})


@route("/reconcile", "POST", "operate", "Run a reconciliation with the Stripe API now", response=schemas.ReconcileSchema,
       ok=(202,))
def reconcile() -> Response:
    task_id = console_state().service.reconcile()
    record_action("reconcile", "now", f"queued {task_id}")
    return _dump(schemas.ReconcileSchema, {"task_id": task_id, "outcome": "queued"}, 202)


@route("/sessions/<name>/end", "POST", "operate",
       "End every console session of a token's name (browsers signed in with it must sign in again)",
       response=schemas.EndSessionsSchema, errors=(400,))
def end_sessions(name: str) -> Response:
    if not TOKEN_NAME.match(name):
        raise BadRequest(f"not a token name: {name[:80]!r}", fields={"name": ["invalid"]})
    ended = console_state().sessions.end_all(name)
    record_action("end-sessions", name, f"{ended} session(s) ended")
    return _dump(schemas.EndSessionsSchema, {"name": name, "ended": ended})


@route("/report/cross-sells", "GET", "read",
       "Per primary product with a cross-sell: paid orders, attach rate, cross-sell revenue, order values",
       response=schemas.ReportSchema, query=schemas.ReportQuery, errors=(400,))
def report() -> Response:
    args = schemas.ReportQuery().load(request.args)
    return _dump(schemas.ReportSchema, report_view(args.get("since"), args.get("account")))


def report_view(since: float | None, account: str | None) -> dict[str, Any]:
    """The report as the API answers it and the report page shows it."""
    state = console_state()
    state.report.drain()
    today = day_of(time.time())
    first = day_of(since) if since is not None else today - timedelta(DEFAULT_DAYS - 1)
    if first > today or (today - first).days > MAX_REPORT_DAYS:
        raise BadRequest(f"since must be a day in the last {MAX_REPORT_DAYS} days", fields={"since": ["out of range"]})
    return state.report.report(since=first, until=today, account=account).as_dict()


@route("/audit", "GET", "read", "The audit log, newest first", response=schemas.AuditListSchema)
def audit() -> Response:
    entries = console_state().audit.recent(200)
    return _dump(schemas.AuditListSchema, {"data": [dataclasses.asdict(entry) for entry in entries]})


@blueprint.get("/openapi.json")
def openapi() -> Response:
    """The OpenAPI 3 document of this API (public: it holds no data)."""
    return jsonify(build_spec().to_dict())


def build_spec() -> APISpec:
    spec = APISpec(title="crossfill console API", version=API_VERSION, openapi_version="3.0.3",
                   plugins=[FlaskPlugin(), MarshmallowPlugin()],
                   info={"description": "Orders, dead letters, replays, the order API and the cross-sell report. "
                                        "Authenticate with Authorization: Bearer <token>."})
    spec.components.security_scheme("bearer", {"type": "http", "scheme": "bearer"})
    for name, schema in (("Error", schemas.ErrorSchema), ("Status", schemas.StatusSchema),
                         ("Order", schemas.OrderSchema), ("OrderPage", schemas.OrderPageSchema),
                         ("OrderListQuery", schemas.OrderListQuery), ("Fulfil", schemas.FulfilSchema),
                         ("DeadLetter", schemas.DeadLetterSchema), ("DeadLetterList", schemas.DeadLetterListSchema),
                         ("Replay", schemas.ReplaySchema), ("ReplayAll", schemas.ReplayAllSchema),
                         ("Event", schemas.EventSchema), ("Reconcile", schemas.ReconcileSchema),
                         ("ReportQuery", schemas.ReportQuery), ("Report", schemas.ReportSchema),
                         ("AuditList", schemas.AuditListSchema), ("EndSessions", schemas.EndSessionsSchema)):
        spec.components.schema(name, schema=schema)
    with current_app.test_request_context():
        for view, operations in _DOCUMENTED:
            spec.path(view=view, operations=operations, app=current_app)
    return spec
