"""The local loop: everything crossfill needs, started as child processes of one command.

With no ``STRIPE_API_KEY``, the Stripe simulator is started too (as a process: only its demo catalog's
path is imported), the receiver is registered as its webhook endpoint, and the worker reads sessions
from it. ``CROSSFILL_EVENT_PAYLOAD`` chooses what the simulator sends: ``snapshot`` (the default:
``/v1/webhook_endpoints``), ``thin`` (an event destination with thin payloads, ``/v2/core/
event_destinations``, whose signing secret is added to the receiver's) or ``both`` (a platform
migrating: each change arrives twice, and is fulfilled once).
"""
from __future__ import annotations

import os
import secrets
import socket
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import requests

from crossfill.errors import ChildExited, StartTimeout
from crossfill.supervisor import Supervisor
from fulfillment.credentials import kept_secret
from fulfillment.errors import ConfigError
from fulfillment.events import HANDLED_TYPES, THIN_HANDLED_TYPES
from fulfillment.settings import Settings

if TYPE_CHECKING:
    from webhooks.settings import ReceiverSettings  # the webhooks package loads Flask: not for `crossfill worker`

SIM_API_KEY = "sk_test_crossfill_local"  #: the key the worker uses against the local simulator
START_TIMEOUT_S = 30.0  #: wait for a child to listen, seconds
CROSSFILL = [sys.executable, "-m", "crossfill.cli"]  #: the ``crossfill`` command, as a child process
#: What the local simulator sends the receiver (CROSSFILL_EVENT_PAYLOAD).
SNAPSHOT, THIN, BOTH = "snapshot", "thin", "both"
EVENT_PAYLOADS = (SNAPSHOT, THIN, BOTH)


@dataclass
class LocalStack:
    """What :func:`start_local` started, and where it listens."""

    settings: Settings
    receiver: ReceiverSettings
    supervisor: Supervisor
    receiver_url: str
    sim_url: str | None = None
    #: The simulator's webhook endpoints (the platform's, then its Connect one) and thin destination
    #: registered for the receiver (none without the simulator).
    endpoint_ids: tuple[str, ...] = ()
    destination_id: str | None = None


def event_payload(environ: Mapping[str, str] | None = None) -> str:
    """CROSSFILL_EVENT_PAYLOAD: ``snapshot`` (default), ``thin`` or ``both``.

    Raises:
        ConfigError: for any other value.
    """
    env = os.environ if environ is None else environ
    value = env.get("CROSSFILL_EVENT_PAYLOAD", "").strip().lower() or SNAPSHOT
    if value not in EVENT_PAYLOADS:
        raise ConfigError("CROSSFILL_EVENT_PAYLOAD", value, f"use one of {', '.join(EVENT_PAYLOADS)}")
    return value


def secret_file(settings: Settings) -> Path:
    return settings.data_dir / "webhook_secret"


def resolve_secrets(settings: Settings, receiver: ReceiverSettings, *, generate: bool) -> ReceiverSettings:
    """Use STRIPE_WEBHOOK_SECRET, else the secret kept in the data dir, else (if allowed) a new one.

    Raises:
        ConfigError: when there is none and *generate* is false.
    """
    if receiver.webhook_secrets:
        return receiver
    path = secret_file(settings)
    if not generate and not path.exists():
        raise ConfigError("STRIPE_WEBHOOK_SECRET", "", "set the endpoint's signing secret (whsec_...), "
                          "or start with `crossfill run` to have one generated")
    return receiver.with_secrets((kept_secret(path, lambda: "whsec_" + secrets.token_urlsafe(24)),))


def child_env(settings: Settings, receiver: ReceiverSettings | None = None) -> dict[str, str]:
    """The environment of a child process: this one's, with every resolved setting spelled out
    (the receiver's too, when given)."""
    env = dict(os.environ)
    env.update({
        "CROSSFILL_REDIS_URL": settings.resolved_redis_url,
        "CROSSFILL_DATA_DIR": str(settings.data_dir),
        "STRIPE_API_BASE": settings.stripe.api_base,
    })
    if receiver is not None:
        env["CROSSFILL_PORT"] = str(receiver.port)
        env["STRIPE_WEBHOOK_SECRET"] = ",".join(receiver.webhook_secrets)
    if settings.stripe.api_key:
        env["STRIPE_API_KEY"] = settings.stripe.api_key
    if settings.catalog_path:
        env["CROSSFILL_CATALOG"] = str(settings.catalog_path)
    return env


