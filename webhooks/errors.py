"""The error tree of the webhook receiver, rooted in the shared :class:`~fulfillment.problems.Problem`."""
from __future__ import annotations

from typing import Any

from fulfillment.problems import Problem


class WebhookError(Problem):
    """Raised when an incoming webhook is refused; the root of this package's errors."""

    status, kind = 400, "invalid_request"


class SignatureVerificationError(WebhookError):
    """Raised when the Stripe-Signature header is missing, malformed, stale, or matches no secret."""

    kind = "signature_verification"

    def __init__(self, check: str, message: str) -> None:
        self.check = check  #: which check failed, e.g. "no_match", "too_old"
        super().__init__(message, check=check)


class InvalidPayload(WebhookError):
    """Raised when a verified body is not JSON or not a well-formed Stripe event."""

    kind = "invalid_payload"

    def __init__(self, message: str, fields: dict[str, Any] | None = None) -> None:
        super().__init__(message, fields=fields)


class PayloadTooLarge(WebhookError):
    """Raised when a body is longer than CROSSFILL_MAX_BODY_BYTES."""

    status, kind = 413, "payload_too_large"
