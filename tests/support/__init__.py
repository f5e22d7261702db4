"""Helpers for tests that run crossfill's real processes."""
