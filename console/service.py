"""What the console's pages and API ask of crossfill: the ops service and the domain, one place.

Views stay thin: they parse, check the role, call one method here, and render or dump the result.
"""
from __future__ import annotations

import base64
import binascii
import functools
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import redis

from console.auth import AccountScope
from console.errors import BadRequest, Conflict, NotFound, Unavailable
from fulfillment.deadletters import DeadLetter
from fulfillment.errors import PermanentError, StoreUnavailable, TransientError
from fulfillment.liveness import alive_workers, last_reconcile
from fulfillment.pipeline import Decision
from fulfillment.records import Order
from messaging.dispatch import request_reconcile
from ops import service as ops
from ops.runtime import Runtime

SCAN_BATCH = 100  #: orders read per round while filtering a page
SCAN_LIMIT = 2000  #: orders examined for one page at most; the page then ends early with a cursor


@dataclass(frozen=True)
class OrderFilter:
    """What the orders list is narrowed to (every field optional)."""

    status: str | None = None
    since: float | None = None
    until: float | None = None
    product: str | None = None
    cross_sell: bool | None = None
    account: str | None = None

    def accepts(self, order: Order) -> bool:
        if self.status and order.status != self.status:
            return False
        if self.product and not any(item.product == self.product for item in order.items):
            return False
        if self.cross_sell is not None and any(item.cross_sell for item in order.items) != self.cross_sell:
            return False
        return not (self.account and (order.account or "") != self.account)


