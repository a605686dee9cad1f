"""A content-addressed file store: every blob lives at ``<root>/<sha[:2]>/<sha>`` and is written atomically.

Paths are derived from the sha256 alone, so no client-supplied name ever reaches the filesystem. A write goes
to a temp file in the same folder, is fsynced and renamed into place; the caller records the returned blob in
the database only afterwards, so a crash leaves at worst an unreferenced file, never a referenced half-file.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from maas.errors import ArtifactCorrupt, ArtifactNotFound

_SHA256 = re.compile(r"\A[0-9a-f]{64}\Z")
_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class StoredBlob:
    sha256: str
    size_bytes: int
    path: Path


class ArtifactStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)

    def path_for(self, sha256: str) -> Path:
        if not _SHA256.match(sha256):
            raise ArtifactNotFound(f"No artifact with sha256 {sha256!r}.")
        return self.root / sha256[:2] / sha256

    def put_bytes(self, data: bytes) -> StoredBlob:
        return self.put_chunks([data])

    def put_stream(self, stream: BinaryIO) -> StoredBlob:
        return self.put_chunks(iter(lambda: stream.read(_CHUNK), b""))

    def put_chunks(self, chunks: Iterable[bytes]) -> StoredBlob:
        """Stream chunks to a temp file while hashing, then move it to its content address."""
        digest = hashlib.sha256()
        size = 0
        fd, tmp_name = tempfile.mkstemp(dir=self.root, prefix=".incoming-")
        try:
            with os.fdopen(fd, "wb") as tmp:
                for chunk in chunks:
                    digest.update(chunk)
                    tmp.write(chunk)
                    size += len(chunk)
                tmp.flush()
                os.fsync(tmp.fileno())
            sha = digest.hexdigest()
            final = self.path_for(sha)
            final.parent.mkdir(exist_ok=True)
            os.replace(tmp_name, final)
            _fsync_dir(final.parent)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise
        return StoredBlob(sha256=sha, size_bytes=size, path=final)

    def read_bytes(self, sha256: str) -> bytes:
        """The blob's bytes, verified against its address."""
        data = self._existing(sha256).read_bytes()
        if hashlib.sha256(data).hexdigest() != sha256:
            raise ArtifactCorrupt(f"The stored artifact {sha256[:12]}… does not match its sha256.")
        return data

    def verified_path(self, sha256: str) -> Path:
        """The blob's path after hashing the file once (for consumers that open files themselves)."""
        path = self._existing(sha256)
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            for chunk in iter(lambda: handle.read(_CHUNK), b""):
                digest.update(chunk)
        if digest.hexdigest() != sha256:
            raise ArtifactCorrupt(f"The stored artifact {sha256[:12]}… does not match its sha256.")
        return path

    def exists(self, sha256: str) -> bool:
        return self.path_for(sha256).is_file()

    def delete(self, sha256: str) -> None:
        self.path_for(sha256).unlink(missing_ok=True)

    def _existing(self, sha256: str) -> Path:
        path = self.path_for(sha256)
        if not path.is_file():
            raise ArtifactNotFound(f"The artifact {sha256[:12]}… is missing from the store.")
        return path


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable (POSIX needs the directory entry flushed too)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
