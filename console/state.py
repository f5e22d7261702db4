"""The console's per-process state (stores, tokens, audit log), as views reach it."""
from __future__ import annotations

from dataclasses import dataclass

from flask import current_app

from console.audit import AuditLog
from console.auth import SignInThrottle, TokenTable
from console.service import ConsoleService
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


def console_state() -> Console:
    """The state of the console serving this request."""
    state: Console = current_app.extensions[EXTENSION]
    return state
