"""Every default of the simulator, in one place, with its unit."""
from __future__ import annotations

PORT = 12111  #: port ``crossfill sim`` listens on (stripe-mock's)
HOST = "127.0.0.1"  #: interface the simulator binds to

PAGE_LIMIT = 10  #: list page size when ``limit`` is not given (Stripe's)
MAX_PAGE_LIMIT = 100  #: largest ``limit`` accepted (Stripe's)
MAX_LINE_ITEMS = 1000  #: most line items one Checkout Session may be created with (any mode; see below)
PAYMENT_MODE_LINE_ITEMS = 100  #: Stripe's limit of line items in a payment-mode session
SUBSCRIPTION_MODE_LINE_ITEMS = 20  #: Stripe's limit of recurring, and of one-time, items in a subscription session
EXPANDED_LINE_ITEMS = 10  #: line items in ``expand[]=line_items`` (the first page only, as Stripe)
SESSION_TTL_S = 24 * 3600  #: a session's ``expires_at`` after creation, seconds (Stripe's default)
API_VERSION = "2026-10-28.endive"  #: ``api_version`` of events and endpoints (stripe-python 16.1's)

RETRY_BASE_MS = 1000  #: first delivery retry delay, ms; doubles per attempt (Stripe's hours, compressed)
RETRY_MAX_DELAY_MS = 60_000  #: cap on one delivery retry delay, ms
RETRY_MAX_ATTEMPTS = 8  #: delivery attempts per event and endpoint, the first included
DELIVERY_TIMEOUT_S = 10.0  #: a webhook endpoint must answer within this, seconds (Checkout waits 10 s)
DELIVERY_WORKERS = 32  #: threads delivering webhooks at once
ROLLED_SECRET_TTL_S = 24 * 3600  #: the old secret still signs this long after a roll, seconds

FAULT_TIMEOUT_MS = 30_000  #: a request hit by ``timeout_rate`` hangs this long, then answers 504, ms
IDEMPOTENCY_TTL_S = 24 * 3600  #: an Idempotency-Key is remembered this long, seconds

RATE_LIMIT_MODE = "off"  #: ``--rate-limits``: off, test or live (Stripe's limits of that mode)
TEST_RATE_PER_S = 25  #: requests per second per account in test mode (sandboxes), Stripe's limit
LIVE_RATE_PER_S = 100  #: requests per second per account in live mode, Stripe's limit
ENDPOINT_RATE_PER_S = 25  #: requests per second per account to one endpoint (route), Stripe's default
PLATFORM_ACCOUNT = "platform"  #: the account a request without a Stripe-Account header acts for
