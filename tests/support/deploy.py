"""Reading deploy files as their tools do: Compose's variable interpolation, and sh's word splitting."""
from __future__ import annotations

import os
import re
import subprocess

COMPOSE_VARIABLE = re.compile(r"\$\{(?P<name>\w+)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}|\$(?P<bare>\w+)")


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's variable interpolation over *value* with *env* as the shell's environment."""

    def replace(match: re.Match[str]) -> str:
        name = match["name"] or match["bare"]
        op, arg = match["op"], match["arg"] or ""
        present = name in env and (env[name] != "" or not (op or "").startswith(":"))
        if present:
            return env[name]
        if op in (":-", "-"):
            return arg
        if op in (":?", "?"):
            raise KeyError(f"{name}: {arg}")
        return ""

    return COMPOSE_VARIABLE.sub(replace, value.replace("$$", "\0")).replace("\0", "$")


def sh_argv(line: str, env: dict[str, str]) -> list[str]:
    """The argv ``sh -c line`` would run, expanded by sh itself."""
    script = f'set -- {line}; printf "%s\\0" "$@"'
    clean = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env}
    result = subprocess.run(["sh", "-c", script], env=clean, capture_output=True, check=True, timeout=10)
    return result.stdout.decode().split("\0")[:-1]
