"""The console's pages: server-rendered, a little CSS, forms with CSRF tokens, usable on a phone."""
from __future__ import annotations

import dataclasses
import functools
import logging
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import urlencode, urlsplit

from flask import Blueprint, Response, abort, g, redirect, render_template, request, session, url_for
from markupsafe import Markup
from marshmallow import ValidationError

from console import schemas
from console.api import report_view
from console.auth import Principal, csrf_matches, new_csrf_token
from console.chart import DayPoint, attach_chart
from console.errors import Forbidden, too_many
from console.service import OrderFilter
from console.state import console_state, record_action, refusals_audited
from fulfillment.ledger import ORDER_STATUSES
from fulfillment.report import DEFAULT_DAYS, ZERO_DECIMAL, account_label, day_of, major

F = TypeVar("F", bound=Callable[..., Any])
log = logging.getLogger(__name__)
blueprint = Blueprint("pages", __name__, template_folder="templates", static_folder="static",
                      static_url_path="/static")
CHART_DAYS = 30
AUDIT_ID = re.compile(r"\d{1,20}-\d{1,20}\Z")  #: a stream entry id (\Z: ``$`` would let a newline through)


@blueprint.app_template_filter("money")
def money(amount: int | float | None, currency: str | None) -> str:
    if amount is None:
        return "-"
    value = major(amount, currency)
    digits = 0 if (currency or "").lower() in ZERO_DECIMAL else 2
    return f"{value:,.{digits}f} {(currency or '').upper()}".strip()


