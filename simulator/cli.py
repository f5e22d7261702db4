"""``crossfill sim`` and ``crossfill trigger``: the simulator's commands (registered lazily in crossfill.cli)."""
from __future__ import annotations

import json
import logging
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

import click

from fulfillment.catalog import load_catalog
from fulfillment.errors import ConfigError
from fulfillment.events import COMPLETED
from simulator import defaults
from simulator.client import DEFAULT_API_KEY, SimClient
from simulator.config import SimConfig
from simulator.errors import SimulatorError
from simulator.faults import FaultPlan
from simulator.ratelimit import MODES
from simulator.resources import OUTCOMES
from simulator.scenario import EVENT_OUTCOMES, ensure_account, purchase
from simulator.server import SimServer
from simulator.simulation import ACCOUNT_ID

DEFAULT_API_BASE = f"http://{defaults.HOST}:{defaults.PORT}"


@click.command()
@click.option("--host", default=defaults.HOST, show_default=True, help="Interface to listen on.")
@click.option("--port", default=defaults.PORT, show_default=True, type=click.IntRange(0, 65535),
              help="Port to listen on (0 picks a free one).")
@click.option("--catalog", "catalog_path", type=click.Path(dir_okay=False, path_type=Path),
              envvar="CROSSFILL_CATALOG", show_envvar=True,
              help="Catalog TOML: the cross-sell relation and the account's default tax behavior.")
@click.option("--retry-base-ms", default=defaults.RETRY_BASE_MS, show_default=True, type=click.IntRange(1),
              help="First webhook retry delay, ms; doubles per attempt.")
@click.option("--retry-max-attempts", default=defaults.RETRY_MAX_ATTEMPTS, show_default=True, type=click.IntRange(1),
              help="Delivery attempts per event and endpoint.")
@click.option("--delivery-timeout-s", default=defaults.DELIVERY_TIMEOUT_S, show_default=True,
              type=click.FloatRange(0.01), help="Seconds a webhook endpoint has to answer.")
@click.option("--delivery-workers", default=defaults.DELIVERY_WORKERS, show_default=True, type=click.IntRange(1),
              help="Webhooks delivered at once.")
@click.option("--rate-limits", default=defaults.RATE_LIMIT_MODE, show_default=True,
              type=click.Choice(sorted(MODES)),
              help=f"Enforce Stripe's rate limits per account: test {defaults.TEST_RATE_PER_S}/s or live "
                   f"{defaults.LIVE_RATE_PER_S}/s, and {defaults.ENDPOINT_RATE_PER_S}/s per endpoint; see /sim/stats.")
@click.option("--webhook-drop-rate", default=0.0, show_default=True, type=click.FloatRange(0.0, 1.0),
              help="Share of webhook deliveries silently lost (never retried); also POST /sim/faults.")
@click.option("--webhook-url", help="Register this webhook endpoint at start (all events).")
@click.option("--webhook-secret", help="Its signing secret (whsec_...); generated when omitted.")
@click.option("--webhook-connect", is_flag=True,
              help="Also register --webhook-url as a Connect endpoint (connected accounts' events), same secret.")
@click.option("--livemode", is_flag=True,
              help="Run the platform's account in live mode: livemode objects and events, sk_live_ keys.")
