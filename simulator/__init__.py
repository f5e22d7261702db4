"""A stateful, Stripe-compatible local API with Checkout cross-sells and signed webhook delivery.

For development, the demo, tests and benchmarks only: production code never imports it.
Start it with ``crossfill sim`` or, in Python, ``SimServer(SimConfig(...)).start()``.
"""
from __future__ import annotations

from simulator.app import create_sim_app
from simulator.config import SimConfig
from simulator.server import SimServer
from simulator.simulation import Simulator

__all__ = ["SimConfig", "SimServer", "Simulator", "create_sim_app"]
