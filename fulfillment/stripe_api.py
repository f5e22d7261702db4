"""A small Stripe API client on requests: the reads fulfillment needs, errors typed by retryability."""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Collection, Iterator, Sequence
from dataclasses import replace
from typing import Any

import requests

from fulfillment import defaults
from fulfillment.credentials import redact
from fulfillment.errors import InvalidResponse, PermanentError, TransientError
from fulfillment.http import error_for, pooled_session, send
from fulfillment.ids import ACCOUNT_ID
from fulfillment.ratelimit import RateLimiter, cool_down_seconds, endpoint_of
from fulfillment.schemas import CheckoutSession, LineItem, parse_line_items, parse_session
from fulfillment.settings import StripeSettings
from fulfillment.stats import (
    STRIPE_API_CALLS,
    STRIPE_ORDERS_READ,
    STRIPE_RATE_LIMIT_DEFERRED,
    STRIPE_RATE_LIMIT_WAITED_MS,
    STRIPE_RATE_LIMITED,
    UNKNOWN_VALUES,
    Stats,
)

log = logging.getLogger(__name__)

#: What a session read expands: the first page of line items, their prices and products (4 levels, Stripe's
#: maximum) — one request for an order of up to ten items instead of two.
SESSION_EXPAND = "line_items.data.price.product"
#: What a list of sessions expands: each session's first page of line items and their prices — 4 levels,
#: Stripe's maximum, so products stay ids here and their names come from :class:`StripeClient`'s cache.
LIST_EXPAND = "data.line_items.data.price"


