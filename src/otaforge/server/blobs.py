"""Content-addressed firmware store: each image is kept once, under its SHA-256."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from otaforge.fsutil import atomic_write

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def is_sha256(text: str) -> bool:
    """True for 64 lowercase hex digits."""
    return bool(_SHA256.match(text))


class BlobStore:
    """Images on disk at ``root/ab/abcdef….bin``; writes are atomic and idempotent."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, sha256: str) -> Path:
        """Where the blob with this digest lives (it may not exist)."""
        if not is_sha256(sha256):
            raise ValueError(f"not a SHA-256 hex digest: {sha256!r}")
        return self.root / sha256[:2] / f"{sha256}.bin"

    def put(self, data: bytes) -> str:
        """Store ``data`` (once) and return its SHA-256."""
        digest = hashlib.sha256(data).hexdigest()
        dest = self.path(digest)
        if not dest.exists():
            dest.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(dest, data, 0o644)
        return digest

    def exists(self, sha256: str) -> bool:
        """True when the blob is stored."""
        return is_sha256(sha256) and self.path(sha256).is_file()

    def size(self, sha256: str) -> int:
        """Size in bytes of a stored blob."""
        return os.stat(self.path(sha256)).st_size
