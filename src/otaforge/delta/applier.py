"""Applying a detools sequential patch, as detools' C applier in esp_delta_ota does, resumably.

:class:`SequentialApplier` pulls compressed patch bytes from a
:class:`~otaforge.delta.source.PatchSource` and base bytes from a
:class:`~otaforge.delta.source.BaseReader`, and hands out the new image in pieces no longer
than asked, so the caller can stop exactly at a flash sector boundary, write, and save
:meth:`~SequentialApplier.checkpoint` (``detools_apply_patch_dump`` in C). A new applier
given that checkpoint (:meth:`~SequentialApplier.resume`) goes on from there: it fetches the
patch from the saved offset and produces the rest of the image, byte for byte what an
uninterrupted apply produces.
"""

from __future__ import annotations

from dataclasses import dataclass

from otaforge.delta.heatshrink import DecoderState, HeatshrinkDecoder
from otaforge.delta.source import BaseReader, BytesSource, PatchSource
from otaforge.errors import FormatError, ImageRejected
from otaforge.formats.delta_patch import (
    COMPRESSION_HEATSHRINK,
    HEADER_SIZE,
    PATCH_TYPE_SEQUENTIAL,
    PHASES,
    DetoolsHeader,
    unpack_size,
)

_DFPATCH, _DIFF_SIZE, _DIFF, _EXTRA_SIZE, _EXTRA, _ADJUST, _DONE = range(len(PHASES))
_L7 = 0x7F
_H1 = 0x80
_MAX_PIECE = 4096


@dataclass(frozen=True)
class ApplyState:
    """An applier stopped between two pieces (what ``detools_apply_patch_dump`` saves).

    Attributes:
        to_offset: bytes of the new image produced.
        from_offset: position in the base image.
        phase: index into :data:`~otaforge.formats.delta_patch.PHASES`.
        remaining: bytes left in the current diff or extra data.
        decoder: the heatshrink decoder's state.
    """

    to_offset: int
    from_offset: int
    phase: int
    remaining: int
    decoder: DecoderState


def add_bytes(diff: bytes, base: bytes) -> bytes:
    """Byte-wise ``(diff + base) mod 256`` (bsdiff's add), computed on whole integers."""
    n = len(diff)
    x = int.from_bytes(diff, "little")
    y = int.from_bytes(base, "little")
    low = int.from_bytes(bytes([_L7]) * n, "little")
    high = int.from_bytes(bytes([_H1]) * n, "little")
    return (((x & low) + (y & low)) ^ ((x ^ y) & high)).to_bytes(n, "little")


def read_detools_header(source: PatchSource, start: int = HEADER_SIZE) -> DetoolsHeader:
    """Fetch and parse the detools header at ``start`` of the patch.

    Raises:
        FormatError: truncated, or not a patch this applier (and esp_delta_ota) applies.
    """
    head = DetoolsHeader.from_bytes(source.read(start, 16))
    if head.patch_type != PATCH_TYPE_SEQUENTIAL:
        raise FormatError(f"delta patch: detools patch type {head.patch_type_name}; "
                          "esp_delta_ota applies only sequential patches")
    if head.to_size and head.compression != COMPRESSION_HEATSHRINK:
        raise FormatError(f"delta patch: compression {head.compression_name}; esp_delta_ota "
                          "is built with heatshrink only")
    return head


