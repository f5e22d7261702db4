"""Errors of the local dev stack."""
from __future__ import annotations


class DevStackError(Exception):
    """Raised when the local dev stack cannot start or keep one of its processes."""


class EmbeddedRedisError(DevStackError):
    """Raised when the embedded Redis of a data dir cannot start (on the port it had, or at all)."""


class ChildExited(DevStackError):
    """Raised when a child process exits while the stack waits for it to listen."""


class StartTimeout(DevStackError):
    """Raised when a child does not listen on its port in time."""
