"""``otaforge server migrate-blobs``: copy every blob of one store into another.

Each blob is streamed from the source in chunks and stored with
:meth:`~otaforge.server.blobs.BlobStore.put_stream` under its SHA-256, which the destination
checks before the blob becomes visible (a source blob whose bytes do not hash to its name is
reported and not copied). Blobs the destination has already are skipped, so a migration that
was interrupted is simply run again; the source is never changed. A server keeps serving
from its current store meanwhile: point it at the new one (``--blob-store``) afterwards.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from otaforge.errors import DigestMismatch
from otaforge.server.blobs import CHUNK, BlobHandle, BlobStore


@dataclass
class MigrateReport:
    """What a migration did: blobs copied (and their bytes), skipped, refused as corrupt."""

    copied: int = 0
    copied_bytes: int = 0
    skipped: int = 0
    corrupt: list[str] = field(default_factory=list)


def _stream(handle: BlobHandle, chunk: int) -> Iterator[bytes]:
    offset = 0
    while offset < handle.size:
        data = handle.read(offset, min(chunk, handle.size - offset), handle.size)
        if not data:
            return
        offset += len(data)
        yield data


def migrate(source: BlobStore, dest: BlobStore, chunk: int = CHUNK,
            progress: Callable[[str, int], None] | None = None) -> MigrateReport:
    """Copy every blob of ``source`` missing from ``dest``.

    Args:
        progress: called with (sha256, size) after each blob copied.

    Raises:
        StoreUnavailable: either store failed (what was copied stays, complete).
    """
    report = MigrateReport()
    for sha256 in list(source.digests()):
        if dest.exists(sha256):
            report.skipped += 1
            continue
        handle = source.open(sha256)
        try:
            size = dest.put_stream(_stream(handle, chunk), sha256)
        except DigestMismatch:
            report.corrupt.append(sha256)
            continue
        finally:
            handle.close()
        report.copied += 1
        report.copied_bytes += size
        if progress is not None:
            progress(sha256, size)
    return report
