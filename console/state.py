"""The console's per-process state (stores, tokens, audit log), as views reach it."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from flask import current_app, g

from console.audit import AuditLog
from console.auth import CallRate, Principal, SignInThrottle, TokenTable
from console.errors import ConsoleError
from console.service import ConsoleService
from console.sessions import SessionStore
from console.settings import ConsoleSettings
from fulfillment.report import CrossSellReport
from fulfillment.settings import Settings

EXTENSION = "crossfill_console"  #: the key of the state in ``app.extensions``


@dataclass
class Console:
    """What every view of the console uses, built once per process."""

    settings: Settings
    console: ConsoleSettings
    service: ConsoleService
    tokens: TokenTable
    audit: AuditLog
    throttle: SignInThrottle
    report: CrossSellReport
    merchant_rate: CallRate
    sessions: SessionStore


def console_state() -> Console:
    """The state of the console serving this request."""
    state: Console = current_app.extensions[EXTENSION]
    return state


def record_action(action: str, target: str, result: str, *, account: str = "") -> None:
    """Write to the audit log what this request's signed-in principal (``g.principal``) did, and how it went."""
    principal: Principal = g.principal
    console_state().audit.record(principal.name, principal.role, action, target, result, account=account)


@contextmanager
def refusals_audited(action: str, target: str, *, account: str = "") -> Iterator[None]:
    """Audit an action that fails with a console error (a 404, a 409, a 503) as refused, then let it go on."""
    try:
        yield
    except ConsoleError as error:
        record_action(action, target, f"refused: {error.status} {error.kind}", account=account)
        raise
