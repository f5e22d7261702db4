"""HMAC-SHA256 signatures in Stripe's ``t=...,v1=...`` scheme, used both ways.

Stripe signs webhooks to crossfill this way; crossfill signs its own calls to fulfillment
systems (``Crossfill-Signature``) the same way, with its own secret.
"""
from __future__ import annotations

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
