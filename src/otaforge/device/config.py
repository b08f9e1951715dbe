"""The emulated device's build configuration: one ``sdkconfig`` for its bootloader and its app.

:class:`DeviceConfig` is the one configuration a device is made with. Its fields carry the
Kconfig names (``CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE`` is ``rollback`` everywhere). The
bootloader's decision (:func:`otaforge.device.bootloader.select_boot`) takes its own inputs as a
:class:`BootConfig` -- the options the bootloader was built with plus what it reads from the
chip (flash size, chip revision) and bootloader-only options (v1 signed boot, factory-reset data
labels) -- made from a device's configuration by :meth:`DeviceConfig.boot_config`, with the
same field names. (``flash inspect`` builds a :class:`BootConfig` directly: it has no app.)
"""

from __future__ import annotations

from dataclasses import dataclass

from otaforge.formats.chips import ChipSpec


@dataclass(frozen=True)
class BootConfig:
    """The bootloader's build configuration (fixed at manufacturing; OTA never changes it).

    Attributes:
        chip: the target chip (``CONFIG_IDF_TARGET``): image chip id must match.
        chip_rev: the chip's full revision (major*100+minor) for min/max revision checks;
            None: unknown -- the image's own minimum is taken as met (an image whose maximum
            is below its minimum still fails, as it does on every chip).
        rollback: ``CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE``.
        anti_rollback: ``CONFIG_BOOTLOADER_APP_ANTI_ROLLBACK``.
        secure_boot_v2: ``CONFIG_SECURE_BOOT_V2_ENABLED``: signatures checked against eFuse.
        signed_app_v1: ``CONFIG_SECURE_SIGNED_ON_BOOT`` with the v1 ECDSA scheme.
        factory_reset: ``CONFIG_BOOTLOADER_FACTORY_RESET`` (long hold on the reset pin).
        app_test: ``CONFIG_BOOTLOADER_APP_TEST`` (long hold on the test pin).
        partition_table_offset: ``CONFIG_PARTITION_TABLE_OFFSET``.
        flash_size: the flash size the bootloader header declares (``g_rom_flashchip.chip_size``);
            partitions beyond it fail the table check. None: not checked.
        data_factory_reset: ``CONFIG_BOOTLOADER_DATA_FACTORY_RESET``: data partition labels
            erased on factory reset (comma or space separated).
        ota_data_erase: ``CONFIG_BOOTLOADER_OTA_DATA_ERASE``: factory reset also erases otadata
            (Kconfig default is n; otaforge's devices enable it so a reset boots factory).
        v1_public_key: the ECDSA P-256 key embedded in the bootloader for ``signed_app_v1``
            (64 raw bytes X||Y, or PEM).
        efuse_blk_rev: the chip's eFuse block revision (major*100+minor) that non-ESP32 chips
            check against the app description; None: not checked.
    """

    chip: ChipSpec
    chip_rev: int | None = 0
    rollback: bool = False
    anti_rollback: bool = False
    secure_boot_v2: bool = False
    signed_app_v1: bool = False
    factory_reset: bool = False
    app_test: bool = False
    partition_table_offset: int = 0x8000
    flash_size: int | None = None
    data_factory_reset: str = "nvs"
    ota_data_erase: bool = True
    v1_public_key: bytes | None = None
    efuse_blk_rev: int | None = None

    @property
    def checks_signature(self) -> bool:
        """``SECURE_BOOT_CHECK_SIGNATURE`` of a bootloader build (signatures checked on boot)."""
        return self.secure_boot_v2 or self.signed_app_v1


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
