"""The ops service: what the CLI and the console ask of a running crossfill, over the domain.

Below both the composition root's CLI and ``console/``, above ``fulfillment/``; it builds no Celery
app. :mod:`ops.runtime` opens a process's stores and clients from its settings (the workers use it
too); :mod:`ops.service` answers status, orders, dead letters, replays and fulfil-on-request, queuing
only through :mod:`messaging.dispatch`.
"""
