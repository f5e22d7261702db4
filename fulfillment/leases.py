"""Item leases kept alive while their handler runs, so a short lease bounds recovery, not the handler.

A worker claims an item for ``CROSSFILL_ITEM_LEASE`` seconds (``Ledger.claim_item``). A handler may
take longer than that (a slow fulfillment system, a third-party handler), so the lease cannot simply
outlast every handler: a dead worker's claim would then block its item for as long. Instead each
worker process renews the leases it holds every third of the lease, from one thread, in one Redis
call: a live run keeps its claim however long its handler takes, and a claim whose worker died (or
whose run ended without a word, Redis gone under it) is free again within one lease.
"""
from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from fulfillment.errors import StoreUnavailable
from fulfillment.ledger import Ledger

log = logging.getLogger(__name__)

Lease = tuple[str, str, str]  #: (session_id, line_item_id, token)


class LeaseKeeper:
    """Renews every lease this process holds, every ``lease_s / 3`` seconds, while it is held."""

    def __init__(self, ledger: Ledger, *, lease_s: float) -> None:
        self._ledger = ledger
        self._lease_s = lease_s
        self._held: set[Lease] = set()
        self._lock = threading.Lock()
        self._owner_pid: int | None = None  #: the process whose thread renews (a fork starts its own)

    @contextmanager
    def held(self, session_id: str, line_item_id: str, token: str) -> Iterator[None]:
        """Keep the lease of a claimed item renewed for the duration of the block."""
        lease = (session_id, line_item_id, token)
        with self._lock:
            self._held.add(lease)
            if self._owner_pid != os.getpid():
                self._owner_pid = os.getpid()
                threading.Thread(target=self._run, name="crossfill-lease-keeper", daemon=True).start()
        try:
            yield
        finally:
            with self._lock:
                self._held.discard(lease)

    def renew_now(self) -> int:
        """Renew every lease held now; returns how many were lost (logged)."""
        with self._lock:
            leases = sorted(self._held)
        if not leases:
            return 0
        renewed = self._ledger.renew_leases(leases, lease_s=self._lease_s)
        lost = [lease for lease, ok in zip(leases, renewed, strict=True) if not ok]
        for session_id, line_item_id, _ in lost:
            with self._lock:
                still_held = any(held[:2] == (session_id, line_item_id) for held in self._held)
            if still_held:
                log.warning("item %s:%s: its lease was lost while the handler ran (expired and retaken); the "
                            "handler's idempotency key covers a second call", session_id, line_item_id)
        return len(lost)

    def _run(self) -> None:
        wait = threading.Event()
        while not wait.wait(self._lease_s / 3):
            try:
                self.renew_now()
            except StoreUnavailable as error:
                log.warning("item leases not renewed (%s); retried in %.0f s", error, self._lease_s / 3)
            except Exception:  # noqa: BLE001 - the keeper must outlive any one failure
                log.exception("item leases not renewed")
