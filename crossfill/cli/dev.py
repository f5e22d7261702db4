"""``crossfill demo``: the local loop, checked. (``sim`` and ``trigger`` are :mod:`simulator.cli`'s.)"""
from __future__ import annotations

import sys
from pathlib import Path

import click

from crossfill.cli.common import settings_or_exit


@click.command()
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("var/demo"),
              show_default=True, help="Scratch data dir (emptied first).")
def demo(data_dir: Path) -> None:
    """Run scripted purchases through simulator → receiver → worker and check every outcome."""
    from crossfill.demo import run_demo

    sys.exit(0 if run_demo(settings_or_exit(), data_dir, click.echo) else 1)
