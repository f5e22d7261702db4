"""The ``crossfill`` command: run the service locally, and operate it."""
from __future__ import annotations

import importlib
import logging
import os
import secrets
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from fulfillment.errors import ConfigError
from fulfillment.settings import Settings, load_settings

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


def _secret_file(settings: Settings) -> Path:
    return settings.data_dir / "webhook_secret"


def _resolve_secrets(settings: Settings, *, generate: bool) -> Settings:
    """Use STRIPE_WEBHOOK_SECRET, else the secret kept in the data dir (made by ``crossfill run``)."""
    if settings.webhook_secrets:
        return settings
    path = _secret_file(settings)
    if path.exists():
        return settings.with_secrets((path.read_text().strip(),))
    if not generate:
        _fail_config(ConfigError("STRIPE_WEBHOOK_SECRET", "", "set the endpoint's signing secret (whsec_...), "
                                 "or start with `crossfill run` to have one generated"))
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    secret = "whsec_" + secrets.token_urlsafe(24)
    path.write_text(secret + "\n")
    path.chmod(0o600)
    return settings.with_secrets((secret,))


def _child_env(settings: Settings) -> dict[str, str]:
    """The environment a child process gets: the parent's, with the resolved Redis and secrets."""
    env = dict(os.environ)
    env["CROSSFILL_REDIS_URL"] = settings.resolved_redis_url
    env["CROSSFILL_DATA_DIR"] = str(settings.data_dir)
    env["STRIPE_WEBHOOK_SECRET"] = ",".join(settings.webhook_secrets)
    return env


def gunicorn_argv(settings: Settings, bind_host: str = "127.0.0.1") -> list[str]:
    """The gunicorn command line serving the receiver for *settings*."""
    return [sys.executable, "-m", "gunicorn", "--config", GUNICORN_CONFIG,
            "--bind", f"{bind_host}:{settings.port}", "--workers", str(settings.web_workers), GUNICORN_APP]


def worker_argv(concurrency: int, pool: str = "threads") -> list[str]:
    """Celery worker arguments for crossfill's queues."""
    return ["worker", "--queues", WORKER_QUEUES, "--pool", pool, "--concurrency", str(concurrency),
            "--loglevel", "INFO", "--hostname", f"crossfill-{os.getpid()}@%h"]


class _LazyGroup(click.Group):
    """A group whose heavier commands (the simulator's) are imported only when invoked."""

    lazy: dict[str, str] = {
        "sim": "simulator.cli:sim",
        "trigger": "simulator.cli:trigger",
        "demo": "simulator.cli:demo",
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
    settings = _resolve_secrets(settings, generate=False)
    supervisor = Supervisor()
    if redis_proc is not None:
        supervisor.children["redis"] = redis_proc
    env = _child_env(settings)
    env["PROMETHEUS_MULTIPROC_DIR"] = str(_fresh_metrics_dir(settings))
    supervisor.start("web", gunicorn_argv(settings), env)
    sys.exit(supervisor.wait())


def _fresh_metrics_dir(settings: Settings) -> Path:
    path = (settings.data_dir / "metrics" / str(settings.port)).resolve()
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


@main.command()
@click.option("--concurrency", "-c", default=8, show_default=True, help="Tasks run at once (threads).")
def worker(concurrency: int) -> None:
    """Run a Celery worker on the queues events and fulfillment."""
    from worker.app import make_celery

    settings, redis_proc = _with_redis(_settings())
    try:
        make_celery(settings).worker_main(worker_argv(concurrency))
    finally:
        if redis_proc is not None:
            from worker.processes import stop

            stop(redis_proc)


@main.command()
@click.option("--concurrency", "-c", default=8, show_default=True, help="Worker tasks run at once (threads).")
def run(concurrency: int) -> None:
    """Run everything locally: embedded Redis (unless configured), the receiver and a worker."""
    from worker.processes import Supervisor

    _setup_logging()
    settings, redis_proc = _with_redis(_settings())
    settings = _resolve_secrets(settings, generate=True)
    supervisor = Supervisor()
    if redis_proc is not None:
        supervisor.children["redis"] = redis_proc
    env = _child_env(settings)
    crossfill = [sys.executable, "-m", "worker.cli"]
    supervisor.start("worker", [*crossfill, "worker", "--concurrency", str(concurrency)], env)
    supervisor.start("web", [*crossfill, "web"], env)
    click.echo(f"crossfill is running: http://127.0.0.1:{settings.port}/webhooks/stripe")
    click.echo(f"  Redis:          {settings.resolved_redis_url}")
    click.echo(f"  webhook secret: {settings.webhook_secrets[0]}  (kept in {_secret_file(settings)})")
    click.echo("  Ctrl-C stops everything.")
    sys.exit(supervisor.wait())


if __name__ == "__main__":
    main()
