"""The audit log: every mutating action (replay, reconcile, fulfil, sign-in) — who, what, when, result.

Kept in a Redis stream capped at about :data:`MAX_ENTRIES` entries, and written as one structured log
line of the process (``audit {"who": …, "role": …, "action": …, "target": …, "account": …,
"outcome": …}``): the stream can be trimmed or lost with Redis, the process's log is shipped elsewhere.
"""
from __future__ import annotations

import json
import logging
import sys
import time
from dataclasses import dataclass

import redis

from fulfillment.store import KEY_PREFIX, reachable

log = logging.getLogger("crossfill.audit")

STREAM = f"{KEY_PREFIX}audit"
MAX_ENTRIES = 10_000  #: the stream is trimmed to about this many entries (XADD MAXLEN ~)


@dataclass(frozen=True)
class AuditEntry:
    """One action someone took."""

    id: str
    at: float
    who: str
    role: str
    action: str
    target: str
    result: str
    account: str = ""


class AuditLog:
    """Append and read the audit stream."""

    def __init__(self, client: redis.Redis) -> None:
        self._redis = client

    def record(self, who: str, role: str, action: str, target: str, result: str, *, account: str = "") -> None:
        """Append an entry and write its log line, with the same fields (*account*: the order's, when the
        action is on one). Never pass a secret here.

        The log line comes first: an action refused because Redis is down is still told."""
        now = time.time()
        line = {"who": who, "role": role, "action": action, "target": target, "account": account or "-",
                "outcome": result[:500]}
        log.info("audit %s", json.dumps(line, ensure_ascii=True), extra={"audit": line})
        fields = {"at": f"{now:.3f}", "who": who, "role": role, "action": action, "target": target,
                  "result": result[:500], "account": account}
        with reachable():
            self._redis.xadd(STREAM, fields, maxlen=MAX_ENTRIES, approximate=True)  # type: ignore[arg-type]

    def recent(self, limit: int = 100, *, before: str | None = None) -> list[AuditEntry]:
        """Entries, newest first; *before* is an entry id to continue after."""
        top = f"({before}" if before else "+"
        with reachable():
            rows: list[tuple[str, dict[str, str]]] = self._redis.xrevrange(  # type: ignore[assignment]
                STREAM, max=top, min="-", count=limit)
        return [AuditEntry(id=entry_id, at=float(fields.get("at", 0)), who=fields.get("who", ""),
                           role=fields.get("role", ""), action=fields.get("action", ""),
                           target=fields.get("target", ""), result=fields.get("result", ""),
                           account=fields.get("account", ""))
                for entry_id, fields in rows]


def log_to_stderr() -> None:
    """Give the audit log lines a handler when the process has none (gunicorn configures only its own
    loggers, and Python drops INFO lines without one); a process that set up logging keeps its own."""
    if logging.getLogger().handlers or log.handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
