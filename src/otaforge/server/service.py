"""Business rules of the update server, free of HTTP and SQL: upload checks, fleet layout,
the check-in decision and the report state machine.
"""

from __future__ import annotations

import random
import string
from dataclasses import dataclass, field
from typing import Any

from otaforge.errors import (
    FormatError,
    ImageRejected,
    InputError,
    RollbackRejected,
    SignatureInvalid,
)
from otaforge.formats.app_image import AppImage
from otaforge.formats.chips import ChipSpec, chip
from otaforge.formats.image_verify import verify_image
from otaforge.formats.signature_block import has_signature_sector
from otaforge.protocol.reports import ABORTED, TERMINAL_STATES

ENDED_STATES = TERMINAL_STATES | {ABORTED}  # deployment states after which nothing changes
_PRINTABLE = frozenset(string.printable) - frozenset("\t\n\r\x0b\x0c")


@dataclass(frozen=True)
class FleetPolicy:
    """What a fleet accepts.

    Attributes:
        chip: esptool chip name.
        ota_slot_size: bytes of the smallest OTA app slot.
        require_signature: refuse images without a valid signature by ``public_keys``.
        public_keys: PEM public keys trusted for signatures.
        secure_version_bits: usable bits of the SECURE_VERSION eFuse field.
    """

    chip: str
    ota_slot_size: int
    require_signature: bool = False
    public_keys: tuple[str, ...] = ()
    secure_version_bits: int = 32


@dataclass(frozen=True)
class CheckedImage:
    """An image that passed every upload check; what a release records."""

    sha256: str
    size: int
    version: str
    project_name: str
    idf_ver: str
    secure_version: int
    app_desc: dict[str, Any]
    signature: dict[str, Any] | None = field(default=None)


@dataclass(frozen=True)
class FleetLayout:
    """The parts of a partition table the server enforces."""

    csv: str
    ota_slot_size: int
    ota_slots: int


def fleet_layout(csv_text: str) -> FleetLayout:
    """Parse and check a partition CSV; the fleet needs at least two OTA slots and otadata.

    Raises:
        PartitionTableError: gen_esp32part's rules fail (with the line).
        InputError: the table has no A/B OTA layout.
    """
    from otaforge.formats.partition_table import PartitionTable

    table = PartitionTable.from_csv(csv_text)
    table.verify()
    slots = table.ota_slots()
    if len(slots) < 2:
        raise InputError(f"partition table has {len(slots)} OTA app slot(s); OTA updates need "
                         "ota_0 and ota_1")
    if table.otadata() is None:
        raise InputError("partition table has no otadata partition (data, ota); OTA updates "
                         "need one")
    return FleetLayout(csv=csv_text, ota_slot_size=min(s.size for s in slots),
                       ota_slots=len(slots))


def chip_spec(name: str) -> ChipSpec:
    """The chip row for ``name`` (InputError for unknown chips)."""
    return chip(name)


def _check_version_text(version: str) -> None:
    if not version:
        raise ImageRejected("app description has an empty version (PROJECT_VER)")
    if not set(version) <= _PRINTABLE:
        raise ImageRejected(f"app description version {version!r} has unprintable characters")


def _signature(data: bytes, image: AppImage, policy: FleetPolicy) -> dict[str, Any] | None:
    """Verify (when required) and describe the image's signature.

    The chip's policy (schemes, blocks examined, v1 scheme) is
    :func:`otaforge.crypto.chip_policy.verify_for_chip`'s; the image is not parsed again.
    """
    from otaforge.crypto import keys as k

    if not policy.require_signature:
        return _unverified_signature(data, image)
    from otaforge.crypto.chip_policy import verify_for_chip

    trusted = [k.load_public_key(pem.encode()) for pem in policy.public_keys]
    result = verify_for_chip(data, chip_spec(policy.chip), keys=trusted,
                             image_len=image.image_len, strict=True)
    described: dict[str, Any] = {"scheme": result.scheme, "verified": True,
                                 "key_index": result.key_index}
    if result.scheme != "v1":
        described["key_digest"] = k.public_key_digest(trusted[result.key_index]).hex()
    described.update(block_count=result.block_count, signed_len=result.signed_len)
    return described


def _unverified_signature(data: bytes, image: AppImage) -> dict[str, Any] | None:
    """The key digests of a Secure Boot v2 sector a fleet does not check (None: unsigned)."""
    from otaforge.crypto.sbv2 import signature_key_digests

    if not has_signature_sector(data, image.image_len):
        return None
    try:
        digests = signature_key_digests(data, image.image_len)
    except SignatureInvalid:
        return None
    return {"scheme": "sbv2", "verified": False, "key_digests": [d.hex() for d in digests]}


