"""The error tree of the simulator; every refusal the simulated API answers is one of these."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar


class SimulatorError(Exception):
    """Raised when the simulator cannot do what was asked; the root of this package's errors."""


T = TypeVar("T")


class ApiError(SimulatorError):
    """Raised when a request is refused; it renders as Stripe's ``{"error": {...}}`` body."""

    status = 400  #: HTTP status answered
    kind = "invalid_request_error"  #: ``error.type``
    code: str | None = None  #: ``error.code``

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code

    def to_json(self) -> dict[str, Any]:
        """The response body, shaped like Stripe's."""
        error: dict[str, Any] = {"type": self.kind, "message": self.message}
        if self.code is not None:
            error["code"] = self.code
        if self.param is not None:
            error["param"] = self.param
        return {"error": error}

    def headers(self) -> dict[str, str]:
        """Extra response headers this error carries."""
        return {}


class InvalidRequest(ApiError):
    """Raised when a parameter is missing, unknown or has a value the simulator does not accept."""

    code = "parameter_invalid"


class ResourceMissing(ApiError):
    """Raised when a request names an object that does not exist."""

    status = 404
    code = "resource_missing"


def found(records: Mapping[str, T], key: str, noun: str, *, param: str = "id") -> T:
    """``records[key]``, or Stripe's 404 for it: ``No such <noun>: '<key>'``, naming *param*."""
    record = records.get(key)
    if record is None:
        raise ResourceMissing(f"No such {noun}: '{key}'", param=param)
    return record


class ResourceExists(ApiError):
    """Raised when a caller-chosen id is already taken."""

    code = "resource_already_exists"


class AccountInvalid(ApiError):
    """Raised when a Stripe-Account header names an account that is not connected to the platform."""

    status = 403
    code = "account_invalid"


class AuthenticationFailed(ApiError):
    """Raised when the API key is missing or malformed."""

    status = 401
    code = None


class IdempotencyConflict(ApiError):
    """Raised when an Idempotency-Key is reused with other parameters, or while its first request runs."""

    kind = "idempotency_error"
    code = None

    def __init__(self, message: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class RateLimited(ApiError):
    """Raised when a request is over Stripe's rate limits, or injected rate limiting (with Retry-After)."""

    status = 429
    code = "rate_limit"

    def __init__(self, message: str, *, retry_after_s: int | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s

    def headers(self) -> dict[str, str]:
        return {} if self.retry_after_s is None else {"Retry-After": str(self.retry_after_s)}


class InjectedFailure(ApiError):
    """Raised when fault injection answers a request with a 500 (or a 504 after a simulated timeout)."""

    status = 500
    kind = "api_error"
    code = None

    def __init__(self, message: str, *, status: int = 500) -> None:
        super().__init__(message)
        self.status = status


class RemoteError(SimulatorError):
    """Raised when a running simulator answers a :class:`simulator.client.SimClient` call with an error."""

    def __init__(self, method: str, path: str, status: int, body: Any) -> None:
        self.status = status
        self.body = body
        error = body.get("error", {}) if isinstance(body, dict) else {}
        detail = error.get("message") or str(body)[:200]
        super().__init__(f"{method} {path} answered {status}: {detail}")


class Unreachable(SimulatorError):
    """Raised when no simulator answers at the base URL."""
