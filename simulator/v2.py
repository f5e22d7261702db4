"""``/v2/core``: event destinations and (thin) events, with the v2 API's conventions.

v2 differs from ``/v1`` where a client can tell: POST bodies are JSON (not forms), timestamps are
RFC 3339 strings, lists are ``{"data", "next_page_url", "previous_page_url"}`` paged by an opaque
``page`` token that carries the filters, and errors have no ``param`` (``{"error": {"type", "code",
"message"}}``). Authentication, rate limits, faults and Idempotency-Key replays happen around every
request in :mod:`simulator.app`, as for ``/v1``. Array params in a query string are read in both
spellings SDKs send: ``types[0]=a`` (stripe-node) and ``types=a&types=a2``.
"""
from __future__ import annotations

import base64
import json
import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from urllib.parse import urlencode, urlsplit

from flask import Blueprint, Response, jsonify, request

from simulator.context import current_sim, current_store
from simulator.errors import ApiError, InvalidRequest
from simulator.forms import parse_query
from simulator.store.destinations import EVENTS_FROM, INCLUDES, PAYLOADS

v2 = Blueprint("v2", __name__, url_prefix="/v2/core")

DEFAULT_LIMIT, MAX_LIMIT = 20, 100  #: v2 list page sizes
MAX_TYPES = 20  #: ``types`` names at most this many events
_INDEXED = re.compile(r"^([a-z_]+)(?:\[(\d*)\])?$")
_RANGE = re.compile(r"^created\[(gt|gte|lt|lte)\]$")


@v2.errorhandler(ApiError)
def _v2_error(error: ApiError) -> Response:
    """v2's error shape: ``type``, ``code`` and ``message``, no ``param``."""
    body: dict[str, Any] = {"type": error.kind, "message": error.message}
    if error.code is not None:
        body["code"] = error.code
    response = jsonify({"error": body})
    response.status_code = error.status
    for name, value in error.headers().items():
        response.headers[name] = value
    return response


# -- reading requests --------------------------------------------------------------------------------

def _body(*allowed: str) -> dict[str, Any]:
    """The JSON body of a POST (an empty body is ``{}``); unknown top-level fields are refused."""
    raw = request.get_data(cache=True)
    if not raw.strip():
        body: Any = {}
    else:
        try:
            body = json.loads(raw)
        except ValueError:
            raise InvalidRequest("The request body must be JSON (v2 APIs take application/json, not forms)") from None
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object")
    for name in body:
        if name not in allowed:
            raise InvalidRequest(f"Received unknown parameter: {name}")
    return body


def _query(*allowed: str) -> dict[str, Any]:
    """The query string: plain values, ``name[i]``/``name[]``/repeated names as lists, ``created[op]``."""
    values: dict[str, Any] = {}
    for key, value in parse_query(request.query_string):
        ranged = _RANGE.match(key)
        if ranged and "created" in allowed:
            values.setdefault("created", {})[ranged.group(1)] = value
            continue
        match = _INDEXED.match(key)
        name = match.group(1) if match else key
        if name not in allowed:
            raise InvalidRequest(f"Received unknown parameter: {key}")
        if match and match.group(2) is not None or name in ("types", "include"):
            values.setdefault(name, []).append(value)
        else:
            values[name] = value
    return values


def _string(body: dict[str, Any], name: str, *, required: bool = False) -> str | None:
    value = body.get(name)
    if value is None:
        if required:
            raise InvalidRequest(f"Missing required param: {name}.", code="parameter_missing")
        return None
    if not isinstance(value, str) or not value:
        raise InvalidRequest(f"Invalid {name}: must be a non-empty string, got {value!r}"[:200])
    return value


def _strings(body: dict[str, Any], name: str, *, choices: Sequence[str] = ()) -> list[str] | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise InvalidRequest(f"Invalid {name}: must be an array of strings")
    for item in value:
        if choices and item not in choices:
            raise InvalidRequest(f"Invalid {name}: {item!r} is not one of {', '.join(choices)}")
    return list(value)


