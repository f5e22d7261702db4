"""Errors of the composition root: starting and keeping crossfill's processes."""
from __future__ import annotations


class SupervisorError(Exception):
    """Raised when a process of crossfill (Redis, the receiver, a worker, the simulator) cannot start or keep running."""


class EmbeddedRedisError(SupervisorError):
    """Raised when the embedded Redis of a data dir cannot start (on the port it had, or at all)."""


class ChildExited(SupervisorError):
    """Raised when a child process exits while the supervisor waits for it to listen."""


class StartTimeout(SupervisorError):
    """Raised when a child does not listen on its port in time."""
