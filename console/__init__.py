"""The ops console and its JSON API (``/api/v1``): a Flask app of its own, never served by the receiver."""
from __future__ import annotations

from console.app import create_console_app

__all__ = ["create_console_app"]
