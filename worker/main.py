"""The celery CLI's entry point: ``celery --app worker.main worker|flower ...`` (Procfile, docker-compose).

Importing this module is an edge, like ``crossfill worker``: the environment is read here, once.
It does not start the embedded Redis (``crossfill worker`` does), so CROSSFILL_REDIS_URL must be set.
"""
from __future__ import annotations

from fulfillment.errors import ConfigError
from fulfillment.settings import load_settings
from worker.app import make_celery

settings = load_settings()
if settings.redis_url is None:
    raise ConfigError("CROSSFILL_REDIS_URL", None, "set it to the broker's URL, e.g. redis://redis:6379/0 "
                      "(`celery --app worker.main` uses no embedded Redis; `crossfill worker` does)")
app = make_celery(settings)
app.runtime.catalog  # noqa: B018 - a bad catalog (unknown handler, bad options) stops the worker at start
