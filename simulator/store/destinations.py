"""An account's event destinations (``/v2/core/event_destinations``) and its thin events.

An event destination of ``type: webhook_endpoint`` receives either the v1 snapshot event itself
(``event_payload: snapshot``, as a ``/v1/webhook_endpoints`` endpoint does) or a *thin* notification
(``event_payload: thin``): ``{"object": "v2.core.event", "type": "v1.<snapshot type>", "created": RFC
3339, "livemode", "context"?, "related_object": {"id", "type", "url"}, "snapshot_event": "evt_..."}``,
signed with the destination's own secret (the same ``Stripe-Signature`` scheme). The receiver reads
the object (or ``GET /v2/core/events/{id}``) itself.

A thin event is created for a v1 event when some enabled thin destination wants its ``v1.`` type;
it is kept (``GET /v2/core/events``) even when its delivery is lost. ``events_from`` routes Connect:
``self`` (the default) receives this account's events, ``other_accounts`` (a platform's) its
connected accounts' events, which then carry ``context: acct_...``. Like the other resource
stores, everything here runs under the owning :class:`~simulator.store.Store`'s lock.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from simulator.errors import InvalidRequest, found
from simulator.resources import new_id
from simulator.store.account import Account

if TYPE_CHECKING:
    from simulator.store import Store

THIN_PREFIX = "v1."  #: a v1 event's type as a thin event names it: ``v1.checkout.session.completed``
PAYLOADS = ("snapshot", "thin")
EVENTS_FROM = ("self", "other_accounts")
#: What ``include[]`` may ask to show on a destination.
INCLUDES = ("webhook_endpoint.signing_secret", "webhook_endpoint.url")
#: Related object types of the v1 objects whose events the simulator creates, and their API paths.
_RELATED = {"checkout.session": ("checkout_session", "/v1/checkout/sessions/"),
            "product": ("product", "/v1/products/"), "price": ("price", "/v1/prices/")}
_V2_EVENT_TYPE = re.compile(r"^(\*|[a-z0-9_]+(\.[a-z0-9_]+)+)$")


def rfc3339(unix: float) -> str:
    """A v2 timestamp: RFC 3339 in UTC with milliseconds, as Stripe's v2 API writes ``created``."""
    return datetime.fromtimestamp(unix, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{int(unix * 1000) % 1000:03d}Z"


@dataclass
class DestinationRecord:
    """An event destination of type ``webhook_endpoint`` and its signing secret."""

    id: str
    name: str
    url: str
    event_payload: str
    enabled_events: list[str]
    events_from: list[str]
    created: float
    secret: str
    description: str = ""
    metadata: dict[str, str] = field(default_factory=dict)
    snapshot_api_version: str | None = None
    status: str = "enabled"
    updated: float = 0.0
    livemode: bool = False

    def wants(self, event_type: str, *, own: bool) -> bool:
        """Whether this destination receives an event of *event_type* (a v1 type) from its own account
        (*own*) or from a connected one."""
        if self.status != "enabled" or ("self" if own else "other_accounts") not in self.events_from:
            return False
        name = THIN_PREFIX + event_type if self.event_payload == "thin" else event_type
        return "*" in self.enabled_events or name in self.enabled_events

    def active_secrets(self, now: float) -> list[str]:
        """The secrets that sign deliveries at *now* (a destination has one)."""
        return [self.secret]

    def to_json(self, include: Sequence[str] = ()) -> dict[str, Any]:
        """The ``v2.core.event_destination`` object; the url and secret only when *include* asks."""
        endpoint: dict[str, Any] = {}
        if "webhook_endpoint.signing_secret" in include:
            endpoint["signing_secret"] = self.secret
        if "webhook_endpoint.url" in include:
            endpoint["url"] = self.url
        body: dict[str, Any] = {
            "id": self.id, "object": "v2.core.event_destination", "created": rfc3339(self.created),
            "description": self.description, "enabled_events": list(self.enabled_events),
            "event_payload": self.event_payload, "events_from": list(self.events_from), "livemode": self.livemode,
            "metadata": dict(self.metadata), "name": self.name, "status": self.status,
            "status_details": {"disabled": {"reason": "user"}} if self.status == "disabled" else None,
            "type": "webhook_endpoint", "updated": rfc3339(self.updated or self.created),
            "webhook_endpoint": endpoint,
        }
        if self.event_payload == "snapshot":
            body["snapshot_api_version"] = self.snapshot_api_version
        return body


class EventDestinations:
    """An account's event destinations and the thin events created for them."""

    def __init__(self, account: Account, *, platform: Store | None) -> None:
        self._account = account
        self._platform = platform  #: the platform's store, for a connected account (``other_accounts``)
        self.destinations: dict[str, DestinationRecord] = {}
        self.thin_events: list[dict[str, Any]] = []
        self._thin_by_id: dict[str, dict[str, Any]] = {}

    # -- destinations ----------------------------------------------------------------------------------

    def create_destination(self, *, name: str, url: str, event_payload: str, enabled_events: list[str],
                           events_from: list[str], description: str = "", metadata: dict[str, str] | None = None,
                           snapshot_api_version: str | None = None,
                           include: Sequence[str] = ()) -> dict[str, Any]:
        """Register a ``webhook_endpoint`` destination with a new ``whsec_`` secret."""
        _check_events(enabled_events, event_payload)
        now = self._account.clock()
        record = DestinationRecord(
            id=new_id("ed_test_" if not self._account.livemode else "ed_", 24), name=name, url=url,
            event_payload=event_payload, enabled_events=list(enabled_events), events_from=list(events_from),
            created=now, updated=now, secret=new_id("whsec_", 32), description=description,
            metadata=dict(metadata or {}),
            snapshot_api_version=(snapshot_api_version or self._account.config.api_version
                                  if event_payload == "snapshot" else None),
            livemode=self._account.livemode)
        self.destinations[record.id] = record
        return record.to_json(include)

    def _destination(self, destination_id: str) -> DestinationRecord:
        return found(self.destinations, destination_id, "event destination")

    def get_destination(self, destination_id: str, include: Sequence[str] = ()) -> dict[str, Any]:
        """A destination by id."""
        return self._destination(destination_id).to_json(include)

    def update_destination(self, destination_id: str, *, name: str | None = None, description: str | None = None,
                           enabled_events: list[str] | None = None, url: str | None = None,
                           metadata: dict[str, str] | None = None, include: Sequence[str] = ()) -> dict[str, Any]:
        """Change a destination's name, description, events, url or metadata."""
        record = self._destination(destination_id)
        if enabled_events is not None:
            _check_events(enabled_events, record.event_payload)
            record.enabled_events = list(enabled_events)
        if name is not None:
            record.name = name
        if description is not None:
            record.description = description
        if url is not None:
            record.url = url
        if metadata:
            record.metadata.update(metadata)
        record.updated = self._account.clock()
        return record.to_json(include)

    def set_status(self, destination_id: str, status: str) -> dict[str, Any]:
        """Enable or disable a destination (a disabled one gets no deliveries; pending retries stop)."""
        record = self._destination(destination_id)
        record.status, record.updated = status, self._account.clock()
        return record.to_json()

    def delete_destination(self, destination_id: str) -> dict[str, Any]:
        """Delete a destination; pending retries to it stop."""
        self._destination(destination_id)
        del self.destinations[destination_id]
        return {"id": destination_id, "object": "v2.core.event_destination", "deleted": True}

    def list_destinations(self, include: Sequence[str] = ()) -> list[dict[str, Any]]:
        """Destinations, newest first."""
        return [record.to_json(include) for record in reversed(list(self.destinations.values()))]

    def destination_secrets(self, destination_id: str) -> list[str] | None:
        """The secret signing deliveries to *destination_id* now; None once deleted or disabled."""
        record = self.destinations.get(destination_id)
        if record is None or record.status != "enabled":
            return None
        return record.active_secrets(self._account.clock())

    def ping_event(self, destination_id: str) -> tuple[dict[str, Any], DestinationRecord]:
        """A ``v2.core.event_destination.ping`` thin event about the destination, to send it now."""
        record = self._destination(destination_id)
        event = self._thin_event("v2.core.event_destination.ping", {
            "id": record.id, "type": "v2.core.event_destination",
            "url": f"/v2/core/event_destinations/{record.id}"}, snapshot_event=None, reason=None)
        return event, record

    # -- which destinations an event goes to ---------------------------------------------------------

    def targets(self, event_type: str) -> list[DestinationRecord]:
        """Destinations an event of this account goes to: its own (``self``), and the platform's
        ``other_accounts`` ones for a connected account."""
        own = [d for d in self.destinations.values() if d.wants(event_type, own=True)]
        if self._platform is None:
            return own
        return own + self._platform.connected_destinations(event_type)

    def connected_destinations(self, event_type: str) -> list[DestinationRecord]:
        """This (platform) account's destinations that receive connected accounts' events of *event_type*."""
        return [d for d in self.destinations.values() if d.wants(event_type, own=False)]

    # -- thin events ---------------------------------------------------------------------------------

    def thin_event_for(self, event: dict[str, Any]) -> dict[str, Any]:
        """Create and keep the thin event announcing the v1 *event*."""
        obj = event["data"]["object"]
        related_type, path = _RELATED.get(obj.get("object", ""), (obj.get("object", ""), "/v1/"))
        request = event.get("request") or {}
        reason = {"type": "request", "request": {"id": request["id"], "idempotency_key": request.get(
            "idempotency_key")}} if request.get("id") else None
        return self._thin_event(THIN_PREFIX + event["type"], {"id": obj["id"], "type": related_type,
                                                               "url": path + obj["id"]},
                                snapshot_event=event["id"], reason=reason)

    def _thin_event(self, event_type: str, related: dict[str, Any], *, snapshot_event: str | None,
                    reason: dict[str, Any] | None) -> dict[str, Any]:
        now = self._account.clock()
        event: dict[str, Any] = {"id": new_id("evt_test_" if not self._account.livemode else "evt_", 24),
                                 "object": "v2.core.event", "type": event_type, "created": rfc3339(now),
                                 "livemode": self._account.livemode}
        if self._account.id is not None:
            event["context"] = self._account.id
        event["related_object"] = related
        if reason is not None:
            event["reason"] = reason
        if snapshot_event is not None:
            event["snapshot_event"] = snapshot_event
        self.thin_events.append(event)
        self._thin_by_id[event["id"]] = (event | {"_created": now})
        return event

    def has_thin_event(self, event_id: str) -> bool:
        """Whether this account has the thin event *event_id*."""
        return event_id in self._thin_by_id

    def thin_targets(self, event_id: str, destination_id: str | None = None) -> list[DestinationRecord]:
        """The thin destinations that receive the thin event *event_id* now (only *destination_id*
        when given): a deliberate duplicate (``/sim/events/{id}/resend``)."""
        event = self.get_thin_event(event_id)
        if destination_id is not None:
            return [self._destination(destination_id)]
        v1_type = event["type"].removeprefix(THIN_PREFIX)
        return [d for d in self.targets(v1_type) if d.event_payload == "thin"]

    def get_thin_event(self, event_id: str) -> dict[str, Any]:
        """A thin event by id (``GET /v2/core/events/{id}``)."""
        event = found(self._thin_by_id, event_id, "event")
        return {k: v for k, v in event.items() if k != "_created"}

    def list_thin_events(self, *, types: Sequence[str] = (), object_id: str | None = None,
                         created: tuple[float | None, float | None, float | None, float | None] = (None,) * 4,
                         ) -> list[dict[str, Any]]:
        """Thin events, newest first, of *types*, about *object_id*, created within (gt, gte, lt, lte)."""
        gt, gte, lt, lte = created
        found = []
        for event in reversed(self.thin_events):
            stamp = self._thin_by_id[event["id"]]["_created"]
            if types and event["type"] not in types:
                continue
            if object_id and event.get("related_object", {}).get("id") != object_id:
                continue
            if ((gt is not None and not stamp > gt) or (gte is not None and not stamp >= gte)
                    or (lt is not None and not stamp < lt) or (lte is not None and not stamp <= lte)):
                continue
            found.append(event)
        return found


def _check_events(enabled_events: list[str], event_payload: str) -> None:
    """Thin destinations name v1 events as ``v1.<type>``; snapshot ones by their v1 type."""
    if not enabled_events:
        raise InvalidRequest("enabled_events must name at least one event type", param="enabled_events")
    for name in enabled_events:
        if not _V2_EVENT_TYPE.match(name):
            raise InvalidRequest(f"Invalid enabled_events: {name!r} is not an event type", param="enabled_events")
        if event_payload == "thin" and name != "*" and not name.startswith(("v1.", "v2.")):
            raise InvalidRequest(f"Invalid enabled_events: {name!r}; a thin destination names v1 events as "
                                 f"v1.<type> (v1.{name})", param="enabled_events")
        if event_payload == "snapshot" and name.startswith(("v1.", "v2.")):
            raise InvalidRequest(f"Invalid enabled_events: {name!r}; a snapshot destination names v1 events "
                                 "by their type (checkout.session.completed)", param="enabled_events")
