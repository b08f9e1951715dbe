"""New releases made from a real app image, for tests and benchmarks of deltas.

Each keeps the image valid (checksum and appended SHA-256 recomputed) and is deterministic:

- :func:`version_change`: only ``esp_app_desc_t.version`` differs (a rebuild with a new tag);
- :func:`code_change`: the version, plus ``changed`` bytes rewritten at one place in the largest
  segment and ``inserted`` new bytes in the middle of it (a small fix);
- :func:`larger_release`: the version, 1 % of the words of the largest segment rewritten
  (scattered, like relocated calls), and 8 KiB of new code inserted.

New bytes are random, i.e. incompressible: a pessimistic stand-in for new machine code.
"""

from __future__ import annotations

import random

from otaforge.formats.app_image import AppImage, Segment, assemble_image


def version_change(image: bytes, version: str = "2.0.0") -> bytes:
    """``image`` with only its app version string changed."""
    parsed = AppImage.from_bytes(image)
    if parsed.app_desc is None:
        raise ValueError("the image has no esp_app_desc_t")
    return parsed.with_app_desc(parsed.app_desc.replace(version=version)).to_bytes()


def _edited(image: bytes, seed: int, words: int, run: int, inserted: int) -> bytes:
    parsed = AppImage.from_bytes(version_change(image, f"2.0.{seed}"))
    segments = list(parsed.segments)
    big = max(range(len(segments)), key=lambda i: len(segments[i].data))
    data = bytearray(segments[big].data)
    rng = random.Random(seed)
    middle = (len(data) // 2) & ~3
    for _ in range(words):  # scattered 4-byte rewrites
        at = rng.randrange(0, len(data) - 4) & ~3
        data[at:at + 4] = rng.randbytes(4)
    if run:
        at = (len(data) // 3) & ~3
        data[at:at + run] = rng.randbytes(run)
    if inserted:
        data[middle:middle] = rng.randbytes(inserted & ~3)
    segments[big] = Segment(segments[big].load_addr, bytes(data))
    return assemble_image(parsed.header, segments)


def code_change(image: bytes, seed: int = 1, changed: int = 64, inserted: int = 64) -> bytes:
    """A small code change: ``changed`` bytes rewritten, ``inserted`` bytes added."""
    return _edited(image, seed, 0, changed, inserted)


def larger_release(image: bytes, seed: int = 2) -> bytes:
    """A larger release: 1 % of the largest segment's words rewritten, 8 KiB inserted."""
    largest = max(len(s.data) for s in AppImage.from_bytes(image).segments)
    return _edited(image, seed, largest // 400, 0, 8192)
