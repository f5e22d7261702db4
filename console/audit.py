"""The audit log: every mutating action (replay, reconcile, fulfil, sign-in) — who, what, when, result.

Kept in a Redis stream capped at about :data:`MAX_ENTRIES` entries, and written as a log line.
"""
from __future__ import annotations

import logging
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


class AuditLog:
    """Append and read the audit stream."""

    def __init__(self, client: redis.Redis) -> None:
        self._redis = client

    def record(self, who: str, role: str, action: str, target: str, result: str) -> None:
        """Append an entry; the log line carries the same fields. Never pass a secret here."""
        now = time.time()
        log.info("audit: %s (%s) %s %s -> %s", who, role, action, target, result)
        fields = {"at": f"{now:.3f}", "who": who, "role": role, "action": action, "target": target,
                  "result": result[:500]}
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
                           target=fields.get("target", ""), result=fields.get("result", ""))
                for entry_id, fields in rows]
