"""The agent's pure decision core: device facts + offer + image bytes -> plan or refusal.

Like python-tuf's ``TrustedMetadataSet``, nothing here touches the network, the flash or a
clock: every function takes values and returns values (or raises otaforge errors that
:func:`refusal_for` turns into a reported :class:`Refusal`). The orchestrator
(:mod:`otaforge.agent.updater`) feeds it what it fetched and read, in this order:

1. :func:`plan_offer` when the server offers a release (before any download);
2. :func:`check_header` on the first bytes of the download, *before* the slot is erased
   (esp_https_ota's ``get_img_desc`` + ``esp_ota_check_image_validity`` + the examples'
   version and anti-rollback checks, reference §6.2, §6.5, §5);
3. :func:`check_image` on the complete image read back from the slot, before
   ``esp_ota_set_boot_partition`` (digest, ``image_load`` verification, Secure Boot v2).

And at boot, :func:`boot_step` says whether the running app must prove itself.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from enum import StrEnum

from otaforge.crypto.chip_policy import verify_for_chip
from otaforge.device.esp_err import CODES
from otaforge.errors import (
    BadMagicError,
    DigestMismatch,
    EspError,
    ImageRejected,
    RefusableError,
    RefusalCode,
    RollbackRejected,
)
from otaforge.formats.app_desc import APP_DESC_OFFSET, APP_DESC_SIZE, AppDesc, read_app_desc
from otaforge.formats.app_image import ESP_IMAGE_MAGIC, AppImage, ImageHeader
from otaforge.formats.chips import ChipSpec
from otaforge.formats.image_verify import check_chip, verify_image
from otaforge.formats.otadata import OtaImgState
from otaforge.formats.signature_block import signature_length
from otaforge.protocol.reports import SKIP_CODES, DeltaInfo

HEADER_PROBE_SIZE = 1024  # esp_https_ota IMAGE_HEADER_SIZE (v5.0+)
MIN_HEADER_BYTES = APP_DESC_OFFSET + APP_DESC_SIZE  # 0x120: image + segment header + app desc
ESP_ERR_OTA_VALIDATE_FAILED = CODES["ESP_ERR_OTA_VALIDATE_FAILED"]
ESP_ERR_OTA_SMALL_SEC_VER = CODES["ESP_ERR_OTA_SMALL_SEC_VER"]


@dataclass(frozen=True)
class DeviceFacts:
    """What the agent knows about the device it runs on.

    Attributes:
        chip: the device's chip.
        chip_rev: chip revision, major*100+minor.
        running_version: ``esp_app_desc_t.version`` of the running app.
        slot_size: size of the partition the update would be written to.
        efuse_secure_version: the SECURE_VERSION eFuse value.
        anti_rollback: ``CONFIG_BOOTLOADER_APP_ANTI_ROLLBACK``.
        key_digests: Secure Boot v2 public-key digests burned into eFuse, by slot index
            (``b""`` for an empty slot, so that ``revoked`` indices line up).
        revoked: indices of revoked key digests.
        require_signature: images must carry a Secure Boot v2 signature by a burned key.
        last_invalid_version: version in ``esp_ota_get_last_invalid_partition()``, if any.
    """

    chip: ChipSpec
    running_version: str
    slot_size: int
    chip_rev: int = 0
    efuse_secure_version: int = 0
    anti_rollback: bool = False
    key_digests: tuple[bytes, ...] = ()
    revoked: frozenset[int] = field(default_factory=frozenset)
    require_signature: bool = False
    last_invalid_version: str | None = None


@dataclass(frozen=True)
class Offer:
    """A release the server offers this device.

    Attributes:
        version: the release's app version.
        sha256: hex SHA-256 of the exact file to download.
        size: its length in bytes.
        url: absolute download URL.
        secure_version: the release's secure_version, when the server says.
        deployment: the server's id for this rollout step, echoed back in reports.
        delta: a patch from the running image the server also offers (the full image at
            ``url`` is the fallback).
    """

    version: str
    sha256: str
    size: int
    url: str
    secure_version: int | None = None
    deployment: str | None = None
    delta: DeltaInfo | None = None


@dataclass(frozen=True)
class UpdatePlan:
    """Go ahead: download ``offer`` into the inactive slot."""

    offer: Offer

    def __bool__(self) -> bool:
        return True


@dataclass(frozen=True)
class Refusal:
    """Do not install; tell the server why. ``skip`` marks benign refusals (same version).

    Attributes:
        code: machine-readable reason.
        reason: human-readable reason (what the bootloader/esp_https_ota would log).
        skip: True when nothing is wrong with the image, it is just not needed.
    """

    code: RefusalCode
    reason: str
    skip: bool = False

    def __bool__(self) -> bool:
        return False


def plan_offer(facts: DeviceFacts, offer: Offer) -> UpdatePlan | Refusal:
    """Decide from the offer alone whether to start downloading.

    Args:
        facts: the device.
        offer: what the server offers.

    Returns:
        An :class:`UpdatePlan`, or a :class:`Refusal` (same version, known-bad version,
        lower secure_version, larger than the slot).
    """
    if offer.version == facts.running_version:
        return Refusal(RefusalCode.SAME_VERSION, f"version {offer.version} is already running",
                       skip=True)
    if facts.last_invalid_version and offer.version == facts.last_invalid_version:
        return Refusal(RefusalCode.KNOWN_BAD, f"version {offer.version} already failed on this "
                       "device (it is the last invalid partition)", skip=True)
    if (facts.anti_rollback and offer.secure_version is not None
            and offer.secure_version < facts.efuse_secure_version):
        return Refusal(RefusalCode.SECURE_VERSION, _secver_reason(offer.secure_version, facts))
    if offer.size > facts.slot_size:
        return Refusal(RefusalCode.TOO_LARGE, _size_reason(offer.size, facts.slot_size))
    return UpdatePlan(offer)


def check_header(facts: DeviceFacts, prefix: bytes, image_length: int | None,
                 offer: Offer | None = None) -> AppDesc:
    """Check the first bytes of a download before anything is erased.

    Covers magic, chip id and revision (``esp_ota_check_image_validity``), the app
    description, a version different from the running one, secure_version not below the
    eFuse, and the announced size within the slot.

    Args:
        facts: the device.
        prefix: the first bytes received (esp_https_ota reads 1024).
        image_length: the size the server announced (Content-Length/Content-Range), if any.
        offer: the offer being downloaded, to cross-check its version.

    Returns:
        The image's app description.

    Raises:
        BadMagicError / TruncatedError: not (enough of) an app image.
        ImageRejected: wrong chip or revision, too large, version mismatch.
        DigestMismatch: the announced size is not the offer's.
        RollbackRejected: same version as running, or secure_version below the eFuse.
    """
    header = ImageHeader.from_bytes(prefix)
    if header.magic != ESP_IMAGE_MAGIC:
        raise BadMagicError(_magic_reason(prefix))
    check_chip(header, facts.chip, facts.chip_rev)
    desc = read_app_desc(prefix)
    if image_length is not None and image_length > facts.slot_size:
        raise ImageRejected(_size_reason(image_length, facts.slot_size),
                            code=RefusalCode.TOO_LARGE)
    if offer is not None and image_length is not None and image_length != offer.size:
        raise DigestMismatch(f"server announces {image_length} bytes, the release has "
                             f"{offer.size}")
    if desc.version == facts.running_version:
        raise RollbackRejected(f"version {desc.version} is the running version: nothing to do",
                               code=RefusalCode.SAME_VERSION)
    if offer is not None and desc.version != offer.version:
        raise ImageRejected(f"image version {desc.version!r} is not the offered "
                            f"{offer.version!r}", code=RefusalCode.VERSION_MISMATCH)
    if facts.anti_rollback and desc.secure_version < facts.efuse_secure_version:
        raise RollbackRejected(_secver_reason(desc.secure_version, facts))
    return desc


def check_image(facts: DeviceFacts, image: bytes, offer: Offer | None = None) -> AppImage:
    """Check the complete downloaded image before it is made bootable.

    Args:
        facts: the device.
        image: the exact bytes written to the slot (``image_length`` of them).
        offer: the offer, whose SHA-256 and size the bytes must match.

    Returns:
        The parsed, verified image.

    Raises:
        DigestMismatch: size or SHA-256 differs from the offer.
        FormatError / ImageRejected: ``image_load`` verification failed.
        SignatureInvalid: signature required and missing or not by a burned, unrevoked key.
    """
    if offer is not None:
        if len(image) != offer.size:
            raise DigestMismatch(f"downloaded {len(image)} bytes, the release has {offer.size}")
        digest = hashlib.sha256(image).hexdigest()
        if digest != offer.sha256.lower():
            raise DigestMismatch(f"image SHA-256 {digest[:16]}... is not the release's "
                                 f"{offer.sha256[:16]}...")
    sig_len = 0
    if facts.require_signature:
        parsed = AppImage.from_bytes(image, check=False)
        sig_len = signature_length("v2", parsed.image_len)
    app = verify_image(image, chip=facts.chip, chip_rev=facts.chip_rev,
                       partition_size=facts.slot_size, sig_len=sig_len)
    if facts.require_signature:
        verify_for_chip(image, facts.chip, digests=list(facts.key_digests),
                        revoked=facts.revoked, image_len=app.image_len, version=2)
    return app


def refusal_for(err: RefusableError) -> Refusal:
    """The refusal reported to the server for an error raised while checking an image.

    The code is the one the error carries (:attr:`RefusableError.code`), never read from its
    message.
    """
    return Refusal(err.code, str(err), skip=err.code in SKIP_CODES)


def refusal_for_device(err: EspError) -> Refusal | None:
    """The refusal behind a device-side rejection (``esp_ota_end`` / ``set_boot_partition``).

    Returns:
        A refusal for image-validation and anti-rollback errors, None for other errors.
    """
    if err.code == ESP_ERR_OTA_SMALL_SEC_VER:
        return Refusal(RefusalCode.SECURE_VERSION, str(err))
    if err.code == ESP_ERR_OTA_VALIDATE_FAILED:
        code = err.cause.code if err.cause is not None else RefusalCode.CORRUPT
        return Refusal(code, str(err), skip=code in SKIP_CODES)
    return None


class BootStep(StrEnum):
    """What the agent must do first after a boot."""

    SELF_TEST = "self_test"  # PENDING_VERIFY: prove yourself, then confirm or roll back
    NOTHING = "nothing"
    NO_ROLLBACK_BOOTLOADER = "no_rollback_bootloader"  # new app in NEW/UNDEFINED: cannot verify


def boot_step(state: OtaImgState | None, just_updated: bool) -> BootStep:
    """The boot-time action for the running app's otadata state.

    Args:
        state: ``esp_ota_get_state_partition(running)``, None for the factory app.
        just_updated: the agent installed the running app and has not confirmed it yet.
    """
    if state == OtaImgState.PENDING_VERIFY:
        return BootStep.SELF_TEST
    if just_updated and state in (OtaImgState.NEW, OtaImgState.UNDEFINED):
        return BootStep.NO_ROLLBACK_BOOTLOADER
    return BootStep.NOTHING


def _magic_reason(prefix: bytes) -> str:
    first = f"0x{prefix[0]:02x}" if prefix else "nothing"
    hint = " (an HTML page or text, not a firmware image)" if prefix[:1] in (b"<", b"{") else ""
    return f"invalid magic byte (expected 0xE9, saw {first}){hint}"


def _size_reason(size: int, slot: int) -> str:
    return f"image of {size} bytes doesn't fit in the {slot}-byte slot"


def _secver_reason(secure_version: int, facts: DeviceFacts) -> str:
    return (f"secure_version {secure_version} is below the eFuse secure version "
            f"{facts.efuse_secure_version} (anti-rollback)")
