"""The emulated device's build configuration: one ``sdkconfig`` for its bootloader and its app.

:class:`DeviceConfig` is the one configuration a device is made with. Its fields carry the
Kconfig names (``CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE`` is ``rollback`` everywhere). The
bootloader's decision (:func:`otaforge.device.bootloader.select_boot`) takes its own inputs as a
:class:`~otaforge.device.boot_image.BootConfig` — the subset the bootloader was built with plus
what it reads from the chip (flash size, chip revision) and bootloader-only options (v1 signed
boot, factory-reset data labels) — made from a device's configuration by
:meth:`DeviceConfig.boot_config`, with the same field names.
"""

from __future__ import annotations

from dataclasses import dataclass

from otaforge.device.boot_image import BootConfig
from otaforge.formats.chips import ChipSpec


@dataclass(frozen=True)
class DeviceConfig:
    """Build configuration of the bootloader and app on an emulated device.

    Attributes:
        rollback: ``CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE`` in the app (and the bootloader,
            unless ``bootloader_rollback`` says otherwise): new otadata entries are NEW and
            must be confirmed.
        anti_rollback: ``CONFIG_BOOTLOADER_APP_ANTI_ROLLBACK``.
        secure_version_bits: ``CONFIG_BOOTLOADER_APP_SEC_VER_SIZE_EFUSE_FIELD`` (None: the
            chip's full width).
        secure_boot_v2: hardware Secure Boot v2 (bootloader and OTA check eFuse key digests).
        signed_app: ``CONFIG_SECURE_SIGNED_ON_UPDATE_NO_SECURE_BOOT`` (v2 scheme): the new
            image must be signed by the key that signed the running app.
        factory_reset: ``CONFIG_BOOTLOADER_FACTORY_RESET`` (a held pin boots factory).
        app_test: ``CONFIG_BOOTLOADER_APP_TEST``.
        chip_rev: chip revision (major*100+minor).
        partition_table_offset: ``CONFIG_PARTITION_TABLE_OFFSET``.
        bootloader_rollback: the bootloader's own rollback setting when it differs from the
            app's (an old bootloader in the field); None: same as ``rollback``.
        watchdog_timeout_s: ``CONFIG_ESP_TASK_WDT_TIMEOUT_S``.
        max_boots: boots per power-on before the device counts as stuck in a reset loop.
    """

    rollback: bool = True
    anti_rollback: bool = False
    secure_version_bits: int | None = None
    secure_boot_v2: bool = False
    signed_app: bool = False
    factory_reset: bool = False
    app_test: bool = False
    chip_rev: int = 0
    partition_table_offset: int = 0x8000
    bootloader_rollback: bool | None = None
    watchdog_timeout_s: float = 5.0
    max_boots: int = 8

    @property
    def checks_signature_on_update(self) -> bool:
        """Whether ``esp_image_verify`` checks a signature on update (hardware or signed app)."""
        return self.secure_boot_v2 or self.signed_app

    def boot_config(self, chip: ChipSpec, flash_size: int | None) -> BootConfig:
        """The bootloader's inputs on ``chip`` with ``flash_size`` bytes of flash."""
        rollback = self.rollback if self.bootloader_rollback is None else self.bootloader_rollback
        return BootConfig(chip=chip, chip_rev=self.chip_rev, rollback=rollback,
                          anti_rollback=self.anti_rollback, secure_boot_v2=self.secure_boot_v2,
                          factory_reset=self.factory_reset, app_test=self.app_test,
                          partition_table_offset=self.partition_table_offset,
                          flash_size=flash_size)
