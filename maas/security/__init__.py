"""API keys, principals and scopes."""