class StripeClient:
    """Reads Checkout Sessions and their line items from the Stripe API (or the simulator)."""

    def __init__(self, settings: StripeSettings, http: requests.Session | None = None, *,
                 stats: Stats | None = None, limiter: RateLimiter | None = None) -> None:
        if not settings.api_key:
            raise PermanentError("STRIPE_API_KEY is not set; the worker cannot read sessions from Stripe")
        self._base = settings.api_base
        self._timeout = (settings.connect_timeout, settings.read_timeout)
        self._http = http or pooled_session()
        self._api_key = settings.api_key
        self._headers = {
            "Authorization": f"Bearer {settings.api_key}",
            "Stripe-Version": settings.api_version,
            "User-Agent": "crossfill",
        }
        #: Counts requests by endpoint, sessions read and unknown payment statuses, for /metrics (None: not).
        self._stats = stats
        #: Paces every call under Stripe's rate limits, shared with every other worker (None: unpaced).
        self._limiter = limiter
        #: (account, product id) → (product name, read at): the products of listed sessions' items.
        self._products: dict[tuple[str | None, str], tuple[str, float]] = {}
        self._products_lock = threading.Lock()

    def retrieve_session(self, session_id: str, *, account: str | None = None) -> CheckoutSession:
        """Fetch a Checkout Session as it is now (never trust a webhook's copy), with the first page of
        its line items, prices and products expanded (read them with :meth:`line_items`); *account*
        reads it as that connected account (Connect)."""
        # The session read is counted with the call itself (one round trip to Redis, not two).
        session = parse_session(self._get(f"/v1/checkout/sessions/{session_id}", {"expand[]": SESSION_EXPAND},
                                          account=account, reads_order=True))
        if self._stats is not None and session.has_unknown_payment_status:
            self._stats.incr(UNKNOWN_VALUES, "payment_status")
        return session

    def session_pages(self, *, created_gte: int, created_lte: int, account: str | None = None,
                      max_pages: int = defaults.BATCH_MAX_PAGES,
                      limit: int = defaults.LIST_PAGE_SIZE) -> Iterator[SessionPage]:
        """Read complete sessions many at a time: ``GET /v1/checkout/sessions`` with ``status=complete``
        over ``created`` in [*created_gte*, *created_lte*], *limit* a page, newest first, the first page
        of each one's line items and their prices expanded; yield each page (at most *max_pages*).
        Each page is read when the caller asks for it, so what it decides is as fresh as a retrieve;
        only the sessions the caller takes from it are parsed (:meth:`SessionPage.session`). The caller
        counts the sessions it used (:meth:`count_read`).
        """
        params: dict[str, Any] = {"status": "complete", "created[gte]": created_gte, "created[lte]": created_lte,
                                  "limit": limit, "expand[]": LIST_EXPAND}
        path = "/v1/checkout/sessions"
        for _ in range(max_pages):
            page = self._get(path, params, account=account)
            data = page.get("data") if isinstance(page, dict) else None
            if not isinstance(data, list):
                raise InvalidResponse(f"GET {path} did not answer a list object")
            documents = {document["id"]: document for document in data
                         if isinstance(document, dict) and isinstance(document.get("id"), str)}
            if len(documents) != len(data):
                raise InvalidResponse(f"GET {path} answered an object without an id")
            yield SessionPage(self, documents, account)
            if not page.get("has_more") or not data:
                return
            params["starting_after"] = data[-1]["id"]

    def read_sessions(self, wanted: Collection[str], *, created_gte: int, created_lte: int,
                      account: str | None = None, max_pages: int | None = None) -> dict[str, CheckoutSession]:
        """The complete sessions *wanted* among :meth:`session_pages` over the window, paging until each
        was seen or *max_pages* were read (default: the pages they fill, and ``BATCH_MAX_PAGES`` more);
        a session not found is left out."""
        missing, found = set(wanted), {}
        if max_pages is None:
            max_pages = -(-len(missing) // defaults.LIST_PAGE_SIZE) + defaults.BATCH_MAX_PAGES
        for page in self.session_pages(created_gte=created_gte, created_lte=created_lte, account=account,
                                       max_pages=max_pages):
            for session_id in missing & page.ids:
                missing.discard(session_id)
                found[session_id] = page.session(session_id)
            if not missing:
                break
        self.count_read(found.values())
        return found

    def count_read(self, sessions: Collection[CheckoutSession]) -> None:
        """Count sessions read through a list for orders (``stripe_orders_read``, unknown payment statuses)."""
        if self._stats is not None and sessions:
            unknown = sum(1 for session in sessions if session.has_unknown_payment_status)
            self._stats.incr_many({(STRIPE_ORDERS_READ, ""): len(sessions),
                                   (UNKNOWN_VALUES, "payment_status"): unknown})

    def named(self, session: CheckoutSession, account: str | None) -> CheckoutSession:
        """*session* with its embedded items' product names, as a retrieve expanding products gives them."""
        page = session.line_items
        if page is None:
            return session
        items = tuple(item if item.price is None or item.price.product_name
                      else replace(item, price=replace(item.price, product_name=self.product_name(item.price.product,
                                                                                                  account=account)))
                      for item in page.items)
        return replace(session, line_items=replace(page, items=items))

    def product_name(self, product_id: str, *, account: str | None = None) -> str:
        """A product's name, read once and again after ``PRODUCT_CACHE_S``; "" for a deleted product."""
        key, now = (account, product_id), time.monotonic()
        with self._products_lock:
            cached = self._products.get(key)
        if cached is not None and now - cached[1] < defaults.PRODUCT_CACHE_S:
            return cached[0]
        try:
            document = self._get(f"/v1/products/{product_id}", {}, account=account)
        except PermanentError as error:
            if error.status != 404:
                raise
            document = {}  # deleted (or never there): the expanded product would have had no name either
        name = document.get("name") if isinstance(document, dict) and not document.get("deleted") else None
        name = name if isinstance(name, str) else ""
        with self._products_lock:
            self._products[key] = (name, now)
        return name

    def line_items(self, session: CheckoutSession, *, account: str | None = None) -> Iterator[LineItem]:
        """Yield every line item of *session*: the page it embeds, then the rest from the list endpoint
        only when ``has_more`` says there is more; all of them from the list endpoint when the session
        came without them (an API that did not expand them)."""
        page = session.line_items
        if page is None or (page.has_more and not page.items):
            yield from self.iter_line_items(session.id, account=account)
            return
        yield from page.items
        if page.has_more:
            yield from self.iter_line_items(session.id, starting_after=page.items[-1].id, account=account)

    def iter_line_items(self, session_id: str, *, starting_after: str | None = None,
                        account: str | None = None) -> Iterator[LineItem]:
        """Yield the line items of a session from the list endpoint, page by page, products expanded
        (after the item *starting_after*, when given)."""
        params: dict[str, Any] = {"limit": defaults.LINE_ITEMS_PAGE_SIZE, "expand[]": "data.price.product"}
        if starting_after is not None:
            params["starting_after"] = starting_after
        while True:
            items, has_more = parse_line_items(self._get(f"/v1/checkout/sessions/{session_id}/line_items", params,
                                                         account=account))
            yield from items
            if not has_more or not items:
                return
            params["starting_after"] = items[-1].id

    def list_events(self, types: Sequence[str], *, created_gte: int, undelivered: bool = False,
                    account: str | None = None) -> Iterator[dict[str, Any]]:
        """Yield the events of *types* created at or after *created_gte* (unix seconds), newest first,
        every page (Stripe keeps 30 days); with *undelivered*, only those not yet delivered to some
        endpoint (``delivery_success=false``). Each event is Stripe's document, checked for the
        fields crossfill records (``id``, ``type``, ``data.object.id``)."""
        params: dict[str, Any] = {"types[]": list(types), "created[gte]": created_gte, "limit": defaults.LIST_PAGE_SIZE}
        if undelivered:
            params["delivery_success"] = "false"
        for document in self._pages("/v1/events", params, account=account):
            yield _checked_event(document)

    def list_sessions(self, *, status: str, created_gte: int, account: str | None = None) -> Iterator[CheckoutSession]:
        """Yield the Checkout Sessions in *status* created at or after *created_gte*, newest first, every page."""
        params: dict[str, Any] = {"status": status, "created[gte]": created_gte, "limit": defaults.LIST_PAGE_SIZE}
        for document in self._pages("/v1/checkout/sessions", params, account=account):
            yield parse_session(document)

    def list_connected_accounts(self) -> Iterator[str]:
        """Yield the ids of the platform's connected accounts (Connect), every page.

        Raises:
            PermanentError: e.g. the key is not a Connect platform's (Stripe refuses the list).
        """
        for document in self._pages("/v1/accounts", {"limit": defaults.LIST_PAGE_SIZE}, account=None):
            account_id = document.get("id") if isinstance(document, dict) else None
            # The id goes into a Stripe-Account header and Redis keys: only Stripe's shape of it.
            if not isinstance(account_id, str) or not ACCOUNT_ID.match(account_id):
                raise InvalidResponse("GET /v1/accounts answered an object without an acct_ id")
            yield account_id

    def _pages(self, path: str, params: dict[str, Any], *, account: str | None) -> Iterator[Any]:
        """Every object of a Stripe list, page after page (``starting_after`` the last id seen)."""
        params = dict(params)
        while True:
            page = self._get(path, params, account=account)
            data = page.get("data") if isinstance(page, dict) else None
            if not isinstance(data, list):
                raise InvalidResponse(f"GET {path} did not answer a list object")
            yield from data
            if not page.get("has_more") or not data:
                return
            last = data[-1].get("id") if isinstance(data[-1], dict) else None
            if not isinstance(last, str):
                raise InvalidResponse(f"GET {path} answered an object without an id")
            params["starting_after"] = last

    def _get(self, path: str, params: dict[str, Any], *, account: str | None = None, reads_order: bool = False) -> Any:
        """GET *path* under the limiter, counted (with *reads_order*, an order's session read too when it succeeds)."""
        endpoint = endpoint_of("GET", path)
        waited = self._pace(account, endpoint)
        counts = {(STRIPE_API_CALLS, endpoint): 1, (STRIPE_RATE_LIMIT_WAITED_MS, endpoint): round(waited * 1000)}
        # A connected account's objects are read as that account (Stripe Connect).
        headers = self._headers if account is None else {**self._headers, "Stripe-Account": account}
        try:
            response = send(self._http.get, f"GET {path}", self._base + path, params=params, headers=headers,
                            timeout=self._timeout)
        except Exception:
            if self._stats is not None:
                self._stats.incr_many(counts)
            raise
        if self._stats is not None:
            if response.ok and reads_order:
                counts[(STRIPE_ORDERS_READ, "")] = 1
            self._stats.incr_many(counts)
        if response.ok:
            try:
                return response.json()
            except ValueError:
                raise TransientError(f"GET {path} answered {response.status_code} with a body that is not JSON",
                                     status=response.status_code) from None
        if response.status_code == 429 and self._stats is not None:
            self._stats.incr(STRIPE_RATE_LIMITED, endpoint)
        if self._limiter is not None:
            cool_down = cool_down_seconds(response.status_code, response.headers, _error_code(response))
            if cool_down is not None:
                self._limiter.cool_down(account, endpoint, cool_down)
        raise _api_error(path, response, api_key=self._api_key)

    def _pace(self, account: str | None, endpoint: str) -> float:
        """Wait for the call's slot under the shared rate limiter; the seconds waited (0 without one).

        Raises:
            TransientError: the slot is further away than a call may wait (counted, then raised).
        """
        if self._limiter is None:
            return 0.0
        try:
            return self._limiter.acquire(account, endpoint)
        except TransientError:
            if self._stats is not None:
                self._stats.incr(STRIPE_RATE_LIMIT_DEFERRED, endpoint)
            raise


class SessionPage:
    """One page of listed sessions: their ids, and each session parsed only when taken."""

    def __init__(self, client: StripeClient, documents: dict[str, Any], account: str | None) -> None:
        self._client = client
        self._documents = documents
        self._account = account
        self.ids = frozenset(documents)

    def session(self, session_id: str) -> CheckoutSession:
        """The session *session_id* of this page, as :meth:`StripeClient.retrieve_session` would give it."""
        return self._client.named(parse_session(self._documents[session_id]), self._account)


def _checked_event(document: Any) -> dict[str, Any]:
    """An event from the Events API, with the fields the inbox records; InvalidResponse otherwise."""
    try:
        ok = (isinstance(document["id"], str) and isinstance(document["type"], str)
              and isinstance(document["data"]["object"]["id"], str))
    except (KeyError, TypeError):
        ok = False
    if not ok:
        raise InvalidResponse("the Events API returned an event without id, type or data.object.id")
    checked: dict[str, Any] = document
    return checked


def _error_code(response: requests.Response) -> str | None:
    """Stripe's ``error.code`` of a 429 (``rate_limit``, ``lock_timeout``...), when it says one."""
    if response.status_code != 429:
        return None
    try:
        code = response.json()["error"].get("code")
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    return code if isinstance(code, str) else None


def _api_error(path: str, response: requests.Response, *, api_key: str) -> TransientError | PermanentError:
    try:
        message = str(response.json()["error"].get("message", ""))
    except (ValueError, KeyError, TypeError, AttributeError):
        message = ""
    # An answer may quote the key we sent (a proxy, a misconfigured gateway): it never reaches an error.
    message = message.replace(api_key, redact(api_key))[:300]
    return error_for(response, f"GET {path} answered {response.status_code}" + (f": {message}" if message else ""))
