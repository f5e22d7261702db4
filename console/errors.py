"""The error tree of the console: every one answers as JSON (API) or a page (browser) with its status."""
from __future__ import annotations

from typing import Any


class ConsoleError(Exception):
    """Raised when the console cannot do what a request asked; the root of this package's errors."""

    status = 500
    kind = "internal"

    def __init__(self, message: str, *, headers: dict[str, str] | None = None) -> None:
        self.message = message
        self.headers = headers or {}
        super().__init__(message)

    def to_json(self) -> dict[str, Any]:
        return {"error": {"type": self.kind, "message": self.message}}


class BadRequest(ConsoleError):
    """Raised when a request's parameters or body are invalid."""

    status, kind = 400, "invalid_request"

    def __init__(self, message: str, *, fields: dict[str, Any] | None = None) -> None:
        self.fields = fields or {}
        super().__init__(message)

    def to_json(self) -> dict[str, Any]:
        body = super().to_json()
        if self.fields:
            body["error"]["fields"] = self.fields
        return body


class Unauthorized(ConsoleError):
    """Raised when a request carries no valid token or session."""

    status, kind = 401, "unauthorized"


class Forbidden(ConsoleError):
    """Raised when the signed-in role may not do what the request asks (or its CSRF token is wrong)."""

    status, kind = 403, "forbidden"


class NotFound(ConsoleError):
    """Raised when the order, dead letter or event asked for does not exist."""

    status, kind = 404, "not_found"


class TooManyAttempts(ConsoleError):
    """Raised when a client failed to sign in too often and must wait before trying again."""

    status, kind = 429, "too_many_attempts"


class Unavailable(ConsoleError):
    """Raised when Redis or the Stripe API cannot be reached; the client may retry later."""

    status, kind = 503, "unavailable"
