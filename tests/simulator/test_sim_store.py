"""The store's locking discipline: one lock per account, held for a whole call, the event hook included."""
from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from simulator import SimConfig
from simulator.resources import EndpointRecord
from simulator.store import Store


def test_a_call_waits_while_another_is_handing_an_event_to_the_hook() -> None:
    # Given a store whose event hook blocks until released
    hook_entered, release = threading.Event(), threading.Event()

    def hook(event: dict[str, Any], targets: Sequence[EndpointRecord]) -> None:
        hook_entered.set()
        release.wait(5)

    store = Store(SimConfig(), on_event=hook)
    creator = threading.Thread(target=store.create_product, kwargs={"name": "Pro", "product_id": "prod_pro"})
    creator.start()
    assert hook_entered.wait(5)
    # When another thread reads the account meanwhile
    read: list[dict[str, Any]] = []
    reader = threading.Thread(target=lambda: read.append(store.get_product("prod_pro")))
    reader.start()
    reader.join(0.2)
    # Then it waits for the call that emits, and reads what that call left
    assert reader.is_alive() and read == []
    release.set()
    creator.join(5)
    reader.join(5)
    assert read[0]["id"] == "prod_pro" and [e["type"] for e in store.events] == ["product.created"]


def test_a_connected_store_routes_its_events_to_the_platforms_connect_endpoints() -> None:
    # Given a platform with a Connect endpoint and a plain one, and a connected account's store
    platform = Store(SimConfig())
    connect = platform.create_endpoint(url="https://a.example/hook", enabled_events=["*"], connect=True)
    platform.create_endpoint(url="https://b.example/hook", enabled_events=["*"])
    sent: list[tuple[str, list[str]]] = []
    shop = Store(SimConfig(), account="acct_1Shop", platform=platform,
                 on_event=lambda event, targets: sent.append((event["account"], [t.id for t in targets])))
    # When the connected account creates a product
    shop.create_product(name="Pro")
    # Then its event goes to the platform's Connect endpoint only
    assert sent == [("acct_1Shop", [connect["id"]])]
