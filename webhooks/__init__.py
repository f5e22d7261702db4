"""crossfill's web side: the Stripe webhook receiver, health and metrics endpoints."""
from webhooks.app import create_app

__all__ = ["create_app"]
