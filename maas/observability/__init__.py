"""Metrics, logging and request context."""