def wait_listening(port: int, supervisor: Supervisor, what: str, timeout: float = START_TIMEOUT_S) -> None:
    """Wait until something listens on 127.0.0.1:*port*; fail early if a child died meanwhile."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            probe.settimeout(0.2)
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        dead = [name for name, proc in supervisor.children.items() if proc.poll() is not None]
        if dead:
            raise ChildExited(f"{dead[0]} exited while waiting for {what}")
        time.sleep(0.1)
    raise StartTimeout(f"{what} did not listen on port {port} within {timeout:g} s")


def start_local(settings: Settings, receiver: ReceiverSettings, *, concurrency: int, sim_port: int = 12111,
                supervisor: Supervisor | None = None, log_dir: Path | None = None,
                payload: str = SNAPSHOT) -> LocalStack:
    """Start the simulator (when no API key is set), a worker, beat and the receiver; return when they listen.

    *settings* must already name its Redis (the caller starts the embedded one) and secrets. With
    *log_dir*, each child logs to a file there instead of this terminal. *payload* (``snapshot``,
    ``thin`` or ``both``) is what the simulator is set up to send the receiver.
    """
    supervisor = supervisor or Supervisor()
    receiver_url = f"http://127.0.0.1:{receiver.port}/webhooks/stripe"
    sim_url, destination_id = None, None
    endpoint_ids: tuple[str, ...] = ()
    if not settings.stripe.api_key:
        from simulator.scenario import DEMO_CATALOG_PATH  # the simulator owns its demo catalog

        sim_url = f"http://127.0.0.1:{sim_port}"
        settings = replace(settings.with_stripe(api_key=SIM_API_KEY, api_base=sim_url),
                           catalog_path=settings.catalog_path or DEMO_CATALOG_PATH)
        supervisor.start("sim", [*CROSSFILL, "sim", "--port", str(sim_port), "--catalog",
                                 str(settings.catalog_path)], child_env(settings, receiver), log_dir)
        wait_listening(sim_port, supervisor, "the simulator")
        if payload in (SNAPSHOT, BOTH):
            endpoint_ids = register_endpoint(sim_url, receiver_url, receiver.webhook_secrets[0])
        if payload in (THIN, BOTH):
            destination_id, secret = register_destination(sim_url, receiver_url)
            # A destination's own signing secret: one more entry of STRIPE_WEBHOOK_SECRET.
            receiver = receiver.with_secrets((*receiver.webhook_secrets, secret))
    env = child_env(settings, receiver)
    supervisor.start("worker", [*CROSSFILL, "worker", "--concurrency", str(concurrency)], env, log_dir)
    # reconcile (CROSSFILL_RECONCILE_EVERY) and sweep (CROSSFILL_SWEEP_EVERY) on their schedule
    supervisor.start("beat", [*CROSSFILL, "beat"], env, log_dir)
    supervisor.start("web", [*CROSSFILL, "web"], env, log_dir)
    wait_listening(receiver.port, supervisor, "the receiver")
    return LocalStack(settings=settings, receiver=receiver, supervisor=supervisor, receiver_url=receiver_url,
                      sim_url=sim_url, endpoint_ids=endpoint_ids, destination_id=destination_id)


def register_endpoint(sim_url: str, receiver_url: str, secret: str) -> tuple[str, ...]:
    """Make the receiver the simulator's webhook endpoint — the platform's and its Connect endpoint
    (connected accounts' events, as a platform subscribes) — signing with the secret it already has.
    Returns their ids."""
    form = [("url", receiver_url), ("secret", secret)] + [("enabled_events[]", event) for event in HANDLED_TYPES]
    ids = []
    for connect in ("false", "true"):
        response = requests.post(f"{sim_url}/v1/webhook_endpoints", data=[*form, ("connect", connect)], timeout=10,
                                 headers={"Authorization": f"Bearer {SIM_API_KEY}"})
        response.raise_for_status()
        ids.append(str(response.json()["id"]))
    return tuple(ids)


def register_destination(sim_url: str, receiver_url: str) -> tuple[str, str]:
    """Make the receiver the simulator's thin event destination, for the platform's and its connected
    accounts' events (as on Stripe: ``POST /v2/core/event_destinations``). Returns its id and the
    signing secret Stripe chose for it."""
    response = requests.post(f"{sim_url}/v2/core/event_destinations", timeout=10, json={
        "name": "crossfill (local)", "type": "webhook_endpoint", "event_payload": "thin",
        "enabled_events": list(THIN_HANDLED_TYPES), "events_from": ["self", "other_accounts"],
        "webhook_endpoint": {"url": receiver_url}, "include": ["webhook_endpoint.signing_secret"],
    }, headers={"Authorization": f"Bearer {SIM_API_KEY}"})
    response.raise_for_status()
    body = response.json()
    return str(body["id"]), str(body["webhook_endpoint"]["signing_secret"])
