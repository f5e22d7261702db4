"""The error tree of crossfill's domain."""
from __future__ import annotations


class CrossfillError(Exception):
    """Raised when crossfill's domain cannot do what was asked; the root of this package's errors."""


class ConfigError(CrossfillError):
    """Raised when a setting has a value crossfill cannot use."""

    def __init__(self, name: str, value: object, fix: str) -> None:
        self.name = name
        self.value = value
        self.fix = fix
        super().__init__(f"{name}={value!r} is invalid: {fix}")


class TransientError(CrossfillError):
    """Raised when a call failed in a way that may succeed if retried (timeout, 409, 429, 5xx)."""

    def __init__(self, message: str, *, retry_after: float | None = None, status: int | None = None) -> None:
        self.retry_after = retry_after  #: seconds the other side asked us to wait, if it said
        self.status = status
        super().__init__(message)


class StoreUnavailable(TransientError):
    """Raised when Redis (the inbox, the ledger or the broker) cannot be reached; transient, like an outage."""


class NotReplicated(StoreUnavailable):
    """Raised when the Redis master took a write but too few replicas acknowledged it in time: a
    failover could still lose it, so it is not acted on yet (transient, like an outage)."""


class PermanentError(CrossfillError):
    """Raised when a call failed and retrying it cannot help (a 4xx other than 408/409/425/429)."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        self.status = status
        super().__init__(message)


class InvalidResponse(PermanentError):
    """Raised when the Stripe API answers with a body that does not match its documented shape."""


class UnknownHandler(PermanentError):
    """Raised when the catalog names a fulfillment handler that is not registered."""