class SequentialApplier:
    """One apply of a sequential heatshrink patch.

    Args:
        source: the patch file (esp_delta_ota header included).
        patch_size: its size in bytes.
        base: the base image (running partition).
        base_size: bytes of ``base`` the patch may read (the partition or file size).
        start: offset of the detools patch in the file (64, after the esp_delta_ota header).
    """

    def __init__(self, source: PatchSource, patch_size: int, base: BaseReader, base_size: int,
                 start: int = HEADER_SIZE) -> None:
        self.header = read_detools_header(source, start)
        self.base = base
        self.base_size = base_size
        self.to_size = self.header.to_size
        self.to_offset = 0
        self.from_offset = 0
        self.phase = _DFPATCH if self.to_size else _DONE
        self.remaining = 0
        self.decoder = HeatshrinkDecoder(source, start + self.header.data_offset, patch_size,
                                         self.header.window_sz2 or 8,
                                         self.header.lookahead_sz2 or 7)

    @property
    def done(self) -> bool:
        """The whole new image was produced."""
        return self.phase == _DONE

    def checkpoint(self) -> ApplyState:
        """The state now; a :meth:`resume` from it produces the rest of the image."""
        return ApplyState(self.to_offset, self.from_offset, self.phase, self.remaining,
                          self.decoder.state())

    def resume(self, state: ApplyState) -> None:
        """Continue from ``state`` (taken from an applier of the same patch)."""
        self.to_offset, self.from_offset = state.to_offset, state.from_offset
        self.phase, self.remaining = state.phase, state.remaining
        self.decoder.restore(state.decoder)

    def _size(self, what: str) -> int:
        raw = bytearray()
        while True:
            raw += self.decoder.read(1)
            if not raw[-1] & 0x80 or len(raw) >= 9:
                return unpack_size(bytes(raw), 0, f"delta patch: {what}")[0]

    def _data_size(self, what: str) -> int:
        size = self._size(what)
        if size < 0 or self.to_offset + size > self.to_size:
            raise FormatError(f"delta patch: {what} {size} at new-image offset "
                              f"{self.to_offset} runs past the new image ({self.to_size} bytes)")
        return size

    def _advance(self) -> None:
        """Read sizes until the applier is in a data phase (or done)."""
        while True:
            if self.phase == _DFPATCH:
                if self._size("data-format patch size") != 0:
                    raise FormatError("delta patch: has a data-format patch, which "
                                      "esp_delta_ota does not implement")
                self.phase = _DIFF_SIZE
            elif self.phase == _DIFF_SIZE:
                self.remaining, self.phase = self._data_size("diff size"), _DIFF
            elif self.phase == _EXTRA_SIZE:
                self.remaining, self.phase = self._data_size("extra size"), _EXTRA
            elif self.phase == _ADJUST:
                self.from_offset += self._size("base adjustment")
                self.phase = _DIFF_SIZE if self.to_offset < self.to_size else _DONE
                if self.phase == _DONE:
                    self._check_end()
            elif self.remaining == 0:
                self.phase = _EXTRA_SIZE if self.phase == _DIFF else _ADJUST
            else:
                return
            if self.phase == _DONE:
                return

    def _check_end(self) -> None:
        if not self.decoder.at_end:
            raise FormatError("delta patch: data after the end of the new image (a corrupt "
                              "or concatenated patch)")

    def produce(self, limit: int = _MAX_PIECE) -> bytes:
        """The next piece of the new image, at most ``limit`` bytes (empty once done).

        Raises:
            FormatError: the patch is corrupt or reads outside the base.
            TransportError: from the patch source.
        """
        self._advance()
        if self.phase == _DONE:
            return b""
        n = min(self.remaining, limit, _MAX_PIECE)
        data = self.decoder.read(n)
        if self.phase == _DIFF:
            if self.from_offset < 0 or self.from_offset + n > self.base_size:
                raise FormatError(f"delta patch: reads base bytes {self.from_offset}.."
                                  f"{self.from_offset + n}, outside the base "
                                  f"({self.base_size} bytes): not a patch for this base")
            data = add_bytes(data, self.base.read(self.from_offset, n))
            self.from_offset += n
        self.remaining -= n
        self.to_offset += n
        return data


def apply_patch(base: bytes, patch: bytes) -> bytes:
    """The new image from ``base`` and a whole esp_delta_ota ``patch`` (header not checked).

    Raises:
        FormatError: corrupt patch; ImageRejected: it rebuilds a different size than it says.
    """
    applier = SequentialApplier(BytesSource(patch), len(patch), BytesSource(base), len(base))
    out = bytearray()
    while not applier.done:
        out += applier.produce(1 << 20)
    if len(out) != applier.to_size:
        raise ImageRejected(f"delta patch rebuilt {len(out)} bytes, expected {applier.to_size}")
    return bytes(out)
