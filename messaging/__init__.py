"""The message path: how work travels from the receiver and ops tools to the workers.

A leaf below ``webhooks/``, ``worker/``, ``console/`` and the root, over the domain only:

- :mod:`messaging.contract` — queue and task names, task ids, dead-letter ids, the wire format;
- :mod:`messaging.dispatch` — the one way a message is queued, each time in the same atomic Redis
  call that records why (the inbox, the ledger).

It imports no task, pipeline, handler or Stripe client, so the receiver can queue work without
loading the worker.
"""
