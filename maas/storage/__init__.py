"""Content-addressed artifact store."""

from maas.storage.store import ArtifactStore, StoredBlob

__all__ = ["ArtifactStore", "StoredBlob"]
