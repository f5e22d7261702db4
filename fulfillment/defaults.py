"""Every default of crossfill's domain and shared settings, in one place, with its unit.

The receiver's own defaults (port, body limit, signature tolerance) live in ``webhooks/defaults.py``.
"""
from __future__ import annotations

DATA_DIR = "./var"  #: where the embedded Redis, the generated secret and metrics files live
STRIPE_API_BASE = "https://api.stripe.com"  #: Stripe's API root

REDIS_CONNECT_TIMEOUT_S = 1.0  #: connecting to Redis, seconds (the receiver answers 503 after it)
REDIS_SOCKET_TIMEOUT_S = 2.0  #: one Redis command, seconds
REDIS_SENTINEL_MASTER = "mymaster"  #: the master's name the sentinels monitor (CROSSFILL_REDIS_SENTINEL_MASTER)
#: replicas that must hold an acknowledged event or a done mark under Sentinel (CROSSFILL_REDIS_MIN_REPLICAS);
#: a single Redis has none to wait for (0)
REDIS_MIN_REPLICAS_SENTINEL = 1
#: longest WAIT for those replicas, milliseconds (CROSSFILL_REDIS_WAIT_TIMEOUT_MS); below the socket timeout,
#: and short: the receiver answers 503 after it, and Stripe retries
REDIS_WAIT_TIMEOUT_MS = 500

#: orders and their items expire this long after the order's creation, inbox events after their last
#: delivery, seconds (CROSSFILL_RETENTION)
RETENTION_S = 90 * 86_400

RECONCILE_EVERY_S = 600.0  #: how often beat runs reconciliation, seconds
RECONCILE_WINDOW_S = 72 * 3600.0  #: how far back reconciliation lists events and sessions, seconds
RECONCILE_WINDOW_MAX_S = 30 * 86_400.0  #: the Events API keeps 30 days of events, seconds
#: a reconciliation run holds its lock this long past its last renewal (it renews as it works), seconds;
#: so a run killed while holding it delays the next one by at most this much
RECONCILE_LOCK_S = 60.0
SWEEP_EVERY_S = 10.0  #: how often beat runs the sweeper, seconds
#: an event or an order's item unchanged this long, with no message for it in a queue or held by a
#: consumer, lost its message: the sweeper sends it again, seconds (so a lost message is found within
#: a sweep or two of this)
STUCK_AFTER_S = 20.0
#: an order awaiting payment has its session read again (its async payment event may be lost) this long
#: after its last change or check, seconds (a Stripe API call per order: not every sweep)
PAYMENT_RECHECK_S = 3600.0
#: a worker's broker connection beats this often (kombu's unacked_restore_interval), seconds
CONSUMER_BEAT_EVERY_S = 2
#: a connection silent this long is dead: the messages it held go back to their queue, seconds
CONSUMER_DEAD_AFTER_S = 20.0
#: upper bounds of the fulfillment lag histogram (paid → item done), seconds: a healthy pipeline takes
#: seconds, a backlog minutes, a webhook recovered by reconciliation up to its interval
LAG_BUCKETS_S = (1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 14400.0, 86400.0)
#: the lateness alert's threshold: a paid order not fulfilled this long is late, seconds
LATE_AFTER_S = 300.0
SWEEP_BATCH = 1000  #: candidates the sweeper examines per kind and run (oldest first)

STRIPE_API_VERSION = "2026-10-28.endive"  #: pinned Stripe-Version header (stripe-python 16.1's)
STRIPE_CONNECT_TIMEOUT_S = 3.05  #: connecting to the Stripe API, seconds
STRIPE_READ_TIMEOUT_S = 20.0  #: waiting for a Stripe API answer, seconds
LINE_ITEMS_PAGE_SIZE = 100  #: Stripe's largest page of line items
LIST_PAGE_SIZE = 100  #: Stripe's largest page of a list (events, sessions)
#: sessions of waiting events one worker reads through the list endpoint at once (CROSSFILL_BATCH_READS;
#: 0 reads every session alone); one page of GET /v1/checkout/sessions
BATCH_READS = 100
BATCH_SCAN = 2000  #: waiting events a batch looks through for its account's (oldest first)
BATCH_LEASE_S = 20.0  #: a batch holds the events it claimed this long; a dead batch's events are retaken after it, s
BATCH_MIN_PAGE = 10  #: smallest page a batch reads (Stripe's default page size)
BATCH_MAX_PAGES = 10  #: list pages a batch reads beyond those its sessions fill, before the rest are read alone
PRODUCT_CACHE_S = 300.0  #: a product read for a batch's items is read again after this, seconds
HTTP_POOL_SIZE = 64  #: pooled keep-alive connections per host and process

VISIBILITY_TIMEOUT_S = 3600  #: Redis broker: an unacked task is redelivered after this, seconds
VISIBILITY_MARGIN_S = 5  #: retry delays stay this far below the visibility timeout, seconds
RETRY_BASE_S = 1.0  #: first retry delay ceiling (full jitter), seconds
RETRY_CAP_S = 300.0  #: largest retry delay, seconds (kept below the visibility timeout)
RETRY_HORIZON_S = 72 * 3600.0  #: transient failures are retried this long after the first attempt (Stripe's own window), seconds
MAX_ATTEMPTS = 8  #: attempts of a task failing with an unexpected error (a bug) before it is dead-lettered
#: a fulfillment claim lasts this long past its last renewal (its worker renews it every third of it
#: while the handler runs), so a dead worker's claim is retaken after at most this, seconds
ITEM_LEASE_S = 30
HANDLER_TIMEOUT_S = 30.0  #: one call of a fulfillment handler (http read timeout), seconds
HANDLER_CONNECT_TIMEOUT_S = 3.05  #: connecting to a fulfillment system, seconds
TASK_TIME_LIMIT_S = 110  #: hard limit of one task run, seconds (prefork only; the lease is renewed while it runs)

STRIPE_LIVE_RATE_LIMIT = 100.0  #: Stripe's limit per account in live mode, requests/s
STRIPE_TEST_RATE_LIMIT = 25.0  #: Stripe's limit per account in test mode (sandboxes), requests/s
STRIPE_ENDPOINT_RATE_LIMIT = 25.0  #: Stripe's default limit per endpoint and account, requests/s
STRIPE_RATE_LIMIT_HEADROOM = 0.05  #: share of each Stripe rate limit the limiter leaves unused (arrival jitter)
STRIPE_RATE_LIMIT_MAX_WAIT_S = 10.0  #: longest a call waits for its rate-limit slot before its task retries, s
STRIPE_COOL_DOWN_S = 1.0  #: cool-down after a 429 that names no Retry-After, seconds
STRIPE_COOL_DOWN_MAX_S = 60.0  #: longest cool-down a 429's Retry-After can impose, seconds