def check_upload(data: bytes, policy: FleetPolicy) -> CheckedImage:
    """Every check an upload must pass before anything is stored.

    Raises:
        FormatError: not an app image (bad magic, truncated, bad checksum or hash).
        ImageRejected: wrong chip, too large for the fleet's OTA slots, no app description.
        SignatureInvalid: unsigned or wrongly signed while the fleet requires signatures.
        RollbackRejected: secure_version does not fit the eFuse field.
    """
    import hashlib

    if not data:
        raise ImageRejected("empty upload: expected an ESP-IDF app image (.bin)")
    spec = chip_spec(policy.chip)
    image = verify_image(data, chip=spec, partition_size=policy.ota_slot_size)
    if len(data) > policy.ota_slot_size:
        raise ImageRejected(f"file of {len(data)} bytes (image plus trailer) doesn't fit in "
                            f"the fleet's OTA slot of {policy.ota_slot_size} bytes")
    desc = image.app_desc
    if desc is None:
        raise ImageRejected("image has no app description (esp_app_desc_t magic 0xABCD5432 "
                            "at offset 0x20): not an ESP-IDF application")
    _check_version_text(desc.version)
    limit = policy.secure_version_bits
    if desc.secure_version > limit:
        raise RollbackRejected(
            f"secure_version {desc.secure_version} exceeds the fleet's eFuse field of {limit} "
            f"bits (max {limit}); the device would refuse to burn it")
    signature = _signature(data, image, policy)
    return CheckedImage(
        sha256=hashlib.sha256(data).hexdigest(), size=len(data), version=desc.version,
        project_name=desc.project_name, idf_ver=desc.idf_ver,
        secure_version=desc.secure_version, app_desc=desc.to_json(), signature=signature)


UPLOAD_ERRORS = (FormatError, ImageRejected, SignatureInvalid, RollbackRejected, InputError)


@dataclass(frozen=True)
class DeviceFacts:
    """What a device says about itself at check-in."""

    version: str | None
    image_sha256: str | None
    otadata_state: str | None
    efuse_secure_version: int | None


@dataclass(frozen=True)
class Target:
    """The release a device's channel points at."""

    release_id: int
    version: str
    sha256: str
    secure_version: int
    channel_id: int = 0
    max_in_flight: int | None = None
    paused: bool = False
    rollout_percent: int | None = None


def runs_target(facts: DeviceFacts, target: Target) -> bool:
    """True when the device already runs the target image (by hash, else by version)."""
    if facts.image_sha256:
        return facts.image_sha256.lower() == target.sha256
    return facts.version is not None and facts.version == target.version


def decide(facts: DeviceFacts, target: Target | None, failures: int,
           max_failures: int) -> str | None:
    """Whether to offer ``target``; ``None`` means offer it, else the reason not to.

    Args:
        facts: the device's report.
        target: its channel's release, if any.
        failures: failed or rolled-back deployments of this release on this device.
        max_failures: the penalty-box threshold.
    """
    if target is None:
        return "no release on the device's channel"
    if target.paused:
        return "the channel's rollout is paused"
    if runs_target(facts, target):
        return "already running the channel's release"
    if facts.otadata_state == "pending_verify":
        return "running image is still pending verification; confirm it first"
    if facts.efuse_secure_version is not None and \
            target.secure_version < facts.efuse_secure_version:
        return (f"release secure_version {target.secure_version} is below the device's "
                f"eFuse secure_version {facts.efuse_secure_version}")
    if failures >= max_failures:
        return f"release failed {failures} times on this device"
    return None


def next_check_in(interval_s: int, jitter: float, rng: random.Random | None = None) -> int:
    """The next poll interval: ``interval_s`` +- ``jitter`` (so a fleet does not synchronise)."""
    r = rng or random
    return max(1, round(interval_s * (1 + r.uniform(-jitter, jitter))))


def transition(current: str, new: str) -> str:
    """The deployment's state after a report of ``new``; raises Conflict-worthy ValueError.

    A report on a deployment that already ended with another outcome is refused (Mender:
    409 on an aborted deployment); the same outcome again is harmless. Every report on a
    deployment an administrator aborted is refused: the device must stop, not retry.
    """
    if current == ABORTED:
        raise ValueError(f"deployment was aborted by an administrator; the {new} report is "
                         "refused: stop this update and keep the running firmware")
    if current in TERMINAL_STATES and new != current:
        raise ValueError(f"deployment already ended as {current}; a {new} report is too late")
    return new


def in_cohort(device_id: str, target: Target) -> bool:
    """True when a staged rollout offers ``target`` to this device.

    The device's bucket (0..9999) is a hash of the release and the device id, so the choice is
    deterministic, differs between releases, and raising the percentage only adds devices.
    """
    import hashlib

    if target.rollout_percent is None or target.rollout_percent >= 100:
        return True
    digest = hashlib.sha256(f"{target.release_id}:{device_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % 10_000 < target.rollout_percent * 100


def held_back(device_id: str, target: Target) -> bool:
    """True when the channel's rollout does not reach this device now (paused or staged)."""
    return target.paused or not in_cohort(device_id, target)


def must_pause(failure_count: int, threshold: int | None) -> bool:
    """True when a rollout's failures (failed + rolled back) exceed its threshold."""
    return threshold is not None and failure_count > threshold
