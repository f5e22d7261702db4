"""One simulated Stripe account in memory: :class:`Store`, its single lock, over one store per resource.

The resources live in one module each: :mod:`~simulator.store.catalog` (products, prices and
cross-sells), :mod:`~simulator.store.sessions` (Checkout Sessions and their line items),
:mod:`~simulator.store.events` (events and webhook endpoints) and :mod:`~simulator.store.account`
(the account itself: id, mode, clock, Dashboard settings). Their methods take typed arguments (the
Flask views parse requests) and return Stripe JSON dicts.

Locking is decided here and nowhere else: each account's :class:`Store` owns one re-entrant lock and
every public method takes it for the whole call, so a call sees and leaves the account's objects
consistent, and the events it creates are handed to the webhook dispatcher in order. The resource
stores never lock; they run only inside a :class:`Store` call. The platform's account and each
connected account (Stripe Connect) are separate stores: a connected store may take the platform's
lock while holding its own (to read the platform's Connect endpoints), never the other way round.
"""
from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

from simulator.config import SimConfig
from simulator.resources import EndpointRecord, SessionRecord
from simulator.store.account import Account
from simulator.store.catalog import Catalog
from simulator.store.destinations import DestinationRecord, EventDestinations
from simulator.store.events import AUTOMATIC, EventHook, Events, RequestInfo, WebhookEndpoints
from simulator.store.sessions import LineItemSpec, Sessions

__all__ = ["AUTOMATIC", "EventHook", "LineItemSpec", "RequestInfo", "Store"]

P = ParamSpec("P")
R = TypeVar("R")


class Store:
    """All objects of one simulated Stripe account; every method runs under the account's lock."""

    def __init__(self, config: SimConfig, *, on_event: EventHook | None = None,
                 clock: Callable[[], float] = time.time, account: str | None = None,
                 platform: Store | None = None, livemode: bool | None = None) -> None:
        self._lock = threading.RLock()
        self._account = Account(config, account_id=account, livemode=livemode, clock=clock)
        self._endpoints = WebhookEndpoints(self._account, platform=platform)
        self._destinations = EventDestinations(self._account, platform=platform)
        self._events = Events(self._account, self._endpoints, on_event=on_event, destinations=self._destinations)
        self._catalog = Catalog(self._account, self._events)
        self._sessions = Sessions(self._account, self._catalog, self._events)
        self.config = config
        self.account = account  #: the connected account's id; None for the platform's own account
        self.livemode = self._account.livemode  #: the mode of every object and event of this account

        locked = self._locked
        # the Dashboard's settings
        self.set_default_tax_behavior = locked(self._account.set_default_tax_behavior)
        self.account_json = locked(self._account.settings_json)
        # products, prices and cross-sells
        self.create_product = locked(self._catalog.create_product)
        self.get_product = locked(self._catalog.get_product)
        self.update_product = locked(self._catalog.update_product)
        self.list_products = locked(self._catalog.list_products)
        self.create_price = locked(self._catalog.create_price)
        self.get_price = locked(self._catalog.get_price)
        self.list_prices = locked(self._catalog.list_prices)
        self.prices_of = locked(self._catalog.prices_of)
        self.set_cross_sell = locked(self._catalog.set_cross_sell)
        self.remove_cross_sell = locked(self._catalog.remove_cross_sell)
        self.cross_sell_json = locked(self._catalog.cross_sell_json)
        # Checkout Sessions and the buyer's acts
        self.create_session = locked(self._sessions.create_session)
        self.has_session = locked(self._sessions.has_session)
        self.get_session = locked(self._sessions.get_session)
        self.list_sessions = locked(self._sessions.list_sessions)
        self.list_line_items = locked(self._sessions.list_line_items)
        self.sim_session_json = locked(self._sessions.sim_session_json)
        self.add_cross_sell = locked(self._sessions.add_cross_sell)
        self.remove_cross_sell_item = locked(self._sessions.remove_cross_sell_item)
        self.complete_session = locked(self._sessions.complete_session)
        self.expire_session = locked(self._sessions.expire_session)
        # events
        self.has_event = locked(self._events.has_event)
        self.get_event = locked(self._events.get_event)
        self.list_events = locked(self._events.list_events)
        # webhook endpoints
        self.create_endpoint = locked(self._endpoints.create_endpoint)
        self.get_endpoint = locked(self._endpoints.get_endpoint)
        self.update_endpoint = locked(self._endpoints.update_endpoint)
        self.delete_endpoint = locked(self._endpoints.delete_endpoint)
        self.list_endpoints = locked(self._endpoints.list_endpoints)
        self.roll_secret = locked(self._endpoints.roll_secret)
        self.endpoint_secrets = locked(self._endpoints.endpoint_secrets)
        self.connect_endpoints = locked(self._endpoints.connect_endpoints)
        self.endpoints_for = locked(self._endpoints.endpoints_for)
        # event destinations (v2) and thin events
        self.create_destination = locked(self._destinations.create_destination)
        self.get_destination = locked(self._destinations.get_destination)
        self.update_destination = locked(self._destinations.update_destination)
        self.set_destination_status = locked(self._destinations.set_status)
        self.delete_destination = locked(self._destinations.delete_destination)
        self.list_destinations = locked(self._destinations.list_destinations)
        self.destination_secrets = locked(self._destinations.destination_secrets)
        self.connected_destinations = locked(self._destinations.connected_destinations)
        self.ping_event = locked(self._destinations.ping_event)
        self.get_thin_event = locked(self._destinations.get_thin_event)
        self.has_thin_event = locked(self._destinations.has_thin_event)
        self.thin_targets = locked(self._destinations.thin_targets)
        self.list_thin_events = locked(self._destinations.list_thin_events)

    def _locked(self, method: Callable[P, R]) -> Callable[P, R]:
        """*method* of a resource store, run under this account's lock."""
        @functools.wraps(method)
        def under_lock(*args: P.args, **kwargs: P.kwargs) -> R:
            with self._lock:
                return method(*args, **kwargs)
        return under_lock

    def set_event_hook(self, hook: EventHook) -> None:
        """Send every new event to *hook* (the webhook dispatcher)."""
        with self._lock:
            self._events.on_event = hook

    # The records callers look at directly (the simulator finds an endpoint's account; the flash-sale
    # bench reads the last event and a session's items). Read without the lock, as a dict's membership
    # test and a list's last item are single steps; never for changing them.

    @property
    def sessions(self) -> dict[str, SessionRecord]:
        """Checkout Sessions by id, oldest first."""
        return self._sessions.sessions

    @property
    def events(self) -> list[dict[str, Any]]:
        """Events, oldest first."""
        return self._events.events

    @property
    def destinations(self) -> dict[str, DestinationRecord]:
        """Event destinations (v2) by id, oldest first."""
        return self._destinations.destinations

    @property
    def endpoints(self) -> dict[str, EndpointRecord]:
        """Webhook endpoints by id, oldest first."""
        return self._endpoints.endpoints
