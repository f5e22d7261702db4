"""``crossfill status | order | dlq | replay-event``: what an operator asks of a running crossfill."""
from __future__ import annotations

import dataclasses
import sys
import time
from typing import Any

import click

from crossfill.cli.common import echo_json, ops_runtime, ops_settings


def _when(stamp: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(stamp)) if stamp else "-"


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def status(as_json: bool) -> None:
    """Queues, dead letters, inbox and orders by status, live workers: the first screen for ops."""
    from ops import service as ops
    from ops.runtime import Runtime
    from worker.app import make_celery

    settings = ops_settings()
    # Live workers are those that answer a ping now (heartbeats would still list one killed seconds ago).
    replies = make_celery(settings).control.ping(timeout=1.0) or []
    report = ops.status(Runtime(settings), workers=[name for reply in replies for name in reply])
    if as_json:
        echo_json(report)
        return
    click.echo("queues:       " + "  ".join(f"{name}={depth}" for name, depth in report["queues"].items()))
    click.echo(f"dead letters: {report['dead_letters']}")
    click.echo("inbox:        " + "  ".join(f"{k}={v}" for k, v in report["inbox"].items() if v))
    click.echo("orders:       " + "  ".join(f"{k}={v}" for k, v in report["orders"].items() if v))
    click.echo(f"workers:      {len(report['workers'])} alive " + " ".join(report["workers"]))
    click.echo("lateness:     " + late_line(report["lateness"]))
    retries = report.get("retries") or {}
    click.echo(f"retries:      {retries.get('waiting', 0)} waiting"
               + "".join(f"  {task}={count}" for task, count in sorted(retries.get("by_task", {}).items()))
               + ("  why: " + "  ".join(f"{reason}={count}" for reason, count in sorted(retries.get("by_reason", {}).items()))
                  if retries.get("by_reason") else ""))


def late_line(late: dict[str, Any]) -> str:
    """``lag p50 1.2 s p99 8.0 s (last hour, 420 items); oldest waiting: cs_... paid 12 s ago``."""
    def seconds(value: float | None) -> str:
        return "-" if value is None else f"{value:.1f} s"

    oldest = late.get("oldest_unfulfilled")
    waiting = ("none" if not oldest else
               f"{oldest['session_id']} paid {seconds(oldest['age_s'])} ago" + (" (LATE)" if oldest["late"] else ""))
    return (f"lag p50 {seconds(late.get('lag_p50_s'))} p99 {seconds(late.get('lag_p99_s'))} "
            f"(last hour, {late.get('items_done_last_hour', 0)} items); oldest waiting order: {waiting}")


@click.command()
@click.argument("session_id")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def order(session_id: str, as_json: bool) -> None:
    """One order: its status and every line item (product, amount, cross-sell, status, attempts)."""
    from messaging.contract import PROCESS_EVENT

    runtime = ops_runtime()
    found = runtime.ledger.order(session_id)
    if found is None:
        click.echo(f"crossfill: no order for {session_id!r} (is the session id right? has its event arrived?)",
                   err=True)
        sys.exit(1)
    # Tasks of this order waiting on a retry (the event's or an item's): why, and when they run next.
    waiting = [retry for retry in runtime.waiting_retries.list() if session_id in retry.args
               or (retry.task == PROCESS_EVENT and _event_of(runtime, retry.args, session_id))]
    if as_json:
        echo_json({**found.to_dict(), "retries": [dataclasses.asdict(retry) for retry in waiting]})
        return
    click.echo(f"{session_id}  {found.status}  {found.amount_total} {found.currency or ''}"
               f"  customer {found.customer or '-'}")
    for item in found.items:
        flags = " ".join(filter(None, ["cross-sell" if item.cross_sell else "", ",".join(item.anomalies)]))
        click.echo(f"  {item.id:<28} {item.product!s:<24} x{item.quantity} "
                   f"{item.amount_total} {item.status:<11} attempts={item.attempts} "
                   f"handler={item.handler} {flags}  finished {_when(item.finished_at)}"
                   + (f"  error: {item.error}" if item.error and item.status != "done" else ""))
    for retry in waiting:
        click.echo(f"  waiting on retry: {retry.id} attempt {retry.attempts}, next at {_when(retry.next_attempt_at)}: "
                   f"{retry.error[:160]}")


def _event_of(runtime: Any, args: list[str], session_id: str) -> bool:
    event = runtime.inbox.get(args[0]) if args else None
    return event is not None and event.session_id == session_id


@click.group()
def dlq() -> None:
    """The dead-letter queue: tasks that failed for good, kept until replayed."""


@dlq.command("list")
@click.option("--json", "as_json", is_flag=True)
def dlq_list(as_json: bool) -> None:
    """List dead letters, oldest first."""
    letters = ops_runtime().dead_letters.list()
    if as_json:
        echo_json([dataclasses.asdict(letter) for letter in letters])
        return
    for letter in letters:
        click.echo(f"{letter.id}  {letter.reason}  attempts={letter.attempts}  {_when(letter.failed_at)}  "
                   f"{letter.error[:120]}")
    click.echo(f"{len(letters)} dead letter(s)")


@dlq.command("show")
@click.argument("letter_id")
def dlq_show(letter_id: str) -> None:
    """Show one dead letter in full."""
    letter = ops_runtime().dead_letters.get(letter_id)
    if letter is None:
        click.echo(f"crossfill: no dead letter {letter_id!r}; `crossfill dlq list` shows them", err=True)
        sys.exit(1)
    echo_json(dataclasses.asdict(letter))


@dlq.command("replay")
@click.argument("letter_id", required=False)
@click.option("--all", "replay_all", is_flag=True, help="Replay every dead letter.")
def dlq_replay(letter_id: str | None, replay_all: bool) -> None:
    """Run a dead-lettered task again (an item already fulfilled is not fulfilled twice)."""
    from ops import service as ops

    if bool(letter_id) == replay_all:
        raise click.UsageError("give a dead letter id, or --all")
    runtime = ops_runtime()
    letters = runtime.dead_letters
    targets = letters.list() if replay_all else [letters.get(str(letter_id))]
    if targets == [None]:
        click.echo(f"crossfill: no dead letter {letter_id!r}; `crossfill dlq list` shows them", err=True)
        sys.exit(1)
    for letter in targets:
        assert letter is not None
        click.echo(f"{letter.id}: {ops.replay_dead_letter(runtime, letter)}")


@click.command("replay-event")
@click.argument("event_id")
def replay_event(event_id: str) -> None:
    """Process a received event again, from the inbox."""
    from ops import service as ops

    was = ops.replay_event(ops_runtime(), event_id)
    if was is None:
        click.echo(f"crossfill: event {event_id!r} is not in the inbox", err=True)
        sys.exit(1)
    if was == "ignored":
        click.echo(f"crossfill: event {event_id!r} was recorded as ignored (`crossfill` never acts on it); "
                   "not replayed", err=True)
        sys.exit(1)
    click.echo(f"{event_id}: enqueued again")
