"""Child processes of the CLI: started together, restarted when they die, stopped together, never orphaned."""
from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1
STOP_TIMEOUT_S = 10.0  #: how long a child gets to stop after SIGTERM before SIGKILL, seconds
RESTART_BASE_S = 1.0  #: wait before the first restart of a child that died, seconds; doubles per death
RESTART_CAP_S = 30.0  #: longest wait before a restart, seconds
STABLE_AFTER_S = 60.0  #: a child that ran this long before dying starts its backoff afresh, seconds
GIVE_UP_AFTER = 8  #: deaths in a row (none after a stable run) after which the supervisor stops everything
POLL_S = 0.2  #: how often children are checked, seconds
CONFIG_EXIT_CODE = 2  #: what crossfill exits with on bad configuration: a restart cannot fix that


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
          stdout: int | None = None, umask: int = -1) -> subprocess.Popen[bytes]:
    """Start a child that dies with this process and ignores the terminal's Ctrl-C (with *umask*, when given)."""
    return subprocess.Popen(list(argv), env=dict(env) if env is not None else None,
                            preexec_fn=_die_with_parent, stdout=stdout,
                            stderr=subprocess.STDOUT if stdout is not None else None, umask=umask)


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


def restart_delay(deaths: int, *, base: float = RESTART_BASE_S, cap: float = RESTART_CAP_S) -> float:
    """Seconds to wait before restarting a child after its *deaths*-th death in a row (1, 2, ...)."""
    return float(min(cap, base * 2 ** (deaths - 1)))


def _argv_of(proc: subprocess.Popen[bytes]) -> list[str]:
    args = proc.args
    return [os.fsdecode(args)] if isinstance(args, (str, bytes, os.PathLike)) else [os.fsdecode(arg) for arg in args]


@dataclass
class _Spec:
    """How to start a child again, and how its recent runs went."""

    argv: list[str]
    env: dict[str, str] | None
    log_dir: Path | None
    started_at: float = field(default_factory=time.monotonic)
    deaths: int = 0  #: deaths in a row, none after a stable run
    restart_at: float | None = None  #: when a dead child is due to start again (monotonic clock)


@dataclass
class Supervisor:
    """Runs named children; restarts one that dies (backoff, capped); stops them all when told to.

    A child is restarted whatever its exit code, 0 included: a service child never means to exit
    (a Celery worker was seen exiting 0 after its Redis was killed). One that dies
    :data:`GIVE_UP_AFTER` times in a row without a stable run is reported and everything stops; so
    does one that exits with :data:`CONFIG_EXIT_CODE` (bad configuration), at once.
    """

    children: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    restart_base: float = RESTART_BASE_S
    restart_cap: float = RESTART_CAP_S
    stable_after: float = STABLE_AFTER_S
    give_up_after: int = GIVE_UP_AFTER
    _specs: dict[str, _Spec] = field(default_factory=dict, repr=False)
    _stopping: threading.Event = field(default_factory=threading.Event, repr=False)

    def __post_init__(self) -> None:
        for name, proc in self.children.items():
            self._specs.setdefault(name, _Spec(argv=_argv_of(proc), env=None, log_dir=None))

    def start(self, name: str, argv: Sequence[str], env: Mapping[str, str] | None = None,
              log_dir: Path | None = None) -> None:
        """Start a child; with *log_dir*, its output goes to ``<log_dir>/<name>.log`` instead of ours."""
        self._specs[name] = _Spec(argv=list(argv), env=dict(env) if env is not None else None, log_dir=log_dir)
        self.children[name] = self._spawn(name)

    def adopt(self, name: str, proc: subprocess.Popen[bytes]) -> None:
        """Supervise a child started elsewhere (e.g. the embedded Redis); it restarts with its own argv."""
        self.children[name] = proc
        self._specs[name] = _Spec(argv=_argv_of(proc), env=None, log_dir=None)

    def _spawn(self, name: str) -> subprocess.Popen[bytes]:
        spec = self._specs[name]
        spec.started_at = time.monotonic()
        if spec.log_dir is None:
            return spawn(spec.argv, env=spec.env)
        spec.log_dir.mkdir(parents=True, exist_ok=True)
        with open(spec.log_dir / f"{name}.log", "ab") as out:
            return spawn(spec.argv, env=spec.env, stdout=out.fileno())

    def request_stop(self) -> None:
        """Make :meth:`wait` stop every child and return (what SIGINT and SIGTERM do)."""
        self._stopping.set()

    def wait(self) -> int:
        """Supervise until SIGINT/SIGTERM or a child that keeps dying; stop every child; return an exit code."""

        def on_signal(signum: int, _frame: object) -> None:
            self.request_stop()

        previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        return_code = 0
        try:
            while not self._stopping.wait(POLL_S):
                if not self._tend():
                    return_code = 1
                    break
        finally:
            self.stop_all()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return return_code

    def _tend(self) -> bool:
        """Note the children that died, restart those that are due; False when one keeps dying."""
        now = time.monotonic()
        for name, proc in list(self.children.items()):
            spec = self._specs.get(name)
            if spec is None:
                if proc.poll() is not None:  # not restartable: as before, its death ends the run
                    log.error("%s exited with code %s; stopping the others", name, proc.returncode)
                    return False
                continue
            if spec.restart_at is not None:
                if now >= spec.restart_at:
                    spec.restart_at = None
                    self.children[name] = self._spawn(name)
                    log.warning("%s restarted (pid %d)", name, self.children[name].pid)
                continue
            if proc.poll() is None:
                continue
            ran = now - spec.started_at
            if proc.returncode == CONFIG_EXIT_CODE:
                log.critical("%s exited with code %d: its configuration is wrong (see the line above or its log), "
                             "which a restart cannot fix; stopping the others", name, CONFIG_EXIT_CODE)
                return False
            spec.deaths = 1 if ran >= self.stable_after else spec.deaths + 1
            if spec.deaths > self.give_up_after:
                log.critical("%s keeps dying: exited with code %s, %d times in a row within %.0f s of its start; "
                             "giving up and stopping the others (see its log)", name, proc.returncode,
                             spec.deaths, self.stable_after)
                return False
            delay = restart_delay(spec.deaths, base=self.restart_base, cap=self.restart_cap)
            spec.restart_at = now + delay
            log.error("%s (pid %d) exited with code %s after %.1f s; restarting it in %.1f s (death %d in a row)",
                      name, proc.pid, proc.returncode, ran, delay, spec.deaths)
        return True

    def stop_all(self) -> None:
        """Stop the children in the reverse order of their start (Redis, started first, goes last)."""
        self._stopping.set()
        for name in reversed(list(self.children)):
            stop(self.children[name])
