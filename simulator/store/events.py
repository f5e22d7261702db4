"""An account's events and webhook endpoints: the event log, and where each event is sent.

Events are created here, as Stripe creates them, and handed to the event hook (the webhook
dispatcher) together with the endpoints that want them; the hook only enqueues, and it runs under
the store's lock, so deliveries are queued in event order.

Connect routing is decided here too: a connected account's events carry ``account`` and go to its
own endpoints and to the platform's ``connect`` endpoints; the platform's go to its endpoints that
are not ``connect`` ones. Reading the platform's endpoints takes the platform's lock while the
connected account's is held, never the other way round.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from simulator.errors import found
from simulator.paging import ANY_TIME, Page, Range, list_object, page
from simulator.resources import EndpointRecord, endpoint_json, new_id
from simulator.store.account import Account
from simulator.store.destinations import DestinationRecord, EventDestinations

if TYPE_CHECKING:
    from simulator.store import Store

#: Where an event goes: a webhook endpoint (v1) or an event destination (v2).
Recipient = EndpointRecord | DestinationRecord
EventHook = Callable[[dict[str, Any], Sequence[Recipient]], object]


@dataclass(frozen=True)
class RequestInfo:
    """The API request that caused an event (``event.request``)."""

    id: str | None = None
    idempotency_key: str | None = None


AUTOMATIC = RequestInfo()  #: events Stripe creates on its own (Checkout completion, expiry)


class WebhookEndpoints:
    """An account's webhook endpoints, their signing secrets, and which of them want an event."""

    def __init__(self, account: Account, *, platform: Store | None) -> None:
        self._account = account
        self._platform = platform  #: the platform's store, for a connected account (Connect endpoints)
        self.endpoints: dict[str, EndpointRecord] = {}

    def create_endpoint(self, *, url: str, enabled_events: list[str], secret: str | None = None,
                        description: str | None = None, metadata: dict[str, str] | None = None,
                        api_version: str | None = None, connect: bool = False) -> dict[str, Any]:
        """Register a webhook endpoint; the answer carries its ``whsec_`` secret (only this once)."""
        endpoint = EndpointRecord(id=new_id("we_"), url=url, enabled_events=list(enabled_events),
                                  created=self._account.now(), secrets=[(secret or new_id("whsec_", 32), None)],
                                  description=description, metadata=dict(metadata or {}),
                                  api_version=api_version, connect=connect, livemode=self._account.livemode)
        self.endpoints[endpoint.id] = endpoint
        return endpoint_json(endpoint, with_secret=True)

    def _endpoint(self, endpoint_id: str) -> EndpointRecord:
        return found(self.endpoints, endpoint_id, "webhook endpoint")

    def get_endpoint(self, endpoint_id: str) -> dict[str, Any]:
        """A webhook endpoint by id (without its secret)."""
        return endpoint_json(self._endpoint(endpoint_id))

    def update_endpoint(self, endpoint_id: str, *, url: str | None = None, enabled_events: list[str] | None = None,
                        disabled: bool | None = None) -> dict[str, Any]:
        """Change an endpoint's url, events or status."""
        endpoint = self._endpoint(endpoint_id)
        if url is not None:
            endpoint.url = url
        if enabled_events:
            endpoint.enabled_events = list(enabled_events)
        if disabled is not None:
            endpoint.status = "disabled" if disabled else "enabled"
        return endpoint_json(endpoint)

    def delete_endpoint(self, endpoint_id: str) -> dict[str, Any]:
        """Delete an endpoint; pending retries to it stop."""
        self._endpoint(endpoint_id)
        del self.endpoints[endpoint_id]
        return {"id": endpoint_id, "object": "webhook_endpoint", "deleted": True}

    def list_endpoints(self, paging: Page) -> dict[str, Any]:
        """Endpoints, newest first."""
        endpoints = list(reversed(list(self.endpoints.values())))
        data, more = page(endpoints, lambda e: e.id, paging)
        return list_object([endpoint_json(e) for e in data], more, "/v1/webhook_endpoints")

    def roll_secret(self, endpoint_id: str, *, expires_in_s: float, secret: str | None = None) -> dict[str, Any]:
        """Add a new signing secret; the current ones keep signing for *expires_in_s* more seconds."""
        endpoint = self._endpoint(endpoint_id)
        now = self._account.clock()
        expiry = now + expires_in_s
        kept = [(old, expiry if until is None else min(until, expiry)) for old, until in endpoint.secrets
                if until is None or until > now]
        new = secret or new_id("whsec_", 32)
        endpoint.secrets = [(new, None), *kept]
        body = endpoint_json(endpoint)
        body["secret"] = new
        body["previous_secret_expires_at"] = int(expiry)
        return body

    def endpoint_secrets(self, endpoint_id: str) -> list[str] | None:
        """The secrets signing deliveries to *endpoint_id* now; None once it is deleted or disabled."""
        endpoint = self.endpoints.get(endpoint_id)
        if endpoint is None or endpoint.status != "enabled":
            return None
        return endpoint.active_secrets(self._account.clock())

    def targets(self, event_type: str) -> list[EndpointRecord]:
        """The endpoints an event of this account goes to: its own, and the platform's Connect ones."""
        own = [e for e in self.endpoints.values() if not e.connect and e.wants(event_type)]
        if self._platform is None:
            return own
        return own + self._platform.connect_endpoints(event_type)

    def connect_endpoints(self, event_type: str) -> list[EndpointRecord]:
        """This (platform) account's ``connect`` endpoints that want *event_type*."""
        return [e for e in self.endpoints.values() if e.connect and e.wants(event_type)]

    def endpoints_for(self, event: dict[str, Any], endpoint_id: str | None = None) -> list[EndpointRecord]:
        """The endpoints that receive *event* (only *endpoint_id* when given, the platform's included)."""
        if endpoint_id is None:
            return self.targets(event["type"])
        if endpoint_id in self.endpoints or self._platform is None:
            return [self._endpoint(endpoint_id)]
        return self._platform.endpoints_for(event, endpoint_id)


