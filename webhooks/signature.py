"""Stripe webhook signatures: pure functions, no IO.

The scheme (Stripe's docs, and stripe-python's ``WebhookSignature``): the header is
``t=<unix seconds>,v1=<hex>[,v1=<hex>...][,v0=<hex>]``; the signed payload is ``b"<t>." + body``;
each ``v1`` is the lowercase hex HMAC-SHA256 of it keyed with the whole secret string. Only ``v1``
counts: ``v0`` and any other scheme are ignored so an attacker cannot downgrade us.

Header parsing follows stripe-python on purpose, so that every header it accepts is accepted here
too; crossfill is stricter in one way only: a timestamp too far in the *future* is refused as well.
"""
from __future__ import annotations

import hmac
from collections.abc import Sequence

from fulfillment.signing import compute_signature, sign
from webhooks import defaults
from webhooks.errors import SignatureVerificationError

SCHEME = "v1"
__all__ = ["SCHEME", "compute_signature", "parse_header", "sign", "verify"]


def parse_header(header: str) -> tuple[int, list[str]]:
    """Split a Stripe-Signature header into its timestamp and its ``v1`` signatures.

    Raises:
        SignatureVerificationError: when the header is empty, oversized, or has no usable ``t``.
    """
    if not header:
        raise SignatureVerificationError("missing_header", "the Stripe-Signature header is missing or empty")
    if len(header) > defaults.MAX_SIGNATURE_HEADER_BYTES:
        raise SignatureVerificationError(
            "malformed_header",
            f"the Stripe-Signature header is {len(header)} bytes; at most "
            f"{defaults.MAX_SIGNATURE_HEADER_BYTES} are accepted",
        )
    # As stripe-python: items split on ",", each on "=" (at most twice); the first "t" wins, and
    # any "t" or "v1" item without a value makes the whole header malformed (not only the first).
    items = [item.split("=", 2) for item in header.split(",")]
    try:
        timestamp = int([item[1] for item in items if item[0] == "t"][0])
        signatures = [item[1] for item in items if item[0] == SCHEME]
    except (IndexError, ValueError):
        raise SignatureVerificationError(
            "malformed_header",
            "the Stripe-Signature header must look like t=<unix seconds>,v1=<hex signature>",
        ) from None
    if not signatures:
        raise SignatureVerificationError(
            "no_v1_signature", "the Stripe-Signature header has no v1 signature (v0 and other schemes are ignored)"
        )
    return timestamp, signatures


def verify(body: bytes, header: str, secrets: Sequence[str], *, now: float, tolerance: int) -> int:
    """Check that *body* was signed by Stripe with one of *secrets* within *tolerance* seconds of *now*.

    Args:
        body: the raw request body, exactly the bytes received.
        header: the ``Stripe-Signature`` header value.
        secrets: the endpoint's signing secrets; any one of them may match any ``v1``.
        now: the current unix time, seconds.
        tolerance: allowed clock skew in seconds, in both directions; 0 turns the check off.

    Returns:
        The header's timestamp.

    Raises:
        SignatureVerificationError: saying which check failed (never which signature was expected).
    """
    timestamp, signatures = parse_header(header)
    expected = [compute_signature(body, secret, timestamp).encode() for secret in secrets]
    given = [sig.encode("utf-8", "replace") for sig in signatures]
    # Compare every pair in constant time; no early exit, so timing says nothing about which matched.
    matched = False
    for want in expected:
        for got in given:
            matched |= hmac.compare_digest(want, got)
    if not matched:
        raise SignatureVerificationError(
            "no_match",
            f"none of the {len(signatures)} v1 signature(s) matches the body for any configured secret; "
            "check that the endpoint's signing secret is configured and the raw body is passed unchanged",
        )
    if tolerance and timestamp < now - tolerance:
        raise SignatureVerificationError(
            "too_old", f"the timestamp t={timestamp} is {int(now - timestamp)} s old; at most {tolerance} s is accepted"
        )
    if tolerance and timestamp > now + tolerance:
        raise SignatureVerificationError(
            "in_future",
            f"the timestamp t={timestamp} is {int(timestamp - now)} s in the future; at most {tolerance} s of clock skew is accepted",
        )
    return timestamp