def _include(values: dict[str, Any]) -> list[str]:
    include = values.get("include") or []
    if not isinstance(include, list):
        raise InvalidRequest("Invalid include: must be an array of strings")
    for item in include:
        if item not in INCLUDES:
            raise InvalidRequest(f"Invalid include: {item!r} is not one of {', '.join(INCLUDES)}")
    return include


def _url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InvalidRequest(f"Invalid webhook_endpoint.url: {url!r}; use an http:// or https:// URL")
    return url


def _metadata(body: dict[str, Any]) -> dict[str, str] | None:
    value = body.get("metadata")
    if value is None:
        return None
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise InvalidRequest("Invalid metadata: must be an object of strings")
    return dict(value)


def _limit(values: dict[str, Any]) -> int:
    raw = values.get("limit", DEFAULT_LIMIT)
    try:
        limit = int(raw)
    except (TypeError, ValueError):
        raise InvalidRequest(f"Invalid limit: {raw!r} is not an integer") from None
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidRequest(f"Invalid limit: must be between 1 and {MAX_LIMIT}, got {limit}")
    return limit


def _instant(raw: Any, name: str) -> float:
    """A ``created[...]`` bound: RFC 3339 (v2's format), or unix seconds as some SDKs send."""
    text = str(raw)
    if re.fullmatch(r"\d{1,12}", text):
        return float(text)
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise InvalidRequest(f"Invalid {name}: {text!r} is not an RFC 3339 timestamp "
                             "(2026-12-04T10:00:00.000Z)") from None


# -- paging --------------------------------------------------------------------------------------------

def _paged(items: list[dict[str, Any]], path: str, query: dict[str, Any]) -> dict[str, Any]:
    """A v2 list page of *items* (already filtered, in list order), continuing after the page token's id."""
    after = query.pop("_after", None)
    limit = _limit(query)
    start = 0
    if after:
        start = next((i + 1 for i, item in enumerate(items) if item["id"] == after), len(items))
    data = items[start:start + limit]
    next_url = None
    if start + limit < len(items) and data:
        token = _token({**query, "limit": limit, "_after": data[-1]["id"]})
        next_url = f"{path}?{urlencode({'page': token})}"
    return {"data": data, "next_page_url": next_url, "previous_page_url": None}


def _token(state: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(state, sort_keys=True).encode()).decode().rstrip("=")


def _list_query(*allowed: str) -> dict[str, Any]:
    """The filters of a list request: from its ``page`` token when it has one (the token carries them;
    params sent again beside it are ignored, as an SDK turning pages repeats them), else its params."""
    values = _query("page", "limit", *allowed)
    page = values.get("page")
    if not page:
        return values
    token = str(page).split("?", 1)[0]  # an SDK may append its params to next_page_url with a second '?'
    try:
        state = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except ValueError:
        raise InvalidRequest(f"Invalid page: {token[:40]!r} is not a page token from next_page_url") from None
    if not isinstance(state, dict):
        raise InvalidRequest("Invalid page: not a page token from next_page_url")
    return state


# -- event destinations --------------------------------------------------------------------------------

_CREATE_FIELDS = ("name", "type", "event_payload", "enabled_events", "webhook_endpoint", "events_from",
                  "description", "metadata", "snapshot_api_version", "include", "amazon_eventbridge",
                  "azure_event_grid")


