"""The error tree of crossfill's domain."""
from __future__ import annotations


class CrossfillError(Exception):
    """Raised when crossfill's domain cannot do what was asked; the root of this package's errors."""


class ConfigError(CrossfillError):
    """Raised when a setting has a value crossfill cannot use."""

    def __init__(self, name: str, value: object, fix: str) -> None:
        self.name = name
        self.value = value
        self.fix = fix
        super().__init__(f"{name}={value!r} is invalid: {fix}")


class StoreUnavailable(CrossfillError):
    """Raised when Redis (the inbox, the ledger or the broker) cannot be reached."""
