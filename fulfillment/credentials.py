"""Secrets crossfill keeps or shows: generated once into a file of the data dir, redacted everywhere else.

A secret never reaches a log, an error message or the terminal in full: :func:`redact` shows its kind
and length, :func:`redact_url` hides a URL's password. A secret crossfill makes for itself (a local
webhook secret, the console's cookie key and operator token) is written by :func:`kept_secret`, readable
by its owner only, so every process started from the same data dir agrees on it.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit


def kept_secret(path: Path, make: Callable[[], str]) -> str:
    """The secret kept in *path*, or a new one from *make* written there: readable by its owner only
    from the start, and race-free (when two processes start at once, the first one's file wins)."""
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    with os.fdopen(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as file:
        file.write(f"{make()}\n")
    try:
        os.link(temporary, path)  # fails if another process got there first: theirs wins
    except FileExistsError:
        pass
    finally:
        temporary.unlink()
    return path.read_text().strip()


def redact(secret: str) -> str:
    """Show a secret's kind and length, never its text: ``whsec_…(38 chars)``."""
    if not secret:
        return "<empty>"
    prefix = secret.split("_", 1)[0] + "_" if "_" in secret[:8] else ""
    return f"{prefix}…({len(secret)} chars)"


def redact_url(url: str) -> str:
    """A URL with its credentials hidden (``redis://***@cache:6379/0``, ``...?password=***``); one
    without any is shown as given. Sentinel's form (``sentinel://…;sentinel://…``) is redacted part by part."""
    if ";" in url:
        return ";".join(redact_url(part) for part in url.split(";"))
    try:
        parts = urlsplit(url)
    except ValueError:
        return redact(url)
    netloc = "***@" + parts.netloc.rpartition("@")[2] if "@" in parts.netloc else parts.netloc
    query = "&".join("password=***" if field.startswith("password=") else field for field in parts.query.split("&"))
    if (netloc, query) == (parts.netloc, parts.query):
        return url
    return parts._replace(netloc=netloc, query=query).geturl()
