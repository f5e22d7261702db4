"""The names ``simulator.state`` had before the store was split by resource (``simulator.store``).

``bench/flash_sim.py`` still imports ``LineItemSpec`` from here; new code imports ``simulator.store``.
"""
from __future__ import annotations

from simulator.store import AUTOMATIC, LineItemSpec, RequestInfo, Store

__all__ = ["AUTOMATIC", "LineItemSpec", "RequestInfo", "Store"]
