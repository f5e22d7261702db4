"""Fulfillment handlers: who is told that a line item was bought, by name.

Built in: ``log`` records the item as delivered (the dev default) and ``http`` posts it to a
fulfillment system. Third-party handlers register through the ``crossfill.handlers`` entry-point
group: a callable ``(request: FulfillmentRequest, options: Mapping) -> dict`` that raises
:class:`~fulfillment.errors.TransientError` or :class:`~fulfillment.errors.PermanentError`. The request
carries the item and its order as records (:mod:`fulfillment.records`).
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
from fulfillment.errors import ConfigError, PermanentError, UnknownHandler
from fulfillment.http import error_for, pooled_session, send
from fulfillment.orders import UNFULFILLABLE
from fulfillment.records import Order, OrderItem
from fulfillment.signing import sign

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "crossfill.handlers"


@dataclass(frozen=True)
class FulfillmentRequest:
    """What a handler is given: the item, its order, and the key that makes the call idempotent."""

    session_id: str
    line_item_id: str
    item: OrderItem
    order: Order  #: the order's summary (:meth:`Order.summary`): no items
    attempt: int
    signing_secret: str | None = None

    @property
    def idempotency_key(self) -> str:
        return f"{self.session_id}:{self.line_item_id}"


Handler = Callable[[FulfillmentRequest, Mapping[str, Any]], dict[str, Any]]


def log_handler(request: FulfillmentRequest, options: Mapping[str, Any]) -> dict[str, Any]:
    """Record the item as delivered, in the log and the ledger; for development and demos."""
    log.info("fulfilled %s (%s x%s)", request.idempotency_key, request.item.product,
             request.item.quantity)
    return {"handler": "log", "delivered": True, "idempotency_key": request.idempotency_key}


def unfulfillable_handler(request: FulfillmentRequest, options: Mapping[str, Any]) -> dict[str, Any]:
    """Fail an item crossfill could not classify (no price, no product), with the reason recorded for it."""
    raise PermanentError(request.item.problem or "the line item cannot be classified")


class HttpHandler:
    """POST the item and its order summary as signed JSON to a fulfillment system."""

    def __init__(self, http: requests.Session | None = None) -> None:
        self._http = http or pooled_session()

    @staticmethod
    def check_options(options: Mapping[str, Any]) -> tuple[str, float]:
        """The call's URL and read timeout from *options*.

        Raises:
            ConfigError: naming the option (``url`` or ``timeout``), its value and the fix.
        """
        url = options.get("url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ConfigError("url", url, "use an http:// or https:// URL of the fulfillment system")
        raw = options.get("timeout", defaults.HANDLER_TIMEOUT_S)
        try:
            timeout = float(raw)
        except (TypeError, ValueError):
            timeout = math.nan
        if not (math.isfinite(timeout) and timeout > 0):
            raise ConfigError("timeout", raw, "use a positive number of seconds")
        return url, timeout

    def __call__(self, request: FulfillmentRequest, options: Mapping[str, Any]) -> dict[str, Any]:
        try:
            url, timeout = self.check_options(options)
        except ConfigError as error:
            # The catalog is checked when it loads; this guards handlers given options some other way.
            raise PermanentError(f"the http handler needs options.{error}") from None
        secret = options.get("secret") or request.signing_secret
        if not secret:
            raise PermanentError("the http handler needs a signing secret: set CROSSFILL_HANDLER_SECRET")
        body = json.dumps({"idempotency_key": request.idempotency_key, "attempt": request.attempt,
                           "item": request.item.to_dict(), "order": request.order.summary()},
                          separators=(",", ":")).encode()
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": request.idempotency_key,
            "Crossfill-Signature": sign(body, [str(secret)], timestamp=int(time.time())),
        }
        response = send(self._http.post, f"POST {url}", url, data=body, headers=headers,
                        timeout=(defaults.HANDLER_CONNECT_TIMEOUT_S, timeout), allow_redirects=False)
        status = response.status_code
        if 200 <= status < 300:
            return {"handler": "http", "status": status, "response": _short_json(response)}
        raise error_for(response, f"POST {url} answered {status}")


def _short_json(response: requests.Response) -> Any:
    try:
        value = response.json()
    except ValueError:
        return None
    return value if len(json.dumps(value)) <= 2000 else None


class HandlerRegistry:
    """Handlers by name: the built-ins, then the ``crossfill.handlers`` entry points."""

    def __init__(self, extra: Mapping[str, Handler] | None = None) -> None:
        self._handlers: dict[str, Handler] = {"log": log_handler, "http": HttpHandler(),
                                              UNFULFILLABLE: unfulfillable_handler}
        for entry in entry_points(group=ENTRY_POINT_GROUP):
            self._handlers.setdefault(entry.name, _lazy(entry.load))
        self._handlers.update(extra or {})

    def check(self, name: str, options: Mapping[str, Any]) -> None:
        """Check that a handler called *name* exists and accepts *options* (when it says what it accepts).

        Raises:
            ConfigError: naming ``handler`` or the option that is wrong.
        """
        try:
            handler = self.get(name)
        except UnknownHandler as error:
            raise ConfigError("handler", name, str(error)) from None
        check_options = getattr(handler, "check_options", None)
        if check_options is not None:
            check_options(options)

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
