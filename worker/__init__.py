"""crossfill's Celery side: the app and its reliability configuration, thin tasks, and the CLI."""
