"""The model registry: datasets, models, versions, artifacts, aliases, jobs, keys and the audit log."""
