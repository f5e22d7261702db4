"""Child processes of the CLI: started together, stopped together, never left behind."""
from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1
STOP_TIMEOUT_S = 10.0  #: how long a child gets to stop after SIGTERM before SIGKILL, seconds


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    # Linux: the kernel sends SIGTERM to the child when its parent dies, even by kill -9,
    # so a crashed `crossfill run` leaves no orphans. Own session: a terminal's Ctrl-C reaches
    # only the parent, which then stops the children in order.
    os.setsid()
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


def spawn(argv: Sequence[str], *, env: Mapping[str, str] | None = None,
          stdout: int | None = None) -> subprocess.Popen[bytes]:
    """Start a child that dies with this process and ignores the terminal's Ctrl-C."""
    return subprocess.Popen(list(argv), env=dict(env) if env is not None else None,
                            preexec_fn=_die_with_parent, stdout=stdout,
                            stderr=subprocess.STDOUT if stdout is not None else None)


def stop(proc: subprocess.Popen[bytes], timeout: float = STOP_TIMEOUT_S) -> int | None:
    """SIGTERM *proc*, then SIGKILL it if it has not exited within *timeout* seconds."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


@dataclass
class Supervisor:
    """Runs named children until one exits or this process is told to stop, then stops them all."""

    children: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, name: str, argv: Sequence[str], env: Mapping[str, str] | None = None,
              log_dir: Path | None = None) -> None:
        """Start a child; with *log_dir*, its output goes to ``<log_dir>/<name>.log`` instead of ours."""
        if log_dir is None:
            self.children[name] = spawn(argv, env=env)
            return
        log_dir.mkdir(parents=True, exist_ok=True)
        with open(log_dir / f"{name}.log", "ab") as log:
            self.children[name] = spawn(argv, env=env, stdout=log.fileno())

    def wait(self) -> int:
        """Block until a child exits or SIGINT/SIGTERM arrives; stop every child; return an exit code."""
        stopping = False

        def on_signal(signum: int, _frame: object) -> None:
            nonlocal stopping
            stopping = True

        previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            while not stopping:
                exited = [name for name, proc in self.children.items() if proc.poll() is not None]
                if exited:
                    log.error("%s exited with code %s; stopping the others", exited[0],
                              self.children[exited[0]].returncode)
                    return_code = 1
                    break
                time.sleep(0.2)
            else:
                return_code = 0
        finally:
            self.stop_all()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return return_code

    def stop_all(self) -> None:
        """Stop the children in the reverse order of their start (Redis, started first, goes last)."""
        for name in reversed(list(self.children)):
            stop(self.children[name])