@v2.post("/event_destinations")
def create_destination() -> Any:
    body = _body(*_CREATE_FIELDS)
    name = _string(body, "name", required=True)
    kind = _string(body, "type", required=True)
    if kind != "webhook_endpoint":
        raise InvalidRequest(f"Invalid type: {kind!r}; the simulator delivers to webhook_endpoint destinations "
                             "only (amazon_eventbridge and azure_event_grid need a cloud account)")
    payload = _string(body, "event_payload", required=True)
    if payload not in PAYLOADS:
        raise InvalidRequest(f"Invalid event_payload: {payload!r} is not one of {', '.join(PAYLOADS)}")
    events = _strings(body, "enabled_events")
    if events is None:
        raise InvalidRequest("Missing required param: enabled_events.", code="parameter_missing")
    endpoint = body.get("webhook_endpoint")
    if not isinstance(endpoint, dict) or not isinstance(endpoint.get("url"), str):
        raise InvalidRequest("Missing required param: webhook_endpoint.url (a webhook_endpoint destination "
                             "needs the URL it posts to).", code="parameter_missing")
    assert name is not None and payload is not None
    return current_store().create_destination(
        name=name, url=_url(endpoint["url"]), event_payload=payload, enabled_events=events,
        events_from=_strings(body, "events_from", choices=EVENTS_FROM) or ["self"],
        description=_string(body, "description") or "", metadata=_metadata(body),
        snapshot_api_version=_string(body, "snapshot_api_version"), include=_include(body))


@v2.get("/event_destinations")
def list_destinations() -> Any:
    query = _list_query("include")
    include = _include(query)
    return _paged(current_store().list_destinations(include), "/v2/core/event_destinations", query)


@v2.get("/event_destinations/<destination_id>")
def get_destination(destination_id: str) -> Any:
    return current_store().get_destination(destination_id, _include(_query("include")))


@v2.post("/event_destinations/<destination_id>")
def update_destination(destination_id: str) -> Any:
    body = _body("name", "description", "enabled_events", "webhook_endpoint", "metadata", "include")
    endpoint = body.get("webhook_endpoint")
    url = None
    if endpoint is not None:
        if not isinstance(endpoint, dict) or not isinstance(endpoint.get("url"), str):
            raise InvalidRequest("Invalid webhook_endpoint: must be {\"url\": \"https://...\"}")
        url = _url(endpoint["url"])
    return current_store().update_destination(
        destination_id, name=_string(body, "name"), description=body.get("description"),
        enabled_events=_strings(body, "enabled_events"), url=url, metadata=_metadata(body),
        include=_include(body))


@v2.delete("/event_destinations/<destination_id>")
def delete_destination(destination_id: str) -> Any:
    _query()
    return current_store().delete_destination(destination_id)


@v2.post("/event_destinations/<destination_id>/disable")
def disable_destination(destination_id: str) -> Any:
    _body()
    return current_store().set_destination_status(destination_id, "disabled")


@v2.post("/event_destinations/<destination_id>/enable")
def enable_destination(destination_id: str) -> Any:
    _body()
    return current_store().set_destination_status(destination_id, "enabled")


@v2.post("/event_destinations/<destination_id>/ping")
def ping_destination(destination_id: str) -> Any:
    """Send a ``v2.core.event_destination.ping`` thin event to the destination; answers the event."""
    _body()
    event, record = current_store().ping_event(destination_id)
    current_sim().dispatcher.dispatch(event, [record])
    return event


# -- events -------------------------------------------------------------------------------------------

@v2.get("/events")
def list_events() -> Any:
    query = _list_query("types", "object_id", "created")
    types = query.get("types") or []
    if not isinstance(types, list) or len(types) > MAX_TYPES:
        raise InvalidRequest(f"Invalid types: at most {MAX_TYPES} event types")
    bounds = query.get("created") or {}
    if not isinstance(bounds, dict):
        raise InvalidRequest("Invalid created: use created[gt|gte|lt|lte]=<RFC 3339 timestamp>")
    created = tuple(_instant(bounds[op], f"created[{op}]") if op in bounds else None
                    for op in ("gt", "gte", "lt", "lte"))
    gt, gte, lt, lte = created
    events = current_store().list_thin_events(types=types, object_id=query.get("object_id"),
                                              created=(gt, gte, lt, lte))
    return _paged(events, "/v2/core/events", query)


@v2.get("/events/<event_id>")
def get_event(event_id: str) -> Any:
    _query()
    return current_store().get_thin_event(event_id)
