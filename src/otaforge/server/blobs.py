"""Content-addressed blob storage: each image (and delta patch) is kept once, under its SHA-256.

:class:`BlobStore` is the seam; two stores implement it:

* :class:`LocalBlobStore` -- a directory, ``root/ab/abcdef….bin`` (the default,
  ``DATA/blobs``);
* :class:`otaforge.server.blobs_s3.S3BlobStore` -- an S3-compatible object store,
  ``s3://BUCKET[/PREFIX]`` (keys ``PREFIX/ab/abcdef….bin``), through boto3.

A blob becomes visible only complete and hash-checked: the local store writes a temporary
file and renames it; the S3 store uploads in parts (multipart above one part) that stay
invisible until the upload is completed, and aborts the upload when the stream fails or its
SHA-256 is not the one expected. Blobs never change once stored, so a store may cache sizes.
A store that cannot be reached raises :class:`~otaforge.errors.StoreUnavailable` (503).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Protocol

from otaforge.errors import DigestMismatch, InputError

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
CHUNK = 1024 * 1024


def is_sha256(text: str) -> bool:
    """True for 64 lowercase hex digits."""
    return bool(_SHA256.match(text))


def blob_name(sha256: str) -> str:
    """The relative name of a blob in every store: ``ab/abcdef….bin``."""
    if not is_sha256(sha256):
        raise ValueError(f"not a SHA-256 hex digest: {sha256!r}")
    return f"{sha256[:2]}/{sha256}.bin"


def chunked(data: bytes, size: int = CHUNK) -> Iterator[bytes]:
    """``data`` in slices of ``size`` bytes (memoryview slices: no copies)."""
    view = memoryview(data)
    for start in range(0, len(data), size):
        yield bytes(view[start:start + size])


class BlobHandle(Protocol):
    """One open blob being streamed.

    Attributes:
        size: its length in bytes.
        blocking: True when :meth:`read` waits on the network (the caller runs it in a
            thread, reading ahead); False when it reads the page cache (in the event loop).
        read_size: bytes a caller reading ahead asks for at once.
    """

    size: int
    blocking: bool
    read_size: int

    def read(self, offset: int, length: int, end: int) -> bytes:
        """Up to ``length`` bytes at ``offset``; ``end`` (exclusive) bounds what the caller
        will ask of this handle, so a remote store can request exactly that range."""

    def close(self) -> None:
        """Release the file or connection."""


class BlobStore(Protocol):
    """Where firmware images and delta patches are stored, by SHA-256.

    Attributes:
        url: what ``--blob-store`` named (a directory or ``s3://…``), for messages.
        remote: True when its calls wait on the network (callers in the event loop run
            them in a thread).
    """

    url: str
    remote: bool

    def put(self, data: bytes) -> str:
        """Store ``data`` (once) and return its SHA-256."""

    def put_stream(self, chunks: Iterable[bytes], sha256: str) -> int:
        """Store the blob streamed by ``chunks`` under ``sha256``; returns its size.

        Raises:
            DigestMismatch: the streamed bytes do not hash to ``sha256`` (nothing stored).
            StoreUnavailable: the store failed (nothing visible).
        """

    def exists(self, sha256: str) -> bool:
        """True when the blob is stored."""

    def size(self, sha256: str) -> int:
        """Size in bytes of a stored blob."""

    def read_bytes(self, sha256: str) -> bytes:
        """The whole blob (delta generation)."""

    def open(self, sha256: str) -> BlobHandle:
        """A handle to stream the blob from."""

    def digests(self) -> Iterator[str]:
        """The SHA-256 of every stored blob."""

    def check(self) -> None:
        """Raise StoreUnavailable unless the store answers (``server run`` at start)."""

    def presigned_url(self, sha256: str, expires_s: int) -> str | None:
        """A URL the blob can be fetched from directly for ``expires_s`` seconds, or None
        when the store has none (the local directory)."""


class _FileHandle:
    blocking = False
    read_size = CHUNK

    def __init__(self, path: Path) -> None:
        self.fd = os.open(path, os.O_RDONLY)
        self.size = os.fstat(self.fd).st_size

    def read(self, offset: int, length: int, end: int) -> bytes:
        return os.pread(self.fd, length, offset)

    def close(self) -> None:
        os.close(self.fd)


class LocalBlobStore:
    """Images on disk at ``root/ab/abcdef….bin``; writes are atomic and idempotent."""

    remote = False

    def __init__(self, root: Path) -> None:
        self.root = root
        self.url = str(root)

    def path(self, sha256: str) -> Path:
        """Where the blob with this digest lives (it may not exist)."""
        return self.root / blob_name(sha256)

    def put(self, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        if not self.exists(digest):
            self.put_stream(chunked(data), digest)
        return digest

    def put_stream(self, chunks: Iterable[bytes], sha256: str) -> int:
        dest = self.path(sha256)
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=".incoming-")
        digest, size = hashlib.sha256(), 0
        try:
            with os.fdopen(fd, "wb") as out:
                for chunk in chunks:
                    digest.update(chunk)
                    size += len(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            if digest.hexdigest() != sha256:
                raise DigestMismatch(f"blob streamed as {sha256} hashes to "
                                     f"{digest.hexdigest()}; not stored")
            os.chmod(tmp, 0o644)
            os.replace(tmp, dest)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        return size

    def exists(self, sha256: str) -> bool:
        return is_sha256(sha256) and self.path(sha256).is_file()

    def size(self, sha256: str) -> int:
        return os.stat(self.path(sha256)).st_size

    def read_bytes(self, sha256: str) -> bytes:
        return self.path(sha256).read_bytes()

    def open(self, sha256: str) -> BlobHandle:
        return _FileHandle(self.path(sha256))

    def check(self) -> None:
        return None  # the directory is made on the first write

    def presigned_url(self, sha256: str, expires_s: int) -> str | None:
        return None

    def digests(self) -> Iterator[str]:
        for path in sorted(self.root.glob("??/*.bin")):
            if is_sha256(path.stem) and path.parent.name == path.stem[:2]:
                yield path.stem


def open_blob_store(spec: str | None, default_dir: Path,
                    endpoint: str | None = None) -> BlobStore:
    """The store named by ``spec``: ``s3://BUCKET[/PREFIX]``, a directory, or (None/"")
    ``default_dir``.

    Args:
        spec: ``--blob-store`` / ``OTAFORGE_BLOB_STORE``.
        default_dir: the data directory's ``blobs``.
        endpoint: the S3 endpoint URL (default ``OTAFORGE_S3_ENDPOINT``, else AWS's).

    Raises:
        InputError: a malformed URL, or the s3 extra (boto3) is not installed.
    """
    if not spec:
        return LocalBlobStore(default_dir)
    if spec.startswith("s3://"):
        from otaforge.server.extras import require

        require("s3", f"--blob-store {spec}")
        from otaforge.server.blobs_s3 import S3BlobStore, parse_s3_url

        bucket, prefix = parse_s3_url(spec)
        return S3BlobStore(bucket, prefix,
                           endpoint or os.environ.get("OTAFORGE_S3_ENDPOINT") or None)
    if "://" in spec:
        raise InputError(f"--blob-store {spec!r}: expected s3://BUCKET[/PREFIX] or a directory")
    return LocalBlobStore(Path(spec))
