"""``crossfill web | worker | redis | run``: the service's processes, in the foreground."""
from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from crossfill.cli.common import (
    fail_config,
    receiver_or_exit,
    settings_or_exit,
    setup_logging,
    start_embedded,
    with_redis,
)
from crossfill.errors import SupervisorError
from crossfill.local import child_env
from fulfillment.credentials import redact, redact_url
from fulfillment.errors import ConfigError
from fulfillment.settings import Settings

if TYPE_CHECKING:
    from webhooks.settings import ReceiverSettings  # the webhooks package loads Flask: not for every command

GUNICORN_APP = "webhooks:create_app()"
GUNICORN_CONFIG = "python:webhooks.gunicorn_conf"
WORKER_QUEUES = "events,fulfillment"


def gunicorn_argv(receiver: ReceiverSettings, bind_host: str = "127.0.0.1") -> list[str]:
    """The gunicorn command line serving the receiver for *receiver*."""
    return [sys.executable, "-m", "gunicorn", "--config", GUNICORN_CONFIG,
            "--bind", f"{bind_host}:{receiver.port}", "--workers", str(receiver.web_workers), GUNICORN_APP]


def worker_argv(concurrency: int, pool: str = "threads", loglevel: str = "INFO") -> list[str]:
    """Celery worker arguments for crossfill's queues."""
    return ["worker", "--queues", WORKER_QUEUES, "--pool", pool, "--concurrency", str(concurrency),
            "--loglevel", loglevel, "--hostname", f"crossfill-{os.getpid()}@%h"]


@click.command()
def redis() -> None:
    """Run the embedded Redis of the data dir in the foreground (Ctrl-C stops it)."""
    from crossfill.embedded import PASSWORD_FILE
    from crossfill.supervisor import Supervisor

    setup_logging()
    settings = settings_or_exit()
    url, proc = start_embedded(settings.data_dir)
    click.echo(f"Redis: {redact_url(url)}  (password in {settings.data_dir / PASSWORD_FILE})")
    if proc is None:
        click.echo("(already running for this data dir; nothing to do)")
        return
    supervisor = Supervisor({"redis": proc})
    sys.exit(supervisor.wait())


@click.command()
def web() -> None:
    """Serve the webhook receiver with gunicorn on CROSSFILL_PORT."""
    from crossfill.supervisor import Supervisor

    setup_logging()
    settings, receiver = settings_or_exit(), receiver_or_exit()
    settings, redis_proc = with_redis(settings)
    receiver = _secrets(settings, receiver, generate=False)
    supervisor = Supervisor()
    if redis_proc is not None:
        supervisor.adopt("redis", redis_proc)
    env = child_env(settings, receiver)
    env["PROMETHEUS_MULTIPROC_DIR"] = str(_fresh_metrics_dir(settings, receiver))
    supervisor.start("web", gunicorn_argv(receiver), env)
    sys.exit(supervisor.wait())


def _fresh_metrics_dir(settings: Settings, receiver: ReceiverSettings) -> Path:
    path = (settings.data_dir / "metrics" / str(receiver.port)).resolve()
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


@click.command()
@click.option("--concurrency", "-c", default=8, show_default=True, help="Tasks run at once (threads), in all.")
@click.option("--processes", "-p", default=1, show_default=True, type=click.IntRange(1, 64),
              help="Worker processes sharing the threads; one per core uses every core (BENCHMARKS.md).")
@click.option("--loglevel", "-l", default="INFO", show_default=True,
              type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False))
