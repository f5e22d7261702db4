"""The ``crossfill`` command: run the service locally, and operate it."""
from __future__ import annotations

import dataclasses
import importlib
import json
import logging
import os
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from fulfillment.errors import ConfigError
from fulfillment.settings import Settings, load_settings, redact
from worker.local import child_env

F = TypeVar("F", bound=Callable[..., Any])
GUNICORN_APP = "webhooks:create_app()"
GUNICORN_CONFIG = "python:webhooks.gunicorn_conf"
WORKER_QUEUES = "events,fulfillment"


def _fail_config(error: ConfigError) -> None:
    click.echo(f"crossfill: {error}", err=True)
    sys.exit(2)


def _settings() -> Settings:
    try:
        return load_settings()
    except ConfigError as error:
        _fail_config(error)
        raise  # unreachable; keeps type checkers content


def _setup_logging(level: str = "INFO") -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def gunicorn_argv(settings: Settings, bind_host: str = "127.0.0.1") -> list[str]:
    """The gunicorn command line serving the receiver for *settings*."""
    return [sys.executable, "-m", "gunicorn", "--config", GUNICORN_CONFIG,
            "--bind", f"{bind_host}:{settings.port}", "--workers", str(settings.web_workers), GUNICORN_APP]


def worker_argv(concurrency: int, pool: str = "threads", loglevel: str = "INFO") -> list[str]:
    """Celery worker arguments for crossfill's queues."""
    return ["worker", "--queues", WORKER_QUEUES, "--pool", pool, "--concurrency", str(concurrency),
            "--loglevel", loglevel, "--hostname", f"crossfill-{os.getpid()}@%h"]


class _LazyGroup(click.Group):
    """A group whose heavier commands (the simulator's) are imported only when invoked."""

    lazy: dict[str, str] = {
        "sim": "simulator.cli:sim",
        "trigger": "simulator.cli:trigger",
        "demo": "simulator.demo:demo",
    }

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy and cmd_name not in self.commands:
            module_name, attr = self.lazy[cmd_name].split(":")
            try:
                module = importlib.import_module(module_name)
            except ImportError:
                return None
            return getattr(module, attr, None)
        return super().get_command(ctx, cmd_name)


@click.group(cls=_LazyGroup)
def main() -> None:
    """crossfill: Stripe Checkout webhooks in, one reliable fulfillment per line item out."""


@main.command()
def redis() -> None:
    """Run the embedded Redis of the data dir in the foreground (Ctrl-C stops it)."""
    from worker.embedded import start_embedded
    from worker.processes import Supervisor

    _setup_logging()
    settings = _settings()
    url, proc = start_embedded(settings.data_dir)
    click.echo(f"Redis: {url}")
    if proc is None:
        click.echo("(already running for this data dir; nothing to do)")
        return
    supervisor = Supervisor({"redis": proc})
    sys.exit(supervisor.wait())


def _with_redis(settings: Settings) -> tuple[Settings, Any]:
    if settings.redis_url is not None:
        return settings, None
    from worker.embedded import start_embedded

    url, proc = start_embedded(settings.data_dir)
    return settings.with_redis(url), proc


@main.command()
def web() -> None:
    """Serve the webhook receiver with gunicorn on CROSSFILL_PORT."""
    from worker.processes import Supervisor

    _setup_logging()
    settings, redis_proc = _with_redis(_settings())
    settings = _secrets(settings, generate=False)
    supervisor = Supervisor()
    if redis_proc is not None:
        supervisor.children["redis"] = redis_proc
    env = child_env(settings)
    env["PROMETHEUS_MULTIPROC_DIR"] = str(_fresh_metrics_dir(settings))
    supervisor.start("web", gunicorn_argv(settings), env)
    sys.exit(supervisor.wait())


def _fresh_metrics_dir(settings: Settings) -> Path:
    path = (settings.data_dir / "metrics" / str(settings.port)).resolve()
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


@main.command()
@click.option("--concurrency", "-c", default=8, show_default=True, help="Tasks run at once (threads), in all.")
@click.option("--processes", "-p", default=1, show_default=True, type=click.IntRange(1, 64),
              help="Worker processes sharing the threads; one per core uses every core (BENCHMARKS.md).")
