"""A heatshrink decoder whose whole state can be saved and restored (for resumable deltas).

It decodes exactly as ``heatshrink_decoder.c`` (the one in detools' C library, used by
esp_delta_ota): a tag bit (1 literal, 0 back-reference), a literal is 8 bits, a
back-reference is ``window_sz2`` bits of index-1 then ``lookahead_sz2`` bits of count-1, bits
most significant first; the window starts zeroed. Input is pulled on demand from a
:class:`~otaforge.delta.source.PatchSource`, one fetched block at a time, so the decoder
knows at every moment the patch offset of the next unread byte.
"""

from __future__ import annotations

from dataclasses import dataclass

from otaforge.delta.source import PatchSource
from otaforge.errors import TruncatedError


@dataclass(frozen=True)
class DecoderState:
    """A decoder frozen between two reads (see :class:`~otaforge.formats.delta_patch.ResumeRecord`).

    Attributes:
        offset: patch offset of the next byte to fetch.
        bits, bit_count: fetched bits not yet decoded (``bit_count`` < 8).
        backref_index, backref_count: a back-reference not completely copied (count 0: none).
        window: the last ``2**window_sz2`` decompressed bytes.
    """

    offset: int
    bits: int
    bit_count: int
    backref_index: int
    backref_count: int
    window: bytes


class HeatshrinkDecoder:
    """Pull-based heatshrink decoding of ``source[start:end]``.

    Args:
        source: where compressed bytes come from.
        start: patch offset of the first compressed byte.
        end: patch offset just past the last compressed byte (the patch size).
        window_sz2, lookahead_sz2: heatshrink parameters from the patch.
        block: bytes fetched from the source at a time.
    """

    def __init__(self, source: PatchSource, start: int, end: int, window_sz2: int,
                 lookahead_sz2: int, block: int = 4096) -> None:
        self.source = source
        self.end = end
        self.window_sz2 = window_sz2
        self.lookahead_sz2 = lookahead_sz2
        self.block = block
        self._buf = b""
        self._buf_start = start
        self._pos = 0  # index in _buf of the next unread byte
        self._bits = 0
        self._nbits = 0
        self._br_index = 0
        self._br_count = 0
        # output history; starts with the zeroed window
        self._hist = bytearray(1 << window_sz2)

    # --- state ------------------------------------------------------------------------------

    def state(self) -> DecoderState:
        """The decoder's state now (restore it with :meth:`restore`)."""
        size = 1 << self.window_sz2
        return DecoderState(self._buf_start + self._pos, self._bits, self._nbits,
                            self._br_index, self._br_count, bytes(self._hist[-size:]))

    def restore(self, state: DecoderState) -> None:
        """Continue from ``state`` (the next fetch starts at ``state.offset``)."""
        self._buf, self._buf_start, self._pos = b"", state.offset, 0
        self._bits, self._nbits = state.bits, state.bit_count
        self._br_index, self._br_count = state.backref_index, state.backref_count
        self._hist = bytearray(state.window)

    @property
    def at_end(self) -> bool:
        """True when every compressed byte was read and no back-reference is pending."""
        return self._buf_start + self._pos >= self.end and self._br_count == 0

    # --- bits -------------------------------------------------------------------------------

    def _fetch(self) -> bool:
        offset = self._buf_start + self._pos
        if offset >= self.end:
            return False
        data = self.source.read(offset, min(self.block, self.end - offset))
        if not data:
            return False
        self._buf, self._buf_start, self._pos = data, offset, 0
        return True

    def _get_bits(self, count: int) -> int | None:
        """``count`` bits, or None when the input ends first (nothing is consumed then)."""
        while self._nbits < count:
            if self._pos >= len(self._buf) and not self._fetch():
                return None
            self._bits = (self._bits << 8) | self._buf[self._pos]
            self._pos += 1
            self._nbits += 8
        self._nbits -= count
        value = self._bits >> self._nbits
        self._bits &= (1 << self._nbits) - 1
        return value

    # --- output -----------------------------------------------------------------------------

    def read(self, size: int) -> bytes:
        """Exactly ``size`` decompressed bytes.

        Raises:
            TruncatedError: the compressed stream ends first.
        """
        out = bytearray()
        hist = self._hist
        while len(out) < size:
            if self._br_count:
                n = min(self._br_count, size - len(out))
                self._copy_backref(out, n)
                continue
            tag = self._get_bits(1)
            if tag is None:
                raise TruncatedError(f"delta patch: the compressed data ends after "
                                     f"{self._buf_start + self._pos} bytes, before the new "
                                     "image is complete")
            if tag:
                byte = self._get_bits(8)
                if byte is None:
                    raise TruncatedError("delta patch: the compressed data ends in a literal")
                out.append(byte)
                hist.append(byte)
                continue
            index = self._get_bits(self.window_sz2)
            count = self._get_bits(self.lookahead_sz2)
            if index is None or count is None:
                raise TruncatedError("delta patch: the compressed data ends in a "
                                     "back-reference")
            self._br_index, self._br_count = index + 1, count + 1
        self._trim()
        return bytes(out)

    def _copy_backref(self, out: bytearray, n: int) -> None:
        hist = self._hist
        index = self._br_index
        start = len(hist) - index
        if index >= n:
            piece = hist[start:start + n]
        else:  # the reference overlaps what it produces: repeat the period
            period = hist[start:]
            piece = (period * (n // index + 1))[:n]
        hist += piece
        out += piece
        self._br_count -= n

    def _trim(self) -> None:
        size = 1 << self.window_sz2
        if len(self._hist) > 64 * size:
            del self._hist[:-size]
