"""One running simulator: its Stripe account state, webhook delivery, faults and idempotency keys."""
from __future__ import annotations

from simulator.config import SimConfig
from simulator.delivery import Dispatcher
from simulator.faults import FaultInjector
from simulator.idempotency import IdempotencyCache
from simulator.state import Store


class Simulator:
    """One simulated Stripe account: its objects, webhook delivery, faults and idempotency keys."""

    def __init__(self, config: SimConfig | None = None) -> None:
        self.config = config or SimConfig()
        self.store = Store(self.config)
        self.faults = FaultInjector()
        self.dispatcher = Dispatcher(self.config, self.store.endpoint_secrets, drops=self.faults.drops_delivery)
        self.store.set_event_hook(lambda event, endpoints: self.dispatcher.dispatch(event, endpoints))
        self.idempotency = IdempotencyCache()

    def close(self) -> None:
        """Stop webhook delivery (its threads); the objects stay readable."""
        self.dispatcher.stop()
