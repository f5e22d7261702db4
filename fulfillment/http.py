"""Outbound HTTP for the domain: one pooled session factory, one mapping from answers to errors.

The Stripe client and the ``http`` fulfillment handler both call :func:`send` and so agree on
what a retry can fix: timeouts, connection failures, 408/409/425/429 and 5xx are transient; every
other non-2xx is permanent — unless the other side says otherwise with ``Stripe-Should-Retry``.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

import requests
from requests.adapters import HTTPAdapter

from fulfillment import defaults
from fulfillment.errors import PermanentError, TransientError

#: Statuses worth retrying besides 5xx: timeout, conflict (a concurrent request), too early, rate limit.
TRANSIENT_STATUSES = frozenset({408, 409, 425, 429})


#: requests' own environment variables for proxies; while none is set, they need no reading per call.
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


def pooled_session(pool_size: int = defaults.HTTP_POOL_SIZE,
                   environ: Mapping[str, str] | None = None) -> requests.Session:
    """A requests.Session with keep-alive pools large enough for every worker thread.

    requests reads its environment (proxy variables, ``~/.netrc``, CA bundle variables) again on every
    call of a session that trusts it: 7 % of a worker's samples in a profile (BENCHMARKS.md). When no
    proxy is configured, the session reads it once, here: the CA bundle variables become its
    ``verify``, and crossfill sends its own Authorization, so ``~/.netrc`` has nothing to add. With a
    proxy configured, requests keeps reading it, so that ``NO_PROXY`` is honoured host by host.
    """
    env = os.environ if environ is None else environ
    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool_size)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    if not any(env.get(name) or env.get(name.lower()) for name in PROXY_VARIABLES):
        session.trust_env = False
        session.verify = env.get("REQUESTS_CA_BUNDLE") or env.get("CURL_CA_BUNDLE") or True
    return session


def retry_after_seconds(response: requests.Response) -> float | None:
    """The ``Retry-After`` header as seconds, when it is a number (HTTP dates are ignored)."""
    raw = response.headers.get("Retry-After")
    try:
        return max(0.0, float(raw)) if raw is not None else None
    except ValueError:
        return None


def is_transient_status(status: int) -> bool:
    """Whether an answer with *status* may succeed if the same request is sent again."""
    return status in TRANSIENT_STATUSES or status >= 500


def error_for(response: requests.Response, text: str) -> TransientError | PermanentError:
    """The error a non-2xx *response* means, described by *text*, carrying its status and Retry-After."""
    status = response.status_code
    # The other side may say whether a retry can help (Stripe does); we defer to that over our rules.
    should_retry = response.headers.get("Stripe-Should-Retry")
    transient = should_retry == "true" or (should_retry != "false" and is_transient_status(status))
    if transient:
        return TransientError(text, retry_after=retry_after_seconds(response), status=status)
    return PermanentError(text, status=status)


def send(call: Callable[..., requests.Response], what: str, *args: Any, **kwargs: Any) -> requests.Response:
    """Make one request with *call* (e.g. ``session.get``); network failures become TransientError.

    *what* names the request in errors (``"GET /v1/checkout/sessions/cs_..."``); the answer is
    returned whatever its status, for the caller to map with :func:`error_for`.
    """
    try:
        return call(*args, **kwargs)
    except requests.Timeout as error:
        raise TransientError(f"{what} timed out") from error
    except requests.ConnectionError as error:
        raise TransientError(f"{what} could not connect") from error
