"""Where an applier gets patch bytes and base bytes: one-method seams.

On the emulated device the patch comes over the network (a Range request per block, so a
resumed apply fetches only what is left) and the base is read from the running partition
(``esp_partition_read``); on the host both are plain bytes.
"""

from __future__ import annotations

from typing import Protocol


class PatchSource(Protocol):
    """Patch bytes by offset (a Range fetch)."""

    def read(self, offset: int, size: int) -> bytes:
        """Up to ``size`` bytes from ``offset`` (fewer only at the end of the patch).

        Raises:
            TransportError: the fetch failed (the apply can resume from its last checkpoint).
        """
        ...


class BaseReader(Protocol):
    """The base image by offset (``esp_partition_read`` of the running partition)."""

    def read(self, offset: int, size: int) -> bytes:
        """Exactly ``size`` bytes from ``offset``."""
        ...


class BytesSource:
    """A patch or base held in memory; counts the bytes handed out."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.bytes_read = 0

    def read(self, offset: int, size: int) -> bytes:
        """``data[offset:offset + size]``."""
        piece = self.data[offset:offset + size]
        self.bytes_read += len(piece)
        return piece
