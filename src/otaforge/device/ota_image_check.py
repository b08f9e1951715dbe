"""``esp_image_verify`` as the app runs it: image checks plus the update signature policy.

:class:`ImageChecker` verifies an app partition (header, chip, segments, checksum, SHA-256, fit)
and, when the build checks signatures on update, its Secure Boot v2 signature: against the
eFuse key digests with hardware Secure Boot v2, or against the key that signed the running app
with ``CONFIG_SECURE_SIGNED_ON_UPDATE_NO_SECURE_BOOT``. Results are remembered in a
:class:`~otaforge.device.verify_cache.VerifyCache` under the image's bytes and every other
input (chip, revision, signature policy, key digests and revocations, the running app's bytes).
"""

from __future__ import annotations

from collections.abc import Hashable

from otaforge.crypto.chip_policy import verify_for_chip
from otaforge.crypto.sbv2 import verify_v2_against_running_app
from otaforge.device.config import DeviceConfig
from otaforge.device.efuse import Efuses
from otaforge.device.esp_err import raise_esp
from otaforge.device.flash import Flash
from otaforge.device.ota_partitions import OtaPartitions
from otaforge.device.verify_cache import VerifyCache, content_key_of
from otaforge.errors import FormatError, VerificationError
from otaforge.formats.app_image import AppImage
from otaforge.formats.chips import ChipSpec
from otaforge.formats.image_verify import verify_image
from otaforge.formats.partition_table import PartitionEntry
from otaforge.formats.signature_block import signature_length


class ImageChecker:
    """Verifies app partitions the way ``esp_ota_end`` and ``esp_ota_set_boot_partition`` do.

    Args:
        flash: the device flash.
        partitions: the app's partitions (for the running app).
        efuses: the chip's eFuses (its chip is the target chip).
        config: the build configuration (revision, signature policy).
        cache: remembers results (default: a fresh cache of its own).
    """

    __slots__ = ("_content_key", "cache", "config", "efuses", "flash", "partitions")

    def __init__(self, flash: Flash, partitions: OtaPartitions, efuses: Efuses,
                 config: DeviceConfig, cache: VerifyCache | None = None) -> None:
        self.flash = flash
        self.partitions = partitions
        self.efuses = efuses
        self.config = config
        self.cache = cache if cache is not None else VerifyCache()
        self._content_key = content_key_of(flash)

    @property
    def chip(self) -> ChipSpec:
        """The target chip (images must name it)."""
        return self.efuses.chip

    def verify(self, part: PartitionEntry) -> None:
        """``esp_image_verify(ESP_IMAGE_VERIFY)`` of an app partition, with signature checks.

        Raises:
            FormatError / VerificationError: the image must not boot (with the reason).
        """
        inputs = self._check_inputs(part)
        if inputs is None:
            error = self._verify_or_error(part)[0]
        else:
            error = self.cache.lookup_image("esp_image_verify", inputs, self._content_key, part,
                                            self._span, lambda: self._verify_or_error(part))
        if error is not None:
            raise error.with_traceback(None)

    def _span(self, image_len: int) -> int:
        if not self.config.checks_signature_on_update:
            return image_len
        return image_len + signature_length("v2", image_len)

    def ok(self, part: PartitionEntry) -> bool:
        """Whether ``part`` holds an image that verifies."""
        try:
            self.verify(part)
        except (FormatError, VerificationError):
            return False
        return True

    def validate(self, part: PartitionEntry) -> None:
        """Verify ``part`` as ``esp_ota_end`` / ``esp_ota_set_boot_partition`` do.

        Raises:
            EspError: ESP_ERR_OTA_VALIDATE_FAILED with the reason.
        """
        try:
            self.verify(part)
        except (FormatError, VerificationError) as err:
            raise_esp("ESP_ERR_OTA_VALIDATE_FAILED", f"{part.name}: {err}", cause=err)

    def _check_inputs(self, part: PartitionEntry) -> Hashable | None:
        """Everything besides the image's bytes that decides the result (None: no caching)."""
        cfg = self.config
        running_key: Hashable = None
        if cfg.signed_app and not cfg.secure_boot_v2:
            # the trusted key comes from the running app: its bytes are an input too
            running = self.partitions.running
            if running is not None:
                content = (self._content_key(running.offset, running.size)
                           if self._content_key is not None else None)
                if content is None:
                    return None
                running_key = (running, content)
        fuses = self.efuses
        return (part, self.chip, cfg.chip_rev, cfg.secure_boot_v2, cfg.signed_app,
                fuses.key_digest_slots, fuses.revoked, running_key)

    def _verify_or_error(
            self, part: PartitionEntry) -> tuple[FormatError | VerificationError | None,
                                                 int | None]:
        """(None, image length) when the image verifies, else (the error, None)."""
        try:
            image_len = self._verify(part)
        except (FormatError, VerificationError) as err:
            return err, None
        return None, image_len

    def _verify(self, part: PartitionEntry) -> int:
        """The image length of the image in ``part`` once it verified (raises otherwise)."""
        data = self.flash.read(part.offset, part.size)
        cfg = self.config
        image = verify_image(data, chip=self.chip, chip_rev=cfg.chip_rev,
                             partition_size=part.size, addr=part.offset)
        if not cfg.checks_signature_on_update:
            return image.image_len
        sig_len = signature_length("v2", image.image_len)
        if image.image_len + sig_len > part.size:
            raise VerificationError(
                f"Image length {image.image_len + sig_len} doesn't fit in partition length "
                f"{part.size}")
        if cfg.secure_boot_v2:
            digests = [d or b"" for d in self.efuses.key_digest_slots]
            verify_for_chip(data, self.chip, digests=digests, revoked=self.efuses.revoked,
                            image_len=image.image_len, version=2)
        else:
            running, running_len = self.running_app()
            verify_v2_against_running_app(data, running, new_image_len=image.image_len,
                                          running_image_len=running_len)
        return image.image_len

    def running_app(self) -> tuple[bytes, int | None]:
        """The running partition's bytes and app image length (``esp_image_get_metadata``).

        ``CONFIG_SECURE_SIGNED_ON_UPDATE_NO_SECURE_BOOT`` takes the trusted key from the running
        app: ``calculate_image_public_key_digests`` packs the digests of its valid blocks from
        index 0 and only index 0 is compared with the new image's block 0, so the key of the
        running app's first valid block is the one trusted (v5.x/v6.0+, secure_boot_signatures_
        app.c; IDF v4.x kept digests at their block index, so a broken block 0 trusted nothing).
        :func:`~otaforge.crypto.sbv2.verify_v2_against_running_app` applies exactly this rule.

        Raises:
            VerificationError: no app runs, or its metadata cannot be read.
        """
        running = self.partitions.running
        if running is None:
            raise VerificationError("Cannot get running partition (no running app)")
        data = self.flash.read(running.offset, running.size)
        try:
            return data, AppImage.from_bytes(data, check=False).image_len
        except FormatError as err:
            raise VerificationError(f"Error reading metadata from running app: {err}") from None