class Events:
    """An account's events, oldest first, and the hook that delivers each new one."""

    def __init__(self, account: Account, endpoints: WebhookEndpoints, *, on_event: EventHook | None,
                 destinations: EventDestinations | None = None) -> None:
        self._account = account
        self._endpoints = endpoints
        self._destinations = destinations  #: event destinations (v2): snapshot or thin payloads
        self.on_event = on_event  #: the webhook dispatcher's entry; None sends nothing
        self.events: list[dict[str, Any]] = []
        self._by_id: dict[str, dict[str, Any]] = {}

    def emit(self, event_type: str, obj: dict[str, Any], request: RequestInfo,
             previous_attributes: dict[str, Any] | None = None) -> dict[str, Any]:
        """Create an event about *obj* and hand it to the hook with the endpoints that want it; event
        destinations get it too (``snapshot``), or a thin event announcing it (``thin``)."""
        targets: list[Recipient] = list(self._endpoints.targets(event_type))
        destinations = self._destinations.targets(event_type) if self._destinations is not None else []
        thin = [d for d in destinations if d.event_payload == "thin"]
        targets += [d for d in destinations if d.event_payload != "thin"]
        data: dict[str, Any] = {"object": obj}
        if previous_attributes is not None:
            data["previous_attributes"] = previous_attributes
        event: dict[str, Any] = {
            "id": new_id("evt_"), "object": "event", "api_version": self._account.config.api_version,
            "created": self._account.now(), "data": data, "livemode": self._account.livemode,
            "pending_webhooks": len(targets),
            "request": {"id": request.id, "idempotency_key": request.idempotency_key}, "type": event_type,
        }
        if self._account.id is not None:
            event["account"] = self._account.id
        self.events.append(event)
        self._by_id[event["id"]] = event
        if self.on_event is not None:
            self.on_event(event, targets)
        if thin and self._destinations is not None:
            notification = self._destinations.thin_event_for(event)
            if self.on_event is not None:
                self.on_event(notification, thin)
        return event

    def has_event(self, event_id: str) -> bool:
        """Whether this account has the event *event_id*."""
        return event_id in self._by_id

    def get_event(self, event_id: str) -> dict[str, Any]:
        """An event by id."""
        return found(self._by_id, event_id, "event")

    def list_events(self, paging: Page, *, types: Sequence[str] = (), created: Range = ANY_TIME,
                    where: Callable[[dict[str, Any]], bool] | None = None) -> dict[str, Any]:
        """Events, newest first, of *types* (``*`` is a wildcard), *created* in range, and *where* holds."""
        pattern = re.compile("|".join(".*".join(map(re.escape, t.split("*"))) for t in types)) if types else None
        events = [e for e in reversed(self.events)
                  if (pattern is None or pattern.fullmatch(e["type"])) and created.holds(e["created"])
                  and (where is None or where(e))]
        data, more = page(events, lambda e: e["id"], paging)
        return list_object(data, more, "/v1/events")
