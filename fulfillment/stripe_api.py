"""A small Stripe API client on requests: the reads fulfillment needs, errors typed by retryability."""
from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import requests
from requests.adapters import HTTPAdapter

from fulfillment import defaults
from fulfillment.errors import PermanentError, TransientError
from fulfillment.schemas import CheckoutSession, LineItem, parse_line_items, parse_session
from fulfillment.settings import Settings, redact

log = logging.getLogger(__name__)

#: Statuses worth retrying: conflict (a concurrent request), rate limit, and server errors.
RETRYABLE_STATUSES = frozenset({409, 429})


def retry_after_seconds(response: requests.Response) -> float | None:
    """The ``Retry-After`` header as seconds, when it is a number (HTTP dates are ignored)."""
    raw = response.headers.get("Retry-After")
    try:
        return max(0.0, float(raw)) if raw is not None else None
    except ValueError:
        return None


def pooled_session(pool_size: int = defaults.HTTP_POOL_SIZE) -> requests.Session:
    """A requests.Session with keep-alive pools large enough for every worker thread."""
    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool_size)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


class StripeClient:
    """Reads Checkout Sessions and their line items from the Stripe API (or the simulator)."""

    def __init__(self, settings: Settings, http: requests.Session | None = None) -> None:
        if not settings.stripe_api_key:
            raise PermanentError("STRIPE_API_KEY is not set; the worker cannot read sessions from Stripe")
        self._base = settings.stripe_api_base
        self._timeout = (settings.stripe_connect_timeout, settings.stripe_read_timeout)
        self._http = http or pooled_session()
        self._api_key = settings.stripe_api_key
        self._headers = {
            "Authorization": f"Bearer {settings.stripe_api_key}",
            "Stripe-Version": settings.stripe_api_version,
            "User-Agent": "crossfill",
        }

    def retrieve_session(self, session_id: str) -> CheckoutSession:
        """Fetch a Checkout Session as it is now (never trust a webhook's copy)."""
        return parse_session(self._get(f"/v1/checkout/sessions/{session_id}", {}))

    def iter_line_items(self, session_id: str) -> Iterator[LineItem]:
        """Yield every line item of a session, page by page, products expanded."""
        params: dict[str, Any] = {"limit": defaults.LINE_ITEMS_PAGE_SIZE, "expand[]": "data.price.product"}
        while True:
            items, has_more = parse_line_items(self._get(f"/v1/checkout/sessions/{session_id}/line_items", params))
            yield from items
            if not has_more or not items:
                return
            params["starting_after"] = items[-1].id

    def _get(self, path: str, params: dict[str, Any]) -> Any:
        try:
            response = self._http.get(self._base + path, params=params, headers=self._headers, timeout=self._timeout)
        except requests.Timeout as error:
            raise TransientError(f"GET {path} timed out") from error
        except requests.ConnectionError as error:
            raise TransientError(f"GET {path} could not connect to {self._base}") from error
        if response.ok:
            try:
                return response.json()
            except ValueError:
                raise TransientError(f"GET {path} answered {response.status_code} with a body that is not JSON",
                                     status=response.status_code) from None
        raise _api_error(path, response, api_key=self._api_key)


def _api_error(path: str, response: requests.Response, *, api_key: str) -> TransientError | PermanentError:
    status = response.status_code
    try:
        message = str(response.json()["error"].get("message", ""))
    except (ValueError, KeyError, TypeError, AttributeError):
        message = ""
    # An answer may quote the key we sent (a proxy, a misconfigured gateway): it never reaches an error.
    message = message.replace(api_key, redact(api_key))[:300]
    text = f"GET {path} answered {status}" + (f": {message}" if message else "")
    # The API may say whether a retry can help; we defer to that over our own status rules.
    should_retry = response.headers.get("Stripe-Should-Retry")
    if should_retry == "true":
        return TransientError(text, retry_after=retry_after_seconds(response), status=status)
    if should_retry == "false":
        return PermanentError(text, status=status)
    if status in RETRYABLE_STATUSES or status >= 500:
        return TransientError(text, retry_after=retry_after_seconds(response), status=status)
    return PermanentError(text, status=status)
