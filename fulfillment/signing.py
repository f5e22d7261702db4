"""HMAC-SHA256 signatures: Stripe's ``t=...,v1=...`` scheme, used both ways, and Standard Webhooks'.

Stripe signs webhooks to crossfill this way; crossfill signs its own calls to fulfillment
systems (``Crossfill-Signature``) the same way, with its own secret. It signs them per the Standard
Webhooks specification too (``webhook-id``, ``webhook-timestamp``, ``webhook-signature``), so a
fulfillment system can verify them with that specification's libraries instead of code of its own.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Sequence


def compute_signature(body: bytes, secret: str, timestamp: int) -> str:
    """Return the lowercase hex ``v1`` signature of *body* sent at *timestamp* under *secret*."""
    signed = b"%d." % timestamp + body
    return hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).hexdigest()


def sign(body: bytes, secrets: Sequence[str], *, timestamp: int, v0: str | None = None) -> str:
    """Build a signature header with one ``v1`` per secret, as Stripe sends while a secret rolls."""
    parts = [f"t={timestamp}"]
    parts += [f"v1={compute_signature(body, secret, timestamp)}" for secret in secrets]
    if v0 is not None:
        parts.append(f"v0={v0}")
    return ",".join(parts)


#: The prefix of a Standard Webhooks secret: ``whsec_`` + the base64 of the key's bytes.
STANDARD_SECRET_PREFIX = "whsec_"


def standard_key(secret: str) -> bytes:
    """The HMAC key of *secret* under the Standard Webhooks specification.

    A ``whsec_`` + base64 secret (the specification's form) signs with the decoded bytes, so a consumer
    verifies with ``standardwebhooks.Webhook(secret)``; any other secret (one made for
    ``Crossfill-Signature`` alone) signs with its UTF-8 bytes: ``Webhook(secret.encode())``.
    """
    if secret.startswith(STANDARD_SECRET_PREFIX):
        encoded = secret[len(STANDARD_SECRET_PREFIX):]
        try:
            key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
        except binascii.Error:
            key = b""
        if key:
            return key
    return secret.encode("utf-8")


def standard_signature(body: bytes, secret: str, *, message_id: str, timestamp: int) -> str:
    """The ``webhook-signature`` value of *body*: ``v1,`` + base64(HMAC-SHA256 over ``id.timestamp.body``)."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(standard_key(secret), signed, hashlib.sha256).digest()).decode()


def standard_headers(body: bytes, secret: str, *, message_id: str, timestamp: int) -> dict[str, str]:
    """The Standard Webhooks headers of one call: ``webhook-id``, ``webhook-timestamp``, ``webhook-signature``.

    *message_id* stays the same on every retry of one message (the specification's idempotency key).
    """
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": standard_signature(body, secret, message_id=message_id, timestamp=timestamp),
    }
