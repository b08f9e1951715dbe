"""Making esp_delta_ota patches (host side), exactly in the format of Espressif's generator.

``esp_delta_ota_patch_gen.py create_patch`` runs ``esptool image_info`` on the base for its
validation hash, then ``detools.create_patch(base, new, compression='heatshrink')`` (sequential
bsdiff, divsufsort, heatshrink window 8 / lookahead 7) and writes the 64-byte header before it.
:func:`create_patch` produces the same bytes (so it is never larger than the generator's
patch), and then checks the result by applying it twice: with otaforge's resumable applier
(what the emulated device runs) and with detools' own applier (what the generator's
``verify_patch`` runs). Both must rebuild the new image byte for byte — signature blocks
included, so a Secure Boot device still verifies the rebuilt image.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from typing import Any

from otaforge.delta.applier import apply_patch, read_detools_header
from otaforge.delta.source import BytesSource
from otaforge.errors import DigestMismatch, FormatError, RefusalCode
from otaforge.formats.app_image import AppImage
from otaforge.formats.delta_patch import (
    HEADER_SIZE,
    STOCK_LOOKAHEAD_SZ2,
    STOCK_WINDOW_SZ2,
    DeltaHeader,
    DetoolsHeader,
)


def validation_hash(image: bytes, what: str = "base image") -> bytes:
    """What ``esp_partition_get_sha256`` returns for an app partition holding ``image``.

    The SHA-256 appended to the image (checked first, as ESP-IDF does), or, for an image
    built without an appended hash, the SHA-256 of the image's bytes up to its checksum.

    Raises:
        FormatError: not an app image, or its checksum/appended hash is wrong.
    """
    try:
        parsed = AppImage.from_bytes(image, check=True)
    except FormatError as err:
        raise type(err)(f"{what}: {err}") from None
    if parsed.sha256 is not None:
        return parsed.sha256
    return hashlib.sha256(image[:parsed.image_len]).digest()


@dataclass(frozen=True)
class PatchInfo:
    """What ``delta info`` shows about a patch.

    Attributes:
        size: patch file size.
        base_sha256: the base hash the header requires.
        detools: the detools header.
        reserved_zero: the 28 reserved header bytes are zero (as the generator writes them).
    """

    size: int
    base_sha256: bytes
    detools: DetoolsHeader
    reserved_zero: bool

    def to_json(self) -> dict[str, Any]:
        """JSON-ready dict."""
        head = self.detools
        return {
            "size": self.size,
            "base_sha256": self.base_sha256.hex(),
            "patch_type": head.patch_type_name,
            "compression": head.compression_name,
            "heatshrink_window_sz2": head.window_sz2,
            "heatshrink_lookahead_sz2": head.lookahead_sz2,
            "new_size": head.to_size,
            "reserved_zero": self.reserved_zero,
            "stock_esp_delta_ota": head.stock_applicable,
        }


def patch_info(patch: bytes) -> PatchInfo:
    """Parse the headers of an esp_delta_ota patch.

    Raises:
        FormatError: not an esp_delta_ota patch, or a truncated one.
    """
    header = DeltaHeader.from_bytes(patch)
    detools = DetoolsHeader.from_bytes(patch[HEADER_SIZE:HEADER_SIZE + 16])
    return PatchInfo(len(patch), header.base_sha256, detools, not any(header.reserved))


@dataclass(frozen=True)
class CreatedPatch:
    """A patch and its figures.

    Attributes:
        patch: the patch file bytes (header + detools patch).
        base_sha256: the base's validation hash (in the header).
        new_sha256: SHA-256 of the new image file (what the rebuilt image must hash to).
        base_size, new_size: sizes of the two images.
    """

    patch: bytes
    base_sha256: bytes
    new_sha256: bytes
    base_size: int
    new_size: int

    @property
    def ratio(self) -> float:
        """Patch size / new image size."""
        return len(self.patch) / self.new_size if self.new_size else 0.0

    def to_json(self) -> dict[str, Any]:
        """JSON-ready dict (``delta create --json``)."""
        return {
            "patch_size": len(self.patch),
            "new_size": self.new_size,
            "base_size": self.base_size,
            "ratio": round(self.ratio, 6),
            "saved_bytes": self.new_size - len(self.patch),
            "base_sha256": self.base_sha256.hex(),
            "new_sha256": self.new_sha256.hex(),
            "patch_sha256": hashlib.sha256(self.patch).hexdigest(),
        }


def detools_patch(base: bytes, new: bytes, compression: str = "heatshrink",
                  window_sz2: int = STOCK_WINDOW_SZ2,
                  lookahead_sz2: int = STOCK_LOOKAHEAD_SZ2) -> bytes:
    """A bare detools sequential bsdiff patch (the generator's call, parameters explicit)."""
    import detools  # the C extension loads only when a patch is made

    out = io.BytesIO()
    detools.create_patch(io.BytesIO(base), io.BytesIO(new), out, compression=compression,
                         patch_type="sequential", algorithm="bsdiff",
                         suffix_array_algorithm="divsufsort",
                         heatshrink_window_sz2=window_sz2,
                         heatshrink_lookahead_sz2=lookahead_sz2)
    return out.getvalue()


def create_patch(base: bytes, new: bytes) -> CreatedPatch:
    """An esp_delta_ota patch that rebuilds ``new`` from ``base``, checked by applying it.

    Raises:
        FormatError: either input is not an intact app image.
        DigestMismatch: the patch did not rebuild ``new`` (a bug; nothing should be written).
    """
    base_hash = validation_hash(base, "base image")
    validation_hash(new, "new image")
    patch = DeltaHeader(base_hash).to_bytes() + detools_patch(base, new)
    check_rebuilds(base, patch, new)
    return CreatedPatch(patch, base_hash, hashlib.sha256(new).digest(), len(base), len(new))


def check_rebuilds(base: bytes, patch: bytes, new: bytes) -> None:
    """Apply ``patch`` with otaforge's applier and with detools'; both must give ``new``.

    Raises:
        DigestMismatch: one of them rebuilt something else.
    """
    import detools

    read_detools_header(BytesSource(patch))
    ours = apply_patch(base, patch)
    theirs = io.BytesIO()
    detools.apply_patch(io.BytesIO(base), io.BytesIO(patch[HEADER_SIZE:]), theirs)
    for who, got in (("otaforge's applier", ours), ("detools' applier", theirs.getvalue())):
        if got != new:
            raise DigestMismatch(f"delta patch check: {who} rebuilt an image with SHA-256 "
                                 f"{hashlib.sha256(got).hexdigest()}, not the new image's "
                                 f"{hashlib.sha256(new).hexdigest()}",
                                 code=RefusalCode.DIGEST_MISMATCH)


def check_base(patch: bytes, base: bytes) -> None:
    """Refuse ``patch`` unless its header names ``base``'s validation hash.

    Raises:
        FormatError: not a patch / base not an app image.
        DigestMismatch: the header wants another base (message: which hash it wants, which
            the base has).
    """
    wanted = DeltaHeader.from_bytes(patch).base_sha256
    got = validation_hash(base, "base image")
    if wanted != got:
        raise DigestMismatch(f"delta patch is for a base image with validation hash "
                             f"{wanted.hex()}, but this base has {got.hex()}: apply it to the "
                             "image it was made from, or make a patch from this one",
                             code=RefusalCode.DIGEST_MISMATCH)


def apply_checked(base: bytes, patch: bytes) -> bytes:
    """``delta apply``: check the header against ``base``, then rebuild the new image.

    Raises:
        FormatError, DigestMismatch: see :func:`check_base`; FormatError for a corrupt patch.
    """
    check_base(patch, base)
    return apply_patch(base, patch)