@click.option("--verbose", "-v", is_flag=True, help="Log every request.")
def sim(host: str, port: int, catalog_path: Path | None, retry_base_ms: int, retry_max_attempts: int,
        delivery_timeout_s: float, delivery_workers: int, rate_limits: str, webhook_drop_rate: float,
        webhook_url: str | None, webhook_secret: str | None, webhook_connect: bool, livemode: bool,
        verbose: bool) -> None:
    """Run the Stripe simulator: /v1 (Stripe's API) and /sim (Dashboard, buyer, faults)."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if webhook_secret is not None and not webhook_secret.startswith("whsec_"):
        click.echo("crossfill sim: --webhook-secret must start with whsec_ (Stripe's form)", err=True)
        sys.exit(2)
    if webhook_connect and not webhook_url:
        click.echo("crossfill sim: --webhook-connect needs --webhook-url", err=True)
        sys.exit(2)
    try:
        catalog = load_catalog(catalog_path)
    except ConfigError as error:
        click.echo(f"crossfill sim: {error}", err=True)
        sys.exit(2)
    config = SimConfig(catalog=catalog, retry_base_ms=retry_base_ms, retry_max_attempts=retry_max_attempts,
                       delivery_timeout_s=delivery_timeout_s, delivery_workers=delivery_workers,
                       rate_limits=MODES[rate_limits], livemode=livemode)
    try:
        server = SimServer(config, host=host, port=port, quiet=not verbose)
    except OSError as error:
        click.echo(f"crossfill sim: cannot listen on {host}:{port} ({error.strerror}); pick another --port", err=True)
        sys.exit(2)
    if webhook_drop_rate:
        server.simulator.faults.set_plan(FaultPlan(webhook_drop_rate=webhook_drop_rate))
    if webhook_url:
        endpoint = server.simulator.store.create_endpoint(url=webhook_url, enabled_events=["*"], secret=webhook_secret)
        click.echo(f"webhook endpoint {endpoint['id']} -> {webhook_url} (secret {endpoint['secret']})")
        if webhook_connect:
            connect = server.simulator.store.create_endpoint(url=webhook_url, enabled_events=["*"],
                                                             secret=endpoint["secret"], connect=True)
            click.echo(f"Connect webhook endpoint {connect['id']} -> {webhook_url} (same secret)")
    stopping = threading.Event()

    def stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    server.start()
    key = "sk_live_" if livemode else "sk_test_"
    click.echo(f"Stripe simulator listening on {server.url}  (stripe.api_base = {server.url!r}, any {key} key)")
    try:
        while not stopping.wait(1.0):
            pass
    finally:
        server.stop()


@click.command()
@click.argument("event", type=click.Choice(sorted(EVENT_OUTCOMES)), default=COMPLETED)
@click.option("--cross-sell", is_flag=True, help="The buyer adds the offered cross-sell.")
@click.option("--remove-cross-sell", is_flag=True,
              help="The buyer adds the cross-sell and removes it (with --cross-sell: adds it back).")
@click.option("--items", default=1, show_default=True, type=click.IntRange(1, defaults.MAX_LINE_ITEMS),
              help="Line items in the session (the Pro product, then extras).")
@click.option("--outcome", type=click.Choice(OUTCOMES),
              help="How the payment ends (default: what EVENT needs; paid for completed).")
@click.option("--email", help="The buyer's email.")
@click.option("--account", help="Buy from this connected account (acct_...; connected first if new) with its own "
                                "catalog; its events carry account and go to connect=true endpoints.")
@click.option("--api-base", default=DEFAULT_API_BASE, show_default=True, envvar="STRIPE_API_BASE", show_envvar=True,
              help="The simulator's URL.")
@click.option("--api-key", default=DEFAULT_API_KEY, show_default=True,
              help="Any sk_test_ key (sk_live_ for a simulator started with --livemode).")
@click.option("--json", "as_json", is_flag=True, help="Print what the buyer did as JSON instead of the session id.")
def trigger(event: str, cross_sell: bool, remove_cross_sell: bool, items: int, outcome: str | None,
            email: str | None, account: str | None, api_base: str, api_key: str, as_json: bool) -> None:
    """Drive one buyer through Checkout on the simulator (like `stripe trigger`); prints the session id."""
    allowed = EVENT_OUTCOMES[event]
    if outcome is not None and outcome not in allowed:
        hint = "takes no --outcome" if allowed == ("expired",) else f"needs --outcome {' or '.join(allowed)}"
        raise click.BadParameter(f"{event} {hint}", param_hint="--outcome")
    chosen = outcome or allowed[0]
    if account is not None and not ACCOUNT_ID.match(account):
        raise click.BadParameter(f"{account!r} is not a connected account id (acct_ then letters or digits)",
                                 param_hint="--account")
    try:
        with SimClient(api_base, api_key) as platform, SimClient(api_base, api_key, account=account) as client:
            platform.get("/sim/health")
            if account is not None:
                ensure_account(platform, account)
            done = purchase(client, items=items, cross_sell=cross_sell, remove_cross_sell=remove_cross_sell,
                            outcome=chosen, email=email)
    except SimulatorError as error:
        click.echo(f"crossfill trigger: {error}", err=True)
        sys.exit(1)
    click.echo(json.dumps(done.to_json()) if as_json else done.session_id)
