"""``crossfill console | report``: the ops console (its own gunicorn) and the cross-sell report."""
from __future__ import annotations

import csv
import sys
import time
from typing import Any

import click

from console.settings import ConsoleSettings, load_console_settings, resolve_local_token, resolve_secret
from crossfill.cli.common import echo_json, fail_config, ops_runtime, settings_or_exit, setup_logging, with_redis
from fulfillment.errors import ConfigError
from fulfillment.report import DEFAULT_DAYS
from fulfillment.settings import Settings

CONSOLE_APP = "console:create_console_app()"


def console_argv(console: ConsoleSettings) -> list[str]:
    """The gunicorn command line serving the console (never the receiver's app or port)."""
    return [sys.executable, "-m", "gunicorn", "--bind", f"{console.bind}:{console.port}", "--workers",
            str(console.workers), "--no-control-socket", "--access-logfile", "-", CONSOLE_APP]


def console_url(console: ConsoleSettings) -> str:
    host = "127.0.0.1" if console.bind in ("0.0.0.0", "::") else console.bind  # noqa: S104 - shown, not bound
    return f"http://{host}:{console.port}/"


def prepare(settings: Settings) -> tuple[ConsoleSettings, dict[str, str], str | None]:
    """The console's settings (exit 2 when unusable), the environment its gunicorn needs, and the local
    operator token when one was generated (no tokens configured, loopback bind)."""
    from crossfill.local import child_env

    try:
        console = resolve_secret(load_console_settings(), settings.data_dir)
    except ConfigError as error:
        fail_config(error)
    console, local_token = resolve_local_token(console, settings.data_dir)
    env = child_env(settings)
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env["CROSSFILL_CONSOLE_SECRET"] = console.secret_key or ""
    env["CROSSFILL_CONSOLE_TOKENS"] = ",".join(t.entry() for t in console.tokens)
    return console, env, local_token


def start_console(settings: Settings, supervisor: Any) -> tuple[str, str | None]:
    """Start the console beside a local stack (``crossfill run``); its URL and the local token."""
    from crossfill.local import wait_listening

    try:
        console, env, local_token = prepare(settings)
    except SystemExit:
        supervisor.stop_all()
        raise
    supervisor.start("console", console_argv(console), env)
    wait_listening(console.port, supervisor, "the console")
    return console_url(console), local_token


@click.command()
def console() -> None:
    """Serve the ops console and its API (/api/v1) with gunicorn on CROSSFILL_CONSOLE_PORT (8001)."""
    from crossfill.supervisor import Supervisor

    setup_logging()
    settings, redis_proc = with_redis(settings_or_exit())
    console_settings, env, local_token = prepare(settings)
    supervisor = Supervisor()
    if redis_proc is not None:
        supervisor.adopt("redis", redis_proc)
    click.echo(f"crossfill console: {console_url(console_settings)}")
    if local_token:
        click.echo(f"  local operator token: {local_token}  (kept in {settings.data_dir / 'console_token'}; "
                   "set CROSSFILL_CONSOLE_TOKENS to use your own)")
    supervisor.start("console", console_argv(console_settings), env)
    sys.exit(supervisor.wait())


@click.command("end-sessions")
@click.argument("name")
def end_sessions(name: str) -> None:
    """End every console session of the token named NAME (in CROSSFILL_CONSOLE_TOKENS): browsers signed
    in with it must sign in again. The token itself stays valid; remove it from the setting to revoke it."""
    import getpass

    from console.audit import AuditLog, log_to_stderr
    from console.sessions import SessionStore

    log_to_stderr()
    runtime = ops_runtime()
    ended = SessionStore(runtime.redis).end_all(name)
    try:
        who = f"cli:{getpass.getuser()}"
    except (OSError, KeyError):  # no user name for this uid (a container)
        who = "cli"
    AuditLog(runtime.redis).record(who, "operator", "end-sessions", name, f"{ended} session(s) ended")
    click.echo(f"{name}: {ended} console session(s) ended")


@click.command()
@click.option("--since", default=f"{DEFAULT_DAYS}d", show_default=True,
              help="First day: 30d, 12h, 2026-11-01 or an ISO date-time (UTC).")
@click.option("--account", default=None, help="Only this connected account (acct_...); '_' is the platform's own.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--csv", "as_csv", is_flag=True, help="Print CSV, one row per product and currency.")
def report(since: str, account: str | None, as_json: bool, as_csv: bool) -> None:
    """The cross-sell report: per primary product with a cross-sell, paid orders, attach rate, cross-sell
    revenue and average order value with and without it; anomalies by kind."""
    from marshmallow import ValidationError

    from console.schemas import parse_moment
    from fulfillment.report import CrossSellReport, as_csv_rows, day_of, text_lines

    if as_json and as_csv:
        raise click.UsageError("choose one of --json and --csv")
    try:
        first = day_of(parse_moment(since))
    except ValidationError as error:
        raise click.BadParameter(" ".join(map(str, error.messages)), param_hint="--since") from None
    runtime = ops_runtime()
    rollups = CrossSellReport(runtime.redis, runtime.catalog)
    rollups.drain()
    today = day_of(time.time())
    if first > today:
        raise click.BadParameter("is in the future", param_hint="--since")
    result = rollups.report(since=first, until=today, account=account)
    if as_json:
        echo_json(result.as_dict())
        return
    if as_csv:
        csv.writer(sys.stdout, lineterminator="\n").writerows(as_csv_rows(result))
        return
    for line in text_lines(result):
        click.echo(line)