def worker(concurrency: int, processes: int, loglevel: str) -> None:
    """Run a Celery worker on the queues events and fulfillment."""
    from crossfill.local import CROSSFILL
    from crossfill.supervisor import Supervisor, stop
    from worker.app import make_celery
    from worker.broker import run_worker

    settings, redis_proc = with_redis(settings_or_exit())
    try:
        if processes == 1:
            app = make_celery(settings)
            try:
                app.runtime.catalog  # noqa: B018 - a bad catalog stops the worker now, with exit code 2
            except ConfigError as error:
                fail_config(error)
            sys.exit(run_worker(app, worker_argv(concurrency, loglevel=loglevel.upper())))
        # Python runs one thread at a time per process: split the threads over processes.
        setup_logging()
        supervisor = Supervisor()
        if redis_proc is not None:
            supervisor.adopt("redis", redis_proc)
        env = child_env(settings)
        per_process = max(1, concurrency // processes)
        for number in range(processes):
            supervisor.start(f"worker-{number}", [*CROSSFILL, "worker", "--concurrency", str(per_process),
                                                  "--loglevel", loglevel], env)
        sys.exit(supervisor.wait())
    finally:
        if redis_proc is not None:
            stop(redis_proc)


@click.command()
@click.option("--concurrency", "-c", default=8, show_default=True, help="Worker tasks run at once (threads).")
@click.option("--sim-port", default=12111, show_default=True, help="Port of the simulator (without STRIPE_API_KEY).")
def run(concurrency: int, sim_port: int) -> None:
    """Run everything locally: embedded Redis (unless configured), the receiver, a worker, and the
    Stripe simulator when STRIPE_API_KEY is unset. Ctrl-C stops all of it."""
    from crossfill.local import event_payload, secret_file, start_local
    from crossfill.supervisor import Supervisor

    setup_logging()
    settings, receiver = settings_or_exit(), receiver_or_exit()
    try:
        payload = event_payload()  # CROSSFILL_EVENT_PAYLOAD: what the local simulator sends
    except ConfigError as error:
        fail_config(error)
    settings, redis_proc = with_redis(settings)
    generated = not receiver.webhook_secrets
    receiver = _secrets(settings, receiver, generate=True)
    supervisor = Supervisor()
    if redis_proc is not None:
        supervisor.adopt("redis", redis_proc)
    try:
        stack = start_local(settings, receiver, concurrency=concurrency, sim_port=sim_port, supervisor=supervisor,
                            payload=payload)
        from crossfill.cli.console import start_console

        console_url, console_token = start_console(stack.settings, supervisor)
    except SupervisorError as error:
        supervisor.stop_all()
        click.echo(f"crossfill: {error}", err=True)
        sys.exit(1)
    shown = receiver.webhook_secrets[0] if generated else redact(receiver.webhook_secrets[0])
    click.echo(f"crossfill is running: {stack.receiver_url}")
    click.echo(f"  Redis:           {redact_url(settings.resolved_redis_url)}")
    click.echo(f"  webhook secret:  {shown}" + (f"  (kept in {secret_file(settings)})" if generated else ""))
    if stack.sim_url:
        click.echo(f"  Stripe simulator: {stack.sim_url}  (STRIPE_API_BASE; {payload} events go to the receiver)")
        click.echo("  try: crossfill trigger checkout.session.completed --cross-sell")
    click.echo(f"  ops console:     {console_url}" + (f"  (operator token: {console_token})" if console_token else ""))
    click.echo(f"  metrics:         {metrics_url(receiver)}  (Prometheus; never on the receiver's port)")
    click.echo("  Ctrl-C stops everything.")
    sys.exit(supervisor.wait())


def metrics_url(receiver: ReceiverSettings) -> str:
    """Where Prometheus scrapes crossfill: the receiver's gunicorn master serves it, inside."""
    host = f"[{receiver.metrics_bind}]" if ":" in receiver.metrics_bind else receiver.metrics_bind
    return f"http://{host}:{receiver.metrics_port}/metrics"


def _secrets(settings: Settings, receiver: ReceiverSettings, *, generate: bool) -> ReceiverSettings:
    from crossfill.local import resolve_secrets

    try:
        return resolve_secrets(settings, receiver, generate=generate)
    except ConfigError as error:
        fail_config(error)