def encode_cursor(created_at: float, session_id: str) -> str:
    return base64.urlsafe_b64encode(json.dumps([created_at, session_id]).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[float, str]:
    """Raises BadRequest when *cursor* is not one this API handed out."""
    try:
        created_at, session_id = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        return float(created_at), str(session_id)
    except (ValueError, TypeError, binascii.Error):
        raise BadRequest("cursor is not one this API returned; start again without it",
                         fields={"cursor": ["invalid"]}) from None


def _no_order(session_id: str) -> NotFound:
    return NotFound(f"no order for {session_id!r}: its event has not arrived, or the id is wrong")


class ConsoleService:
    """The console's view of a running crossfill."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    @property
    def redis(self) -> redis.Redis:
        return self.runtime.redis

    def status(self) -> dict[str, Any]:
        """Queue depths, live workers (heartbeats), dead letters, inbox and orders by status, last reconcile."""
        client = self.redis
        report = ops.status(self.runtime, workers=alive_workers(client))
        report.pop("retries")
        return {**report, "reconcile_last_success": last_reconcile(client)}

    def orders(self, where: OrderFilter, scope: AccountScope, *, cursor: str | None = None,
               limit: int = 25) -> tuple[list[Order], str | None]:
        """A page of the orders in *scope*, newest first, and the cursor of the next page (None at the end)."""
        ledger = self.runtime.ledger
        position = decode_cursor(cursor) if cursor else None
        page: list[Order] = []
        examined = 0
        while examined < SCAN_LIMIT:
            rows = ledger.recent(before=position, since=where.since, until=where.until, limit=SCAN_BATCH)
            if not rows:
                return page, None
            for (session_id, created_at), order in zip(rows, ledger.orders([sid for sid, _ in rows]), strict=True):
                position = (created_at, session_id)
                examined += 1
                if order is not None and scope.holds(order.account) and where.accepts(order):
                    page.append(order)
                    if len(page) == limit:
                        more = bool(ledger.recent(before=position, since=where.since, until=where.until, limit=1))
                        return page, encode_cursor(*position) if more else None
            if len(rows) < SCAN_BATCH:
                return page, None
        # Many orders examined and the page is not full: hand back what was found, and where to go on.
        assert position is not None
        return page, encode_cursor(*position)

    def order(self, session_id: str, scope: AccountScope) -> Order:
        """One order, if its account is in *scope*; else NotFound, as for an order that does not exist
        (a merchant learns nothing of another account's orders)."""
        order = self.runtime.ledger.order(session_id)
        if order is None or not scope.holds(order.account):
            raise _no_order(session_id)
        return order

    def fulfil(self, session_id: str, scope: AccountScope, *, account: str | None = None) -> dict[str, Any]:
        """Fulfil a session through the webhook's own idempotent path; the order as it is now.

        The session is read as *account*, else as the account its order recorded. A merchant's session
        is only ever read as one of its own accounts: its recorded account when it holds it, else each
        of its accounts in turn until Stripe knows the session; an account outside *scope* is NotFound.
        """
        if scope.is_all:
            decision = self._read(lambda: ops.fulfill_session(self.runtime, session_id, account=account))
        else:
            decision = None
            for candidate in self._accounts_to_read(session_id, scope, account):
                decision = self._read(functools.partial(ops.fulfill_session_as, self.runtime, session_id, candidate))
                if decision is not None:
                    break
        if decision is None:
            raise NotFound(f"Stripe knows no session {session_id!r}")
        return {"session_id": session_id, "status": decision.order_status, "dispatched": len(decision.dispatch),
                "order": self.runtime.ledger.order(session_id)}

    def _accounts_to_read(self, session_id: str, scope: AccountScope,
                          account: str | None) -> tuple[str | None, ...]:
        order = self.runtime.ledger.order(session_id)
        if order is not None:
            recorded = order.account or None
            if not scope.holds(recorded) or (account is not None and account != recorded):
                raise _no_order(session_id)
            return (recorded,)
        if account is not None:
            if not scope.holds(account):
                raise NotFound(f"Stripe knows no session {session_id!r}")
            return (account,)
        return scope.readable_as()

    @staticmethod
    def _read(action: Callable[[], Decision]) -> Decision | None:
        """Run a fulfil that reads a session from Stripe; None when Stripe does not know the session."""
        try:
            return action()
        except PermanentError as error:
            if error.status == 404:
                return None
            raise BadRequest(f"Stripe refused to read the session: {error}") from None
        except TransientError as error:
            raise Unavailable(f"the Stripe API is unavailable ({error}); retry later",
                              headers={"Retry-After": "5"}) from None

    def dead_letters(self, limit: int = 1000) -> list[DeadLetter]:
        return self.runtime.dead_letters.list(limit)

    def dead_letter(self, letter_id: str) -> DeadLetter:
        letter = self.runtime.dead_letters.get(letter_id)
        if letter is None:
            raise NotFound(f"no dead letter {letter_id!r} (replayed already?)")
        return letter

    def replay(self, letter_id: str) -> str:
        return self._broker(lambda: ops.replay_dead_letter(self.runtime, self.dead_letter(letter_id)))

    def replay_all(self) -> list[tuple[str, str]]:
        return [(letter.id, self.replay(letter.id)) for letter in self.dead_letters()]

    def event(self, event_id: str) -> dict[str, Any]:
        event = self.runtime.inbox.get(event_id)
        if event is None:
            raise NotFound(f"event {event_id!r} is not in the inbox (never received, or expired)")
        view = asdict(event)
        # The body holds the buyer's details: it never leaves the inbox.
        body = view.pop("body")
        if event.account is None:  # recorded before the inbox kept the account: the body says
            try:
                parsed = json.loads(body) if body else {}
            except ValueError:
                parsed = {}
            view["account"] = parsed.get("account") if isinstance(parsed, dict) else None
        return view

    def replay_event(self, event_id: str) -> str:
        self.event(event_id)
        if self._broker(lambda: ops.replay_event(self.runtime, event_id)) == "ignored":
            raise Conflict(f"event {event_id!r} was recorded as ignored; crossfill never acts on it, so it is "
                           "not replayed")
        return "enqueued"

    def reconcile(self) -> str:
        """Queue a reconciliation run now; its task id."""
        return str(self._broker(lambda: request_reconcile(self.redis)))

    def _broker(self, action: Callable[[], Any]) -> Any:
        try:
            return action()
        except (redis.RedisError, OSError) as error:
            raise Unavailable(f"the broker is unreachable ({type(error).__name__}); retry later") from None
        except StoreUnavailable as error:
            raise Unavailable(str(error)) from None
