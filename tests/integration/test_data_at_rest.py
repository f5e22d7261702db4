"""Data at rest is private: the data dir is its owner's alone, and the embedded Redis wants a password.

The append-only file holds customer emails; the data dir also keeps the webhook secret, the
embedded Redis's password and the metrics files. On real processes: the embedded redis-server, and
``crossfill web`` started on a data dir an older crossfill left readable, under a umask of 022.
"""
from __future__ import annotations

import os
import socket
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import requests

from crossfill.embedded import PASSWORD_FILE, free_port, recorded_url, start_embedded
from crossfill.supervisor import stop
from tests.support.processes import crossfill, port_open, wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
def open_umask() -> Iterator[None]:
    """The usual umask (022), so that only crossfill's own care makes its files private."""
    before = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(before)


def modes(data_dir: Path) -> dict[str, str]:
    """Every path under *data_dir* (itself included) → its permission bits, in octal."""
    found = {".": oct(stat.S_IMODE(data_dir.stat().st_mode))}
    for path in data_dir.rglob("*"):
        if not path.is_symlink():
            found[str(path.relative_to(data_dir))] = oct(stat.S_IMODE(path.stat().st_mode))
    return found


def expected(found: dict[str, str], data_dir: Path) -> dict[str, str]:
    return {name: "0o700" if (data_dir / name).is_dir() else "0o600" for name in found}


def raw_ping(port: int) -> bytes:
    """PING over a bare socket: what any local process gets without the password."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(b"PING\r\n")
        return conn.recv(200)


def test_the_embedded_redis_requires_its_password_and_keeps_it_off_its_command_line(tmp_path: Path,
                                                                                    open_umask: None) -> None:
    # Given the embedded Redis of a new data dir
    url, proc = start_embedded(tmp_path / "data")
    assert proc is not None
    try:
        port = int(url.rsplit(":", 1)[1].split("/")[0])
        password = (tmp_path / "data" / PASSWORD_FILE).read_text().strip()

        # When a client connects without the password, it is refused
        assert raw_ping(port).startswith(b"-NOAUTH")
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(port=port, socket_timeout=5).set("crossfill:test", "x")

        # Then the URL every crossfill process of the data dir finds (port and password) gets in
        assert recorded_url(tmp_path / "data") == url and password in url
        assert redis.Redis.from_url(url, socket_timeout=5).ping()
        # and the password is in no command line (every local user can read those), and the server is
        # on loopback only
        assert password.encode() not in Path(f"/proc/{proc.pid}/cmdline").read_bytes()
        bound = redis.Redis.from_url(url, decode_responses=True).config_get("bind")["bind"]
        assert bound == "127.0.0.1"
    finally:
        stop(proc)


def test_the_data_dir_and_every_file_in_it_are_private_after_start(tmp_path: Path, open_umask: None) -> None:
    # Given a data dir an older crossfill left readable to all: a webhook secret 0644, a directory 0755
    data_dir = tmp_path / "data"
    (data_dir / "metrics").mkdir(parents=True)
    os.chmod(data_dir, 0o755)
    os.chmod(data_dir / "metrics", 0o755)
    secret = data_dir / "webhook_secret"
    secret.write_text("whsec_an_old_secret_kept_here\n")
    os.chmod(secret, 0o644)

    # When `crossfill web` starts on it (the embedded Redis, gunicorn and its metrics files), and a
    # delivery reaches the receiver and a key the append-only file
    port = free_port()
    env = {**os.environ, "CROSSFILL_DATA_DIR": str(data_dir), "CROSSFILL_PORT": str(port),
           "CROSSFILL_WEB_WORKERS": "1", "CROSSFILL_METRICS_PORT": str(free_port())}
    for name in ("CROSSFILL_REDIS_URL", "STRIPE_WEBHOOK_SECRET", "PROMETHEUS_MULTIPROC_DIR"):
        env.pop(name, None)
    web = crossfill("web", ["web"], env, tmp_path)
    try:
        wait_until(lambda: port_open(port) or not web.alive(), timeout=60, what="the receiver")
        assert web.alive(), web.output()
        assert requests.post(f"http://127.0.0.1:{port}/webhooks/stripe", data=b"{}", timeout=10).status_code == 400
        url = recorded_url(data_dir)
        assert url is not None
        redis.Redis.from_url(url).set("crossfill:test:customer", "j***@example.com")
        wait_until(lambda: any("metrics" in name and name.endswith(".db") for name in modes(data_dir))
                   and any("aof" in name for name in modes(data_dir)), timeout=10, what="metrics and AOF files")

        # Then the data dir and every directory in it are 0700, every file 0600: the append-only file,
        # Redis's log, port and password, the webhook secret, the metrics files
        found = modes(data_dir)
        assert {"redis.password", "redis.port", "redis.log", "webhook_secret"} <= set(found)
        assert found == expected(found, data_dir)
    finally:
        web.stop()
        stop_redis(data_dir)


def stop_redis(data_dir: Path) -> None:
    """Stop the embedded Redis `crossfill web` started (it outlives a SIGTERMed group only briefly)."""
    url = recorded_url(data_dir)
    if url is None:
        return
    try:
        redis.Redis.from_url(url, socket_timeout=2).shutdown(nosave=True)
    except (redis.RedisError, OSError):
        pass