@click.option("--loglevel", "-l", default="INFO", show_default=True,
              type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False))
def worker(concurrency: int, processes: int, loglevel: str) -> None:
    """Run a Celery worker on the queues events and fulfillment."""
    from worker.app import make_celery
    from worker.processes import Supervisor, stop

    settings, redis_proc = _with_redis(_settings())
    try:
        if processes == 1:
            make_celery(settings).worker_main(worker_argv(concurrency, loglevel=loglevel.upper()))
            return
        # Python runs one thread at a time per process: split the threads over processes.
        _setup_logging()
        supervisor = Supervisor()
        env = child_env(settings)
        per_process = max(1, concurrency // processes)
        for number in range(processes):
            supervisor.start(f"worker-{number}", [sys.executable, "-m", "worker.cli", "worker", "--concurrency",
                                                  str(per_process), "--loglevel", loglevel], env)
        sys.exit(supervisor.wait())
    finally:
        if redis_proc is not None:
            stop(redis_proc)


@main.command()
@click.option("--concurrency", "-c", default=8, show_default=True, help="Worker tasks run at once (threads).")
@click.option("--sim-port", default=12111, show_default=True, help="Port of the simulator (without STRIPE_API_KEY).")
def run(concurrency: int, sim_port: int) -> None:
    """Run everything locally: embedded Redis (unless configured), the receiver, a worker, and the
    Stripe simulator when STRIPE_API_KEY is unset. Ctrl-C stops all of it."""
    from worker.local import secret_file, start_local
    from worker.processes import Supervisor

    _setup_logging()
    settings, redis_proc = _with_redis(_settings())
    generated = not settings.webhook_secrets
    settings = _secrets(settings, generate=True)
    supervisor = Supervisor()
    if redis_proc is not None:
        supervisor.children["redis"] = redis_proc
    try:
        stack = start_local(settings, concurrency=concurrency, sim_port=sim_port, supervisor=supervisor)
    except RuntimeError as error:
        supervisor.stop_all()
        click.echo(f"crossfill: {error}", err=True)
        sys.exit(1)
    shown = settings.webhook_secrets[0] if generated else redact(settings.webhook_secrets[0])
    click.echo(f"crossfill is running: {stack.receiver_url}")
    click.echo(f"  Redis:           {settings.resolved_redis_url}")
    click.echo(f"  webhook secret:  {shown}" + (f"  (kept in {secret_file(settings)})" if generated else ""))
    if stack.sim_url:
        click.echo(f"  Stripe simulator: {stack.sim_url}  (STRIPE_API_BASE; webhooks go to the receiver)")
        click.echo("  try: crossfill trigger checkout.session.completed --cross-sell")
    click.echo("  Ctrl-C stops everything.")
    sys.exit(supervisor.wait())


def _secrets(settings: Settings, *, generate: bool) -> Settings:
    from worker.local import resolve_secrets

    try:
        return resolve_secrets(settings, generate=generate)
    except ConfigError as error:
        _fail_config(error)
        raise


def _ops_app() -> Any:
    """A Celery app for ops commands: configured Redis, else the running embedded one (never started)."""
    from worker.app import make_celery

    settings = _settings()
    if settings.redis_url is None:
        port_file = settings.data_dir / "redis.port"
        if not port_file.exists():
            _fail_config(ConfigError("CROSSFILL_REDIS_URL", None,
                                     f"set it, or start `crossfill run` first (no embedded Redis in {settings.data_dir})"))
        settings = settings.with_redis(f"redis://127.0.0.1:{port_file.read_text().strip()}/0")
    return make_celery(settings)


def _echo_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, sort_keys=True, default=str))


