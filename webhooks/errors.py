"""The error tree of the webhook receiver."""
from __future__ import annotations

from typing import Any


class WebhookError(Exception):
    """Raised when an incoming webhook is refused; the root of this package's errors."""

    #: HTTP status answered for this error.
    status = 400
    #: ``error.type`` in the JSON answer.
    kind = "invalid_request"

    def to_json(self) -> dict[str, Any]:
        """The body answered to the sender: what failed, never a secret."""
        return {"error": {"type": self.kind, "message": str(self)}}


class SignatureVerificationError(WebhookError):
    """Raised when the Stripe-Signature header is missing, malformed, stale, or matches no secret."""

    kind = "signature_verification"

    def __init__(self, check: str, message: str) -> None:
        self.check = check  #: which check failed, e.g. "no_match", "too_old"
        super().__init__(message)

    def to_json(self) -> dict[str, Any]:
        body = super().to_json()
        body["error"]["check"] = self.check
        return body


class InvalidPayload(WebhookError):
    """Raised when a verified body is not JSON or not a well-formed Stripe event."""

    kind = "invalid_payload"

    def __init__(self, message: str, fields: dict[str, Any] | None = None) -> None:
        self.fields = fields or {}
        super().__init__(message)

    def to_json(self) -> dict[str, Any]:
        body = super().to_json()
        if self.fields:
            body["error"]["fields"] = self.fields
        return body


class PayloadTooLarge(WebhookError):
    """Raised when a body is longer than CROSSFILL_MAX_BODY_BYTES."""

    status = 413
    kind = "payload_too_large"