@blueprint.app_template_filter("when")
def when(stamp: float | None) -> str:
    if not stamp:
        return "-"
    return datetime.fromtimestamp(stamp, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


@blueprint.app_template_filter("ago")
def ago(stamp: float | None) -> str:
    if not stamp:
        return "never"
    seconds = max(0, int(time.time() - stamp))
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return f"{seconds} s ago"


@blueprint.app_template_filter("seconds")
def seconds(value: float | None) -> str:
    """A duration for people: ``-`` (none), ``0.8 s``, ``42 s``, ``3.5 min``."""
    if value is None:
        return "-"
    if value < 10:
        return f"{value:.1f} s"
    return f"{value:.0f} s" if value < 120 else f"{value / 60:.1f} min"


@blueprint.app_context_processor
def globals_() -> dict[str, Any]:
    return {"principal": g.get("principal"), "csrf_token": session.get("csrf", ""),
            "account_label": account_label}


def current_principal() -> Principal | None:
    """Who this browser's session names, while Redis still records the session (not signed out,
    ended by an operator, nor past its lifetime) and their token is still configured."""
    name, fingerprint, session_id = session.get("user"), session.get("fp"), session.get("sid")
    if not name or not fingerprint or not session_id:
        return None
    state = console_state()
    if state.sessions.holder(str(session_id)) != name:
        return None
    return state.tokens.from_session(str(name), str(fingerprint))


def page(permission: str = "read") -> Callable[[F], F]:
    """A page for signed-in people with *permission*; a POST must carry the session's CSRF token."""

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            principal = current_principal()
            if principal is None:
                if request.method == "GET":
                    return redirect(url_for("pages.signin", next=request.full_path.rstrip("?")))
                return render_template("signin.html", next="", message="Sign in first."), 401
            g.principal = principal
            if request.method == "POST" and not csrf_matches(session.get("csrf"), request.form.get("csrf")):
                raise Forbidden("the form is out of date (CSRF token); reload the page and try again")
            if not principal.may(permission):
                if request.method == "POST":
                    record_action(request.path, "-", f"refused: role {principal.role}")
                raise Forbidden(f"your role ({principal.role}) may not do this")
            return view(*args, **kwargs)

        return guarded  # type: ignore[return-value]

    return decorate


# --- signing in and out ------------------------------------------------------------------------------

def _safe_next(target: str | None) -> str:
    """Only a path on this site (no scheme, no host, no //) may be a redirect target."""
    if not target:
        return url_for("pages.overview")
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return url_for("pages.overview")
    return target


@blueprint.route("/signin", methods=["GET", "POST"])
def signin() -> Any:
    state = console_state()
    if "csrf" not in session:
        session["csrf"] = new_csrf_token()
    target = request.values.get("next", "")
    if request.method == "GET":
        if current_principal() is not None:
            return redirect(_safe_next(target))
        return render_template("signin.html", next=target, message=None)
    client = request.remote_addr or "unknown"
    if not csrf_matches(session.get("csrf"), request.form.get("csrf")):
        raise Forbidden("the sign-in form is out of date (CSRF token); reload the page and try again")
    wait = state.throttle.wait_s(client)
    if wait > 0:
        raise too_many("too many failed sign-ins", wait)
    principal = state.tokens.authenticate(request.form.get("token", "").strip())
    if principal is None:
        state.throttle.failed(client)
        state.audit.record("?", "-", "sign-in", f"client {client}", "refused: unknown token")
        return render_template("signin.html", next=target, message="That token is not valid."), 401
    state.throttle.succeeded(client)
    if session.get("sid"):  # signing in again ends the session this browser had
        state.sessions.end(str(session["sid"]))
    session.clear()
    session.permanent = True
    session.update(user=principal.name, fp=state.tokens.fingerprint(principal.name), csrf=new_csrf_token(),
                   sid=state.sessions.start(principal.name))
    state.audit.record(principal.name, principal.role, "sign-in", f"client {client}", "ok")
    return redirect(_safe_next(target))


@blueprint.post("/signout")
@page("order")
def signout() -> Response:
    console_state().sessions.end(str(session.get("sid")))
    record_action("sign-out", "-", "ok")
    session.clear()
    return redirect(url_for("pages.signin"))  # type: ignore[return-value]


# --- pages -------------------------------------------------------------------------------------------

def _chart(report: Any) -> tuple[Markup, str, dict[str, Any]]:
    revenue_by_currency: dict[str, int] = {}
    for day in report.days:
        for currency, amount in day["cross_sell_revenue"].items():
            revenue_by_currency[currency] = revenue_by_currency.get(currency, 0) + amount
    currency = max(revenue_by_currency, key=revenue_by_currency.__getitem__) if revenue_by_currency else "usd"
    points = [DayPoint(day["day"], day["paid_orders"], day["orders_with_cross_sell"],
                       major(day["cross_sell_revenue"].get(currency, 0), currency)) for day in report.days]
    paid = sum(day["paid_orders"] for day in report.days)
    took = sum(day["orders_with_cross_sell"] for day in report.days)
    totals = {"paid": paid, "took": took, "rate": took / paid if paid else None,
              "revenue": revenue_by_currency, "currency": currency}
    return Markup(attach_chart(points, currency)), currency, totals  # noqa: S704 - attach_chart escapes


@blueprint.get("/")
@page()
def overview() -> str:
    state = console_state()
    status = state.service.status()
    state.report.drain()
    today = day_of(time.time())
    report = state.report.report(since=today - timedelta(CHART_DAYS - 1), until=today)
    chart, currency, totals = _chart(report)
    return render_template("overview.html", status=status, chart=chart, totals=totals, currency=currency,
                           days=CHART_DAYS)


@blueprint.get("/orders")
@page()
def orders() -> str:
    filters = {key: value for key, value in request.args.items() if value != "" and key != "cursor"}
    try:
        args = schemas.OrderListQuery().load({**filters, **({"cursor": request.args["cursor"]}
                                                            if request.args.get("cursor") else {})})
    except ValidationError as error:
        return render_template("orders.html", orders=[], next_url=None, filters=filters, statuses=ORDER_STATUSES,
                               problem=error.messages), 400  # type: ignore[return-value]
    where = OrderFilter(status=args.get("status"), since=args.get("since"), until=args.get("until"),
                        product=args.get("product"), cross_sell=args.get("cross_sell"), account=args.get("account"))
    service = console_state().service
    found, cursor = service.orders(where, g.principal.scope, cursor=args.get("cursor"), limit=args["limit"])
    next_url = url_for("pages.orders") + "?" + urlencode({**filters, "cursor": cursor}) if cursor else None
    return render_template("orders.html", orders=found, next_url=next_url, filters=filters, statuses=ORDER_STATUSES,
                           problem=None)


@blueprint.get("/orders/<session_id>")
@page()
def order(session_id: str) -> str:
    record = console_state().service.order(session_id, g.principal.scope)
    timeline = sorted(
        [(record.created_at, "order recorded", "")] +
        [(stamp, f"{item.id}: {label}", item.error or "" if label == "failed" else "")
         for item in record.items
         for stamp, label in ((item.started_at, "last attempt started"), (item.finished_at, item.status))
         if stamp] +
        [(record.updated_at, f"order {record.status}", "")],
        key=lambda entry: entry[0] or 0)
    return render_template("order.html", order=record, timeline=timeline)


@blueprint.get("/dead-letters")
@page()
def dead_letters() -> str:
    return render_template("dead_letters.html", letters=console_state().service.dead_letters(),
                           replayed=request.args.get("replayed"))


@blueprint.post("/dead-letters/<letter_id>/replay")
@page("operate")
def replay(letter_id: str) -> Response:
    outcome = console_state().service.replay(letter_id)
    record_action("replay", letter_id, outcome)
    return redirect(url_for("pages.dead_letters", replayed=f"{letter_id}: {outcome}"))  # type: ignore[return-value]


@blueprint.post("/dead-letters/replay-all")
@page("operate")
def replay_all() -> Response:
    outcomes = console_state().service.replay_all()
    record_action("replay-all", f"{len(outcomes)} dead letter(s)",
                  ", ".join(sorted({o for _, o in outcomes})) or "none")
    return redirect(url_for("pages.dead_letters", replayed=f"{len(outcomes)} replayed"))  # type: ignore[return-value]


@blueprint.get("/events/<event_id>")
@page()
def event(event_id: str) -> str:
    return render_template("event.html", event=console_state().service.event(event_id),
                           replayed=request.args.get("replayed"))


@blueprint.post("/events/<event_id>/replay")
@page("operate")
def replay_event(event_id: str) -> Response:
    with refusals_audited("replay-event", event_id):
        outcome = console_state().service.replay_event(event_id)
    record_action("replay-event", event_id, outcome)
    return redirect(url_for("pages.event", event_id=event_id, replayed=outcome))  # type: ignore[return-value]


@blueprint.post("/reconcile")
@page("operate")
def reconcile() -> Response:
    task_id = console_state().service.reconcile()
    record_action("reconcile", "now", f"queued {task_id}")
    return redirect(url_for("pages.overview"))  # type: ignore[return-value]


@blueprint.get("/report")
@page()
def report() -> str:
    try:
        args = schemas.ReportQuery().load({k: v for k, v in request.args.items() if v})
    except ValidationError as error:
        abort(400, description="; ".join(f"{k}: {v}" for k, v in error.messages.items()))  # type: ignore[union-attr]
    view = report_view(args.get("since"), args.get("account"))
    return render_template("report.html", report=view, since=request.args.get("since", f"{DEFAULT_DAYS}d"),
                           account=request.args.get("account", ""))


@blueprint.get("/audit")
@page()
def audit() -> str:
    before = request.args.get("before") or None
    if before is not None and not AUDIT_ID.match(before):
        abort(400, description=f"before must be an audit entry id such as 1764489600000-0, got {before[:40]!r}")
    entries = console_state().audit.recent(200, before=before)
    return render_template("audit.html", entries=[dataclasses.asdict(entry) for entry in entries])
