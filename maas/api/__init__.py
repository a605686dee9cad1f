"""The HTTP layer: routes, auth, schemas and error mapping; no business logic."""
