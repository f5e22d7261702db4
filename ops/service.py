"""What ops engineers ask of a running crossfill: the state of queues and orders, replays, fulfil now.

The CLI and the console both call these with a :class:`~ops.runtime.Runtime`; every replay queues
through :mod:`messaging.dispatch`, atomically with its record, as the receiver does.
"""
from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from fulfillment import lateness
from fulfillment.deadletters import DeadLetter
from fulfillment.events import COMPLETED
from fulfillment.pipeline import Decision, decide
from fulfillment.store import reachable
from messaging import dispatch
from messaging.contract import FULFILL_ITEM, QUEUES, event_dead_letter_id
from ops.runtime import Runtime

#: :func:`replay_dead_letter`'s answers.
REPLAYED, ALREADY_DONE = "replayed", "already done; nothing to replay"
NOT_IN_INBOX = "its event is no longer in the inbox (expired); nothing replayed, letter kept"
IGNORED = "its event is recorded as ignored; not replayed, letter kept"


def status(runtime: Runtime, *, workers: Sequence[str]) -> dict[str, Any]:
    """Queue depths, dead letters, inbox and orders by status, waiting retries, lateness (lag p50/p99
    over the last hour, the oldest paid order not fulfilled) and *workers* (the names of the live
    workers, as the caller found them: a ping, or the heartbeats)."""
    client = runtime.redis
    with reachable():
        queues = {queue: int(client.llen(queue)) for queue in QUEUES}
    return {
        "queues": queues,
        "dead_letters": runtime.dead_letters.count(),
        "inbox": runtime.inbox.counts(),
        "orders": runtime.ledger.counts(),
        "retries": runtime.waiting_retries.summary(now=time.time(), stale_after_s=runtime.settings.retry.visibility_timeout),
        "workers": sorted(workers),
        "lateness": lateness.summary(client),
    }


def replay_dead_letter(runtime: Runtime, letter: DeadLetter) -> str:
    """Run a dead-lettered task again; an item already done is left alone. Returns what happened.

    Raises:
        StoreUnavailable: Redis is down; nothing was queued and the letter is kept.
    """
    if letter.task == FULFILL_ITEM:
        session_id, line_item_id = letter.args
        outcome = REPLAYED if dispatch.replay_item(runtime.ledger, session_id, line_item_id) else ALREADY_DONE
    else:
        (event_id,) = letter.args
        was = dispatch.replay_event(runtime.inbox, event_id)
        if was is None or was == "ignored":
            # Nothing was queued: the letter stays, and says why it was not replayed.
            return NOT_IN_INBOX if was is None else IGNORED
        outcome = REPLAYED
    runtime.dead_letters.remove(letter.id)
    return outcome


def replay_event(runtime: Runtime, event_id: str) -> str | None:
    """Process a received event again (e.g. after fixing the catalog).

    Returns the status it had; ``"ignored"`` when it was recorded as ignored (refused: nothing queued);
    None when it is not in the inbox.
    """
    was = dispatch.replay_event(runtime.inbox, event_id)
    if was is not None and was != "ignored":
        runtime.dead_letters.remove(event_dead_letter_id(event_id))
    return was


def fulfill_session(runtime: Runtime, session_id: str, *, account: str | None = None) -> Decision:
    """Fulfil a session as if its ``checkout.session.completed`` had arrived (the order API, a success
    page, reconciliation, the sweeper): read it fresh, gate on payment, record the order
    (``fulfillment.pipeline.decide``), then queue ``fulfill_item`` for the items still open under their
    deterministic task ids, so a webhook and this call racing end in one fulfilment per item.

    A connected account's session (Connect) is read as *account*, or as the account its order recorded.

    Raises:
        TransientError, PermanentError, StoreUnavailable: as ``decide`` does.
    """
    if account is None:
        account = runtime.ledger.order_summary(session_id).account
    return fulfill_session_as(runtime, session_id, account)


def fulfill_session_as(runtime: Runtime, session_id: str, account: str | None) -> Decision:
    """:func:`fulfill_session`, reading the session as exactly *account* (None: the platform itself)."""
    decision = decide(COMPLETED, session_id, runtime.stripe, runtime.ledger, runtime.catalog, account=account)
    dispatch.dispatch_items(runtime.redis, session_id, decision.dispatch)
    return decision
