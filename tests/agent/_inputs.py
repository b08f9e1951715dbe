"""Inputs for the decision-core tests: images, device facts, offers (one definition each)."""

from __future__ import annotations

import hashlib
from functools import lru_cache

from otaforge.agent.decision import DeviceFacts, Offer
from otaforge.crypto.keys import generate_key
from otaforge.formats.chips import chip
from otaforge.formats.image_builder import build_image

SLOT = 0x100000


@lru_cache
def image(version: str = "1.1.0", secure_version: int = 1, chip_name: str = "esp32",
          size: int = 0x20000, min_rev: int = 0, max_rev: int = 0) -> bytes:
    """An unsigned app image (cached: the tests never mutate it in place)."""
    return build_image(version=version, secure_version=secure_version, chip=chip_name,
                       size=size, min_chip_rev_full=min_rev, max_chip_rev_full=max_rev)


@lru_cache
def rsa_key() -> object:
    """One RSA-3072 key for the whole session (generating one takes a while)."""
    return generate_key("rsa3072")


def facts(**kw: object) -> DeviceFacts:
    """An ESP32 running 1.0.0 with anti-rollback at secure_version 1; ``kw`` overrides."""
    base: dict[str, object] = {"chip": chip("esp32"), "running_version": "1.0.0",
                               "slot_size": SLOT, "efuse_secure_version": 1,
                               "anti_rollback": True}
    base.update(kw)
    return DeviceFacts(**base)  # type: ignore[arg-type]


def offer(data: bytes, version: str = "1.1.0", secure_version: int | None = 1,
          sha256: str | None = None) -> Offer:
    """The offer of ``data`` (its own SHA-256 unless ``sha256`` says otherwise)."""
    return Offer(version, sha256 or hashlib.sha256(data).hexdigest(), len(data),
                 "https://x/fw.bin", secure_version)
