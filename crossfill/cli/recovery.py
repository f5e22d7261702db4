"""``crossfill reconcile | beat``: recovering what webhooks never brought, on demand and on a schedule."""
from __future__ import annotations

import dataclasses
import sys
import time

import click

from crossfill.cli.common import echo_json, ops_runtime, settings_or_exit, setup_logging, with_redis
from fulfillment import defaults
from fulfillment.env import parse_duration
from fulfillment.errors import CrossfillError


def _since(raw: str | None, retention: float) -> float | None:
    if raw is None:
        return None
    limit = min(defaults.RECONCILE_WINDOW_MAX_S, retention)
    try:
        seconds = parse_duration(raw)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--since") from None
    if not 0 < seconds <= limit:
        raise click.BadParameter(f"use a duration up to {limit / 86_400:g} days (the Events API keeps 30 days; "
                                 f"records are kept CROSSFILL_RETENTION), got {raw!r}", param_hint="--since")
    return seconds


@click.command()
@click.option("--since", "since_raw", metavar="DURATION",
              help="How far back to look (600, 10m, 72h, 30d); default CROSSFILL_RECONCILE_WINDOW (72h).")
@click.option("--undelivered", is_flag=True, help="Only events Stripe has not delivered (delivery_success=false).")
@click.option("--dry-run", is_flag=True, help="Count what would be recovered; record and fulfil nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def reconcile(since_raw: str | None, undelivered: bool, dry_run: bool, as_json: bool) -> None:
    """Record the events webhooks never brought and fulfil paid sessions that have no order.

    Lists checkout.session.* events and completed Checkout Sessions from the Stripe API over the
    window; what crossfill lacks goes through the receiver's own path (events) or the webhook's
    idempotent fulfilment (sessions). Safe to run any time, twice, or while webhooks arrive.
    Exit 1 when something is still failing (or another run holds the lock).
    """
    from worker.reconcile import reconcile as run

    setup_logging("WARNING")
    runtime = ops_runtime()
    recovery = runtime.settings.recovery
    seconds = _since(since_raw, recovery.retention)
    now = time.time()
    try:
        report = run(runtime, since=None if seconds is None else now - seconds, undelivered=undelivered,
                     dry_run=dry_run, now=now)
    except CrossfillError as error:
        click.echo(f"crossfill: reconcile did not complete: {error}", err=True)
        sys.exit(1)
    if as_json:
        echo_json(dataclasses.asdict(report))
    elif report.skipped:
        click.echo("another reconcile run holds the lock (crossfill:lock:reconcile); nothing done")
    else:
        verb = "would recover" if dry_run else "recovered"
        click.echo(f"reconcile since {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(report.since))}"
                   + (" (dry run)" if dry_run else ""))
        click.echo(f"  events:    seen {report.events_seen}  already known {report.events_known}  "
                   f"{verb} {report.events_recovered}")
        click.echo(f"  sessions:  seen {report.sessions_seen}  already known {report.sessions_known}  "
                   f"{verb} {report.sessions_recovered}")
        click.echo(f"  still failing: {report.still_failing}")
        for line in report.failing:
            click.echo(f"    {line}")
    if report.skipped or report.still_failing:
        sys.exit(1)


@click.command()
@click.option("--loglevel", "-l", default="INFO", show_default=True,
              type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False))
def beat(loglevel: str) -> None:
    """Run Celery beat: reconcile every CROSSFILL_RECONCILE_EVERY, sweep every CROSSFILL_SWEEP_EVERY.

    Run exactly one (each run also takes a Redis lock, so a second beat does no harm but no good).
    Its schedule file is kept in the data dir.
    """
    from crossfill.supervisor import stop
    from worker.app import make_celery

    settings, redis_proc = with_redis(settings_or_exit())
    try:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        make_celery(settings).start(["beat", "--loglevel", loglevel.upper()])
    finally:
        if redis_proc is not None:
            stop(redis_proc)