def _when(stamp: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(stamp)) if stamp else "-"


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def status(as_json: bool) -> None:
    """Queues, dead letters, inbox and orders by status, live workers: the first screen for ops."""
    from worker import ops

    report = ops.status(_ops_app())
    if as_json:
        _echo_json(report)
        return
    click.echo("queues:       " + "  ".join(f"{name}={depth}" for name, depth in report["queues"].items()))
    click.echo(f"dead letters: {report['dead_letters']}")
    click.echo("inbox:        " + "  ".join(f"{k}={v}" for k, v in report["inbox"].items() if v))
    click.echo("orders:       " + "  ".join(f"{k}={v}" for k, v in report["orders"].items() if v))
    click.echo(f"workers:      {len(report['workers'])} alive " + " ".join(report["workers"]))


@main.command()
@click.argument("session_id")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def order(session_id: str, as_json: bool) -> None:
    """One order: its status and every line item (product, amount, cross-sell, status, attempts)."""
    record = _ops_app().runtime.ledger.order(session_id)
    if record is None:
        click.echo(f"crossfill: no order for {session_id!r} (is the session id right? has its event arrived?)",
                   err=True)
        sys.exit(1)
    if as_json:
        _echo_json(record)
        return
    click.echo(f"{session_id}  {record['status']}  {record.get('amount_total')} {record.get('currency') or ''}"
               f"  customer {record.get('customer') or '-'}")
    for item in record["items"]:
        flags = " ".join(filter(None, ["cross-sell" if item.get("cross_sell") else "",
                                       ",".join(item.get("anomalies") or [])]))
        click.echo(f"  {item['id']:<28} {item.get('product', ''):<24} x{item.get('quantity')} "
                   f"{item.get('amount_total')} {item['status']:<11} attempts={item['attempts']} "
                   f"handler={item.get('handler')} {flags}  finished {_when(item.get('finished_at'))}"
                   + (f"  error: {item['error']}" if item.get("error") and item["status"] != "done" else ""))


@main.group()
def dlq() -> None:
    """The dead-letter queue: tasks that failed for good, kept until replayed."""


@dlq.command("list")
@click.option("--json", "as_json", is_flag=True)
def dlq_list(as_json: bool) -> None:
    """List dead letters, oldest first."""
    letters = _ops_app().runtime.dead_letters.list()
    if as_json:
        _echo_json([dataclasses.asdict(letter) for letter in letters])
        return
    for letter in letters:
        click.echo(f"{letter.id}  {letter.reason}  attempts={letter.attempts}  {_when(letter.failed_at)}  "
                   f"{letter.error[:120]}")
    click.echo(f"{len(letters)} dead letter(s)")


@dlq.command("show")
@click.argument("letter_id")
def dlq_show(letter_id: str) -> None:
    """Show one dead letter in full."""
    letter = _ops_app().runtime.dead_letters.get(letter_id)
    if letter is None:
        click.echo(f"crossfill: no dead letter {letter_id!r}; `crossfill dlq list` shows them", err=True)
        sys.exit(1)
    _echo_json(dataclasses.asdict(letter))


@dlq.command("replay")
@click.argument("letter_id", required=False)
@click.option("--all", "replay_all", is_flag=True, help="Replay every dead letter.")
def dlq_replay(letter_id: str | None, replay_all: bool) -> None:
    """Run a dead-lettered task again (an item already fulfilled is not fulfilled twice)."""
    from worker import ops

    if bool(letter_id) == replay_all:
        raise click.UsageError("give a dead letter id, or --all")
    app = _ops_app()
    letters = app.runtime.dead_letters
    targets = letters.list() if replay_all else [letters.get(str(letter_id))]
    if targets == [None]:
        click.echo(f"crossfill: no dead letter {letter_id!r}; `crossfill dlq list` shows them", err=True)
        sys.exit(1)
    for letter in targets:
        assert letter is not None
        click.echo(f"{letter.id}: {ops.replay_dead_letter(app, letter)}")


@main.command("replay-event")
@click.argument("event_id")
def replay_event(event_id: str) -> None:
    """Process a received event again, from the inbox."""
    from worker import ops

    if not ops.replay_event(_ops_app(), event_id):
        click.echo(f"crossfill: event {event_id!r} is not in the inbox", err=True)
        sys.exit(1)
    click.echo(f"{event_id}: enqueued again")


if __name__ == "__main__":
    main()
