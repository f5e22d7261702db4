"""What reconciliation and the sweeper decide, as pure rules over plain data, and what they report.

Reconciliation compares Stripe's lists with crossfill's records: an event the inbox does not hold
is recorded and enqueued; a paid Checkout Session with no order (or an order still waiting for the
money) is fulfilled as if its event had arrived. The sweeper re-dispatches work whose message was
lost: events in flight, items nobody works on, orders waiting past a threshold.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from fulfillment.schemas import CheckoutSession

#: Order statuses that a paid session should not be in: none yet, or still waiting for the money.
_UNFULFILLED = (None, "awaiting_payment")
#: How many ids a report names (its counts are complete).
NAMED_IDS = 50


def session_needs_fulfillment(session: CheckoutSession, order_status: str | None) -> bool:
    """Whether a completed session must be fulfilled now: paid (or nothing to pay) and no order has
    started on it. Orders fulfilling, fulfilled or partially failed are the sweeper's and the
    dead-letter queue's; an unknown payment status is not paid (fail safe)."""
    return session.is_fulfillable and order_status in _UNFULFILLED


def unheld(wanted: Iterable[tuple[str, ...]], held: set[tuple[str, ...]]) -> list[tuple[str, ...]]:
    """The tasks (name and arguments) of *wanted* that no message in *held* carries, in order."""
    return [task for task in wanted if task not in held]


@dataclass
class ReconcileReport:
    """What one reconciliation run saw and did."""

    since: int  #: unix seconds: the start of the window
    dry_run: bool = False
    #: another run held the lock: this one did nothing
    skipped: bool = False
    events_seen: int = 0
    events_known: int = 0
    events_recovered: int = 0
    sessions_seen: int = 0  #: completed sessions listed
    sessions_known: int = 0  #: paid ones with an order under way (or not paid: nothing to do)
    sessions_recovered: int = 0
    still_failing: int = 0
    recovered: list[str] = field(default_factory=list)  #: event and session ids (the first NAMED_IDS)
    failing: list[str] = field(default_factory=list)  #: "id: reason" (the first NAMED_IDS)

    def note_recovered(self, object_id: str) -> None:
        if len(self.recovered) < NAMED_IDS:
            self.recovered.append(object_id)

    def note_failing(self, object_id: str, reason: str) -> None:
        self.still_failing += 1
        if len(self.failing) < NAMED_IDS:
            self.failing.append(f"{object_id}: {reason}")


@dataclass
class SweepReport:
    """What one sweep found stuck and sent again."""

    skipped: bool = False
    events_checked: int = 0
    events_requeued: int = 0
    orders_checked: int = 0
    items_redispatched: int = 0
    payments_checked: int = 0  #: orders awaiting payment whose session was read again
    orders_paid_late: int = 0  #: of those, sessions found paid (their event lost): now fulfilling
    still_failing: int = 0
    requeued: list[str] = field(default_factory=list)  #: event ids and fulfill task ids (the first NAMED_IDS)

    def note(self, object_id: str) -> None:
        if len(self.requeued) < NAMED_IDS:
            self.requeued.append(object_id)
