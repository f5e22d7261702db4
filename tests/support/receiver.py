"""Helpers of the receiver's integration tests: a redis-server a test may stop and start again, and the
type of the ``signed_post`` fixture (tests/integration/conftest.py)."""
from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import redis
from werkzeug.test import TestResponse

from crossfill.embedded import free_port, redis_argv
from crossfill.supervisor import spawn, stop

#: ``signed_post(**overrides)``: post a signed delivery to the receiver's test client.
SignedPost = Callable[..., TestResponse]
REDIS_START_TIMEOUT_S = 10.0

@dataclass
class StoppableRedis:
    """A redis-server process of our own, on a fixed port, that a test may stop and start again."""

    data_dir: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> StoppableRedis:
        """Start it (again: same port, same directory, so the append-only file is replayed)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.proc = spawn(redis_argv(self.data_dir, self.port))
        deadline = time.monotonic() + REDIS_START_TIMEOUT_S
        probe = redis.Redis(port=self.port, socket_connect_timeout=0.5, socket_timeout=0.5)
        try:
            while True:
                try:
                    if probe.ping():
                        return self
                except redis.RedisError:
                    pass
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    log = (self.data_dir / "redis.log").read_text(errors="replace")[-2000:]
                    self.stop()
                    raise RuntimeError(f"redis-server did not start on port {self.port}:\n{log}")
                time.sleep(0.02)
        finally:
            probe.close()

    def stop(self) -> None:
        """SIGTERM it and wait: Redis flushes its append-only file on the way out."""
        if self.proc is not None:
            stop(self.proc)
            self.proc = None

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, decode_responses=True, socket_timeout=5)
