"""crossfill's domain: settings, the event inbox, Stripe API access, cross-sell rules and the ledger.

Nothing here imports Flask or Celery; the web receiver and the worker are thin shells around it.
"""
