"""crossfill's Celery side: the app and its reliability configuration, thin tasks, the retry path, and
the recovery jobs (reconcile, sweeper) with beat's schedule. Nothing else: the command lives in the root
(``crossfill/``), queuing in ``messaging/``, ops actions in ``ops/``."""
