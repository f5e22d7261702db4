"""The ``crossfill`` command: one group, its commands registered per concern.

Each command lives in the module of its concern and is imported only when it runs (or when
``--help`` lists it), so ``crossfill --help`` stays fast:

- :mod:`crossfill.cli.service`: the processes of the service (``web``, ``worker``, ``redis``, ``run``);
- :mod:`crossfill.cli.ops`: what an operator asks of a running service (``status``, ``order``, ``dlq``,
  ``replay-event``);
- :mod:`crossfill.cli.console`: the ops console and the cross-sell report (``console``, ``report``,
  ``end-sessions``);
- :mod:`crossfill.cli.recovery`: reconciliation and its schedule (``reconcile``, ``beat``);
- :mod:`crossfill.cli.dev`: the local loop (``demo``; ``sim`` and ``trigger`` are the simulator's own).

A new command is a function in one of those modules (or a new one) and one line in :data:`COMMANDS`.
"""
from __future__ import annotations

import importlib
import os

import click

from crossfill.datadir import PRIVATE_UMASK

#: Every ``crossfill`` command: its name → ``"module:attribute"`` of its click command.
COMMANDS: dict[str, str] = {
    # service
    "web": "crossfill.cli.service:web",
    "worker": "crossfill.cli.service:worker",
    "redis": "crossfill.cli.service:redis",
    "run": "crossfill.cli.service:run",
    # ops
    "status": "crossfill.cli.ops:status",
    "order": "crossfill.cli.ops:order",
    "dlq": "crossfill.cli.ops:dlq",
    "replay-event": "crossfill.cli.ops:replay_event",
    # console
    "console": "crossfill.cli.console:console",
    "report": "crossfill.cli.console:report",
    "end-sessions": "crossfill.cli.console:end_sessions",
    # recovery
    "reconcile": "crossfill.cli.recovery:reconcile",
    "beat": "crossfill.cli.recovery:beat",
    # dev
    "demo": "crossfill.cli.dev:demo",
    "sim": "simulator.cli:sim",
    "trigger": "simulator.cli:trigger",
}

#: Packages whose commands are left out (not failed) when the package is not installed.
OPTIONAL_PACKAGES = ("simulator",)


class LazyGroup(click.Group):
    """A group that imports a command's module only when the command is asked for."""

    def __init__(self, *args: object, commands_by_path: dict[str, str], **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.paths = commands_by_path

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.paths})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.paths and cmd_name not in self.commands:
            module_name, attr = self.paths[cmd_name].split(":")
            try:
                module = importlib.import_module(module_name)
            except ModuleNotFoundError as error:
                if error.name in OPTIONAL_PACKAGES:
                    return None
                raise
            command = getattr(module, attr)
            if not isinstance(command, click.Command):
                raise TypeError(f"{self.paths[cmd_name]} is not a click command; fix COMMANDS in {__name__}")
            return command
        return super().get_command(ctx, cmd_name)


@click.group(cls=LazyGroup, commands_by_path=COMMANDS)
def main() -> None:
    """crossfill: Stripe Checkout webhooks in, one reliable fulfillment per line item out."""
    # What a command and the processes it starts write (the data dir: Redis's AOF, secrets, metrics)
    # is its owner's alone.
    os.umask(PRIVATE_UMASK)
