"""The account a store holds the objects of: who it is, its mode and clock, and its Dashboard settings.

Every resource store of one account reads this one object, so the account's id, mode and time are
said once. The Dashboard settings (the cross-sell relation and the default tax behavior) start from
the catalog file's tables for this account and change through ``/sim``; they affect sessions created
from then on. Like the resource stores, it assumes its :class:`~simulator.store.Store`'s lock is held.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from simulator.config import SimConfig


class Account:
    """One simulated Stripe account: the platform's (``id`` None) or a connected one (Connect)."""

    def __init__(self, config: SimConfig, *, account_id: str | None, livemode: bool | None,
                 clock: Callable[[], float]) -> None:
        self.config = config
        self.id = account_id  #: the connected account's id; None for the platform's own account
        #: the mode of every object and event of this account (a live platform's connected account
        #: may act in test mode; Stripe then sends its test events to the live Connect endpoints too)
        self.livemode = config.livemode if livemode is None else livemode
        self.clock = clock
        catalog = config.catalog.for_account(account_id)
        self.cross_sells: dict[str, str] = dict(catalog.cross_sells)  #: product id -> the product it offers
        self.default_tax_behavior = catalog.default_tax_behavior

    def now(self) -> int:
        """The account's clock in whole seconds, as Stripe's ``created`` fields are."""
        return int(self.clock())

    def set_default_tax_behavior(self, behavior: str) -> dict[str, Any]:
        """Set the default tax behavior (Tax Settings); used by sessions created from now on."""
        self.default_tax_behavior = behavior
        return self.settings_json()

    def settings_json(self) -> dict[str, Any]:
        """The Dashboard settings the simulator keeps (``/sim/account``)."""
        return {"object": "sim.account", "account": self.id,
                "default_tax_behavior": self.default_tax_behavior, "cross_sells": dict(self.cross_sells)}
