"""Fulfillment handlers: who is told that a line item was bought, by name.

Built in: ``log`` records the item as delivered (the dev default) and ``http`` posts it to a
fulfillment system. Third-party handlers register through the ``crossfill.handlers`` entry-point
group: a callable ``(request: FulfillmentRequest, options: Mapping) -> dict`` that raises
:class:`~fulfillment.errors.TransientError` or :class:`~fulfillment.errors.PermanentError`.
"""
from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

import requests

from fulfillment import defaults
from fulfillment.errors import PermanentError, TransientError, UnknownHandler
from fulfillment.signing import sign
from fulfillment.stripe_api import pooled_session, retry_after_seconds

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "crossfill.handlers"
#: Statuses of a fulfillment system's answer worth retrying.
TRANSIENT_STATUSES = frozenset({408, 409, 425, 429})


@dataclass(frozen=True)
class FulfillmentRequest:
    """What a handler is given: the item, its order, and the key that makes the call idempotent."""

    session_id: str
    line_item_id: str
    item: Mapping[str, Any]
    order: Mapping[str, Any]
    attempt: int
    signing_secret: str | None = None

    @property
    def idempotency_key(self) -> str:
        return f"{self.session_id}:{self.line_item_id}"


Handler = Callable[[FulfillmentRequest, Mapping[str, Any]], dict[str, Any]]


def log_handler(request: FulfillmentRequest, options: Mapping[str, Any]) -> dict[str, Any]:
    """Record the item as delivered, in the log and the ledger; for development and demos."""
    log.info("fulfilled %s (%s x%s)", request.idempotency_key, request.item.get("product"),
             request.item.get("quantity"))
    return {"handler": "log", "delivered": True, "idempotency_key": request.idempotency_key}


class HttpHandler:
    """POST the item and its order summary as signed JSON to a fulfillment system."""

    def __init__(self, http: requests.Session | None = None) -> None:
        self._http = http or pooled_session()

    def __call__(self, request: FulfillmentRequest, options: Mapping[str, Any]) -> dict[str, Any]:
        url = options.get("url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise PermanentError(f"the http handler needs options.url as an http(s) URL, got {url!r}")
        secret = options.get("secret") or request.signing_secret
        if not secret:
            raise PermanentError("the http handler needs a signing secret: set CROSSFILL_HANDLER_SECRET")
        body = json.dumps({"idempotency_key": request.idempotency_key, "attempt": request.attempt,
                           "item": dict(request.item), "order": dict(request.order)},
                          separators=(",", ":")).encode()
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": request.idempotency_key,
            "Crossfill-Signature": sign(body, [str(secret)], timestamp=int(time.time())),
        }
        timeout = _timeout(options.get("timeout", defaults.HANDLER_TIMEOUT_S))
        try:
            response = self._http.post(url, data=body, headers=headers, timeout=(3.05, timeout),
                                       allow_redirects=False)
        except requests.Timeout as error:
            raise TransientError(f"POST {url} timed out") from error
        except requests.ConnectionError as error:
            raise TransientError(f"POST {url} could not connect") from error
        status = response.status_code
        if 200 <= status < 300:
            return {"handler": "http", "status": status, "response": _short_json(response)}
        text = f"POST {url} answered {status}"
        if status in TRANSIENT_STATUSES or status >= 500:
            raise TransientError(text, retry_after=retry_after_seconds(response), status=status)
        raise PermanentError(text, status=status)


def _timeout(raw: Any) -> float:
    """``options.timeout`` in seconds; a value requests cannot use is a config mistake, not worth a retry."""
    try:
        seconds = float(raw)
    except (TypeError, ValueError):
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds > 0):
        raise PermanentError(f"the http handler needs options.timeout as a positive number of seconds, got {raw!r}")
    return seconds


def _short_json(response: requests.Response) -> Any:
    try:
        value = response.json()
    except ValueError:
        return None
    return value if len(json.dumps(value)) <= 2000 else None


class HandlerRegistry:
    """Handlers by name: the built-ins, then the ``crossfill.handlers`` entry points."""

    def __init__(self, extra: Mapping[str, Handler] | None = None) -> None:
        self._handlers: dict[str, Handler] = {"log": log_handler, "http": HttpHandler()}
        for entry in entry_points(group=ENTRY_POINT_GROUP):
            self._handlers.setdefault(entry.name, _lazy(entry.load))
        self._handlers.update(extra or {})

    def get(self, name: str) -> Handler:
        """The handler called *name*; raises UnknownHandler (permanent) when there is none."""
        try:
            return self._handlers[name]
        except KeyError:
            raise UnknownHandler(f"no fulfillment handler named {name!r}; known: {', '.join(sorted(self._handlers))}"
                                 f" (third-party handlers register in the {ENTRY_POINT_GROUP!r} entry-point group)"
                                 ) from None


def _lazy(load: Callable[[], Handler]) -> Handler:
    loaded: list[Handler] = []

    def call(request: FulfillmentRequest, options: Mapping[str, Any]) -> dict[str, Any]:
        if not loaded:
            loaded.append(load())
        return loaded[0](request, options)

    return call
