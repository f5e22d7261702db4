"""crossfill's composition root: the ``crossfill`` command and what wires processes together.

Nothing below imports this package. It holds the CLI (:mod:`crossfill.cli`), the process supervisor
that ``crossfill run``, ``web`` and ``worker -p N`` use (:mod:`crossfill.supervisor`), the embedded
Redis of a data dir (:mod:`crossfill.embedded`), the local loop with the Stripe simulator
(:mod:`crossfill.local`) and the checked demo (:mod:`crossfill.demo`).
"""
