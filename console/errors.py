"""The error tree of the console: every one answers as JSON (API) or a page (browser) with its status.

Rooted in the shared :class:`~fulfillment.problems.Problem`, which says the answer's shape once for
the console and the receiver.
"""
from __future__ import annotations

from fulfillment.problems import Problem


class ConsoleError(Problem):
    """Raised when the console cannot do what a request asked; the root of this package's errors."""


class BadRequest(ConsoleError):
    """Raised when a request's parameters or body are invalid."""

    status, kind = 400, "invalid_request"


class Unauthorized(ConsoleError):
    """Raised when a request carries no valid token or session."""

    status, kind = 401, "unauthorized"


class Forbidden(ConsoleError):
    """Raised when the signed-in role may not do what the request asks (or its CSRF token is wrong)."""

    status, kind = 403, "forbidden"


class NotFound(ConsoleError):
    """Raised when the order, dead letter or event asked for does not exist (or is not the caller's)."""

    status, kind = 404, "not_found"


class Conflict(ConsoleError):
    """Raised when the request contradicts what is recorded (e.g. replaying an event recorded as ignored)."""

    status, kind = 409, "conflict"


class TooManyAttempts(ConsoleError):
    """Raised when a client sent bad tokens too often, or a merchant token too many calls, and must wait."""

    status, kind = 429, "too_many_attempts"


class Unavailable(ConsoleError):
    """Raised when Redis or the Stripe API cannot be reached; the client may retry later."""

    status, kind = 503, "unavailable"


def too_many(reason: str, wait_s: float) -> TooManyAttempts:
    """A 429 telling the client why, and to retry in *wait_s* seconds (rounded up, in ``Retry-After``)."""
    seconds = int(wait_s) + 1
    return TooManyAttempts(f"{reason}; try again in {seconds} s", headers={"Retry-After": str(seconds)})
