"""The ``crossfill`` command table, and the README's map of where to change what, stay true."""
from __future__ import annotations

import importlib
import re
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from crossfill.cli import COMMANDS, main

REPO = Path(__file__).resolve().parents[2]
#: ARCHITECTURE.md's stable command names: scripts and deployments depend on them.
STABLE_COMMANDS = {"run", "web", "worker", "redis", "sim", "trigger", "demo", "status", "order", "dlq", "replay-event"}


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_registered_command_is_a_click_command_of_that_name(name: str) -> None:
    module_name, attr = COMMANDS[name].split(":")

    command = getattr(importlib.import_module(module_name), attr)

    assert isinstance(command, click.Command)
    assert command.name == name, f"{COMMANDS[name]} is named {command.name!r}; register it as that"


def test_help_lists_exactly_the_registered_commands_and_the_stable_ones_are_there() -> None:
    result = CliRunner().invoke(main, ["--help"])

    assert result.exit_code == 0, result.output
    listed = set(re.findall(r"^  ([a-z-]+)\s", result.output.split("Commands:", 1)[1], re.M))
    assert listed == set(COMMANDS)
    assert STABLE_COMMANDS <= listed


def test_an_unknown_command_is_a_usage_error() -> None:
    result = CliRunner().invoke(main, ["no-such-command"])

    assert result.exit_code == 2
    assert "No such command 'no-such-command'" in result.output


def where_to_change_what() -> str:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    match = re.search(r"^## Where to change what\n(.*?)^## ", readme, re.M | re.S)
    assert match is not None, "README.md lost its 'Where to change what' section"
    return match[1]


def test_every_path_in_the_map_exists() -> None:
    paths = {path for path in re.findall(r"`([\w./<>-]+\.py)`", where_to_change_what()) if "<" not in path}

    assert len(paths) >= 15, sorted(paths)
    assert sorted(path for path in paths if not (REPO / path).is_file()) == []


def test_the_maps_example_registration_line_has_the_shape_of_commands() -> None:
    example = re.search(r'`("[\w-]+": "[\w.]+:\w+")`', where_to_change_what())

    assert example is not None
    name, target = (part.strip(' "') for part in example[1].split('": "'))
    assert re.fullmatch(r"crossfill\.cli\.\w+:\w+", target) and re.fullmatch(r"[a-z-]+", name)
    assert all(re.fullmatch(r"[\w.]+:\w+", path) for path in COMMANDS.values())
