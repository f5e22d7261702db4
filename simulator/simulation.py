"""One running simulator: the platform's Stripe account and its connected accounts, webhook
delivery, faults, rate limits and idempotency keys."""
from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from simulator.config import SimConfig
from simulator.delivery import Dispatcher
from simulator.errors import AccountInvalid, InvalidRequest, ResourceExists, ResourceMissing
from simulator.faults import FaultInjector
from simulator.idempotency import IdempotencyCache
from simulator.paging import Page, list_object, page
from simulator.ratelimit import RateLimiter
from simulator.resources import AccountRecord, account_json, new_id
from simulator.store import Store

ACCOUNT_ID = re.compile(r"^acct_[A-Za-z0-9]{1,250}$")  #: a connected account id


class Simulator:
    """The platform's account (``store``), its connected accounts, and what serves them all."""

    def __init__(self, config: SimConfig | None = None, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config or SimConfig()
        self.rate_limiter = RateLimiter(self.config.rate_limits, clock=clock)
        self.store = Store(self.config)
        self.faults = FaultInjector()
        self.dispatcher = Dispatcher(self.config, self.endpoint_secrets, drops=self.faults.drops_delivery)
        self.store.set_event_hook(self.dispatcher.dispatch)
        self.idempotency = IdempotencyCache()
        self._lock = threading.Lock()
        self._accounts: dict[str, tuple[AccountRecord, Store]] = {}

    def close(self) -> None:
        """Stop webhook delivery (its threads); the objects stay readable."""
        self.dispatcher.stop()

    # -- accounts ------------------------------------------------------------------------------------

    def create_account(self, *, account_id: str | None = None, type: str = "standard", country: str = "US",
                       email: str | None = None, metadata: dict[str, str] | None = None,
                       livemode: bool | None = None) -> dict[str, Any]:
        """Connect a new account to the platform; *account_id* (sim-only) chooses its id, *livemode*
        (sim-only, the platform's by default) the mode its activity is in.

        Its Dashboard starts from the catalog's ``[accounts.<id>]`` tables, else the default ones.
        """
        if account_id is not None and not ACCOUNT_ID.match(account_id):
            raise InvalidRequest(f"Invalid sim[id]: {account_id!r}; an account id is acct_ and letters or digits",
                                 param="sim[id]")
        with self._lock:
            chosen = account_id or new_id("acct_", 16)
            if chosen in self._accounts:
                raise ResourceExists(f"Account already exists: {chosen!r}", param="sim[id]")
            mode = self.config.livemode if livemode is None else livemode
            record = AccountRecord(id=chosen, created=int(time.time()), type=type, country=country, email=email,
                                   metadata=dict(metadata or {}), livemode=mode)
            store = Store(self.config, account=chosen, platform=self.store, livemode=mode)
            store.set_event_hook(self.dispatcher.dispatch)
            self._accounts[chosen] = (record, store)
            return account_json(record)

    def get_account(self, account_id: str) -> dict[str, Any]:
        """A connected account by id."""
        with self._lock:
            found = self._accounts.get(account_id)
        if found is None:
            raise ResourceMissing(f"No such account: '{account_id}'", param="account")
        return account_json(found[0])

    def list_accounts(self, paging: Page, where: Callable[[dict[str, Any]], bool] | None = None) -> dict[str, Any]:
        """Connected accounts, newest first, those *where* holds (on the account's JSON) only."""
        with self._lock:
            records = [record for record, _ in reversed(list(self._accounts.values()))
                       if where is None or where(account_json(record))]
        data, more = page(records, lambda record: record.id, paging)
        return list_object([account_json(record) for record in data], more, "/v1/accounts")

    def store_for(self, account: str | None) -> Store:
        """The objects of *account* (a ``Stripe-Account`` header's value); the platform's for None.

        Raises:
            AccountInvalid: when no such account is connected to the platform.
        """
        if not account:
            return self.store
        with self._lock:
            found = self._accounts.get(account)
        if found is None:
            raise AccountInvalid(f"The provided key does not have access to account '{account}' (or that account "
                                 "does not exist). Create it first: POST /v1/accounts")
        return found[1]

    def stores(self) -> Iterator[Store]:
        """The platform's store, then every connected account's."""
        yield self.store
        with self._lock:
            connected = [store for _, store in self._accounts.values()]
        yield from connected

    def find(self, holds: Callable[[Store], bool]) -> Store:
        """The first store of which *holds* is true (ids are unique across accounts); else the
        platform's, whose lookup then answers Stripe's 404."""
        return next((store for store in self.stores() if holds(store)), self.store)

    def endpoint_secrets(self, endpoint_id: str) -> list[str] | None:
        """The secrets signing deliveries to *endpoint_id*, whichever account has it; None if gone."""
        for store in self.stores():
            if endpoint_id in store.endpoints:
                return store.endpoint_secrets(endpoint_id)
            if endpoint_id in store.destinations:
                return store.destination_secrets(endpoint_id)
        return None
