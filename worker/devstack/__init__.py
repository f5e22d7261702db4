"""The local dev stack: child processes started and stopped together, the embedded Redis, the local loop.

Used by the ``crossfill`` commands that start processes (``run``, ``web``, ``worker``, ``redis``,
``demo``). It may import the simulator (to drive it in the demo); the simulator never imports it.
"""
