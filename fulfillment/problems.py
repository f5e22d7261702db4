"""Problem answers over HTTP, said once for the receiver and the console (a pure leaf: no Flask).

Every refused request is answered ``{"error": {"type": <kind>, "message": <what failed>, ...}}``
with the problem's status and headers; extra members (``fields``, the signature ``check``) sit beside
them. Each app's error tree roots in :class:`Problem`; its Flask handlers only turn one into a
response (JSON, or a page for the console's browser views).
"""
from __future__ import annotations

from typing import Any


class Problem(Exception):
    """Raised when a request cannot be served; carries its HTTP status, kind and the message for the client."""

    #: HTTP status answered for this problem.
    status = 500
    #: ``error.type`` in the JSON answer.
    kind = "internal"

    def __init__(self, message: str, *, fields: dict[str, Any] | None = None,
                 headers: dict[str, str] | None = None, **extra: Any) -> None:
        self.message = message
        self.fields = fields or {}
        self.headers = headers or {}
        self.extra = extra
        super().__init__(message)

    def to_json(self) -> dict[str, Any]:
        """The body answered to the client: what failed, never a secret nor a stack trace."""
        error: dict[str, Any] = {"type": self.kind, "message": self.message, **self.extra}
        if self.fields:
            error["fields"] = self.fields
        return {"error": error}


def from_http_exception(error: Any) -> Problem:
    """The problem for one of werkzeug's ``HTTPException`` (404, 405 with its ``Allow``, …)."""
    problem = Problem(f"{error.code} {error.name}: {error.description}")
    problem.status = error.code or 500
    problem.kind = "not_found" if error.code == 404 else "http"
    valid_methods = getattr(error, "valid_methods", None)
    if error.code == 405 and valid_methods:
        problem.headers["Allow"] = ", ".join(valid_methods)
    return problem


def internal() -> Problem:
    """What an unexpected error answers (the log keeps the traceback)."""
    return Problem("internal error; it has been logged")
