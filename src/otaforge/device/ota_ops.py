"""The app-side OTA API of ESP-IDF (``esp_ota_ops.c``), with its names, rules and error codes.

:class:`OtaOps` is a facade with ESP-IDF's function names; it is composed of the parts that do
the work: :class:`~otaforge.device.ota_partitions.OtaPartitions` (which partition is which),
:class:`~otaforge.device.ota_writer.SlotWriter` (handles, erase and program),
:class:`~otaforge.device.ota_otadata.OtadataStore` (otadata entries),
:class:`~otaforge.device.ota_image_check.ImageChecker` (``esp_image_verify`` and signatures)
and :class:`~otaforge.device.ota_rollback.RollbackManager` (confirm, invalidate, roll back).
Every flash write goes through the :class:`~otaforge.device.flash.Flash` seam, so it is
counted and can be cut. otadata is written exactly as ``esp_ota_ops.c`` (v6.0+/master) writes
it: ``rewrite_ota_seq`` erases the 4 KiB sector, then programs the 32-byte entry;
``esp_rewrite_ota_data`` picks the sector and seq (``compute_ota_seq_for_target_slot``; the
active sector is rewritten in place when it already points at the target slot). With
``CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE`` ``esp_ota_begin`` refuses a PENDING_VERIFY running app
and then invalidates the inactive otadata sector (v5.5+).

Older ESP-IDF differs: v4.x-v5.4 always write the *other* sector in ``set_boot_partition``
(re-selecting the active slot writes an equal seq there; the tie resolves to sector 0) and never
invalidate the inactive sector in ``esp_ota_begin``; ``ESP_ERR_OTA_ALREADY_IN_PROGRESS`` for a
second handle on one partition is v6.1+.
``esp_ota_resume`` (v5.5+) opens a handle whose write position is the offset already written,
erasing nothing (a power-cut download goes on without rewriting what is on flash).

Errors are :class:`~otaforge.errors.EspError` with the ESP-IDF code and name; functions that
return ``NULL`` or ``false`` in C return None or False here.
"""

from __future__ import annotations

from collections.abc import Callable

from otaforge.device.config import DeviceConfig
from otaforge.device.efuse import Efuses
from otaforge.device.esp_err import OTA_SIZE_UNKNOWN, OTA_WITH_SEQUENTIAL_WRITES, raise_esp
from otaforge.device.flash import Flash
from otaforge.device.ota_image_check import ImageChecker
from otaforge.device.ota_otadata import OtadataStore
from otaforge.device.ota_partitions import OtaPartitions, partition_description
from otaforge.device.ota_rollback import RollbackManager
from otaforge.device.ota_writer import SlotWriter
from otaforge.device.verify_cache import VerifyCache
from otaforge.errors import EspError
from otaforge.formats.app_desc import AppDesc
from otaforge.formats.otadata import OtaImgState
from otaforge.formats.partition_table import APP_TYPE, FACTORY, PartitionEntry, PartitionTable


class OtaOps:
    """``esp_ota_*`` over one device's flash, partition table, eFuses and running partition.

    Args:
        flash: the device flash.
        table: the partition table the app was built with (read from flash at boot).
        efuses: the chip's eFuses; their chip is the target chip images must name.
        config: the device's build configuration.
        running: the partition the current app runs from (set by the device at boot).
        restart: called by ``esp_ota_mark_app_invalid_rollback_and_reboot`` (``esp_restart``).
        cache: remembers image verifications (default: one of its own).

    Attributes:
        partitions, writer, otadata, checker, rollback: the composed parts.
    """

    __slots__ = (
        "checker",
        "config",
        "flash",
        "otadata",
        "partitions",
        "restart",
        "rollback",
        "writer",
    )

    def __init__(self, flash: Flash, table: PartitionTable, efuses: Efuses,
                 config: DeviceConfig, running: PartitionEntry | None = None,
                 restart: Callable[[], None] | None = None,
                 cache: VerifyCache | None = None) -> None:
        self.flash = flash
        self.config = config
        self.restart = restart
        self.partitions = OtaPartitions(table, running)
        self.writer = SlotWriter(flash)
        self.otadata = OtadataStore(flash, self.partitions, config.rollback)
        self.checker = ImageChecker(flash, self.partitions, efuses, config, cache)
        self.rollback = RollbackManager(flash, self.partitions, self.otadata, self.checker,
                                        efuses, config)

    @property
    def running(self) -> PartitionEntry | None:
        """The partition the running app was loaded from."""
        return self.partitions.running

    # --- writing an image -----------------------------------------------------------------

    def esp_ota_begin(self, partition: PartitionEntry | None, image_size: int = 0) -> int:
        """Start writing ``partition``; erase it (all, ``image_size`` rounded up, or lazily).

        Args:
            partition: the OTA slot (``esp_ota_get_next_update_partition``).
            image_size: bytes to erase up front; 0 or OTA_SIZE_UNKNOWN erase the whole slot,
                OTA_WITH_SEQUENTIAL_WRITES erases sector by sector while writing.

        Returns:
            The handle.

        Raises:
            EspError: INVALID_ARG (not an OTA app slot), NOT_FOUND (not in the table),
                OTA_PARTITION_CONFLICT (the running partition), OTA_ROLLBACK_INVALID_STATE
                (running app PENDING_VERIFY, rollback builds), OTA_ALREADY_IN_PROGRESS,
                INVALID_SIZE (larger than the partition).
        """
        part = self.partitions.verify(partition)
        if part.type == APP_TYPE:
            if not part.is_ota_slot:
                raise_esp("ESP_ERR_INVALID_ARG", f"{part.name} is not an OTA app partition")
            if part == self.running:
                raise_esp("ESP_ERR_OTA_PARTITION_CONFLICT",
                          f"{part.name} is the running partition")
            if self.config.rollback and \
                    self.otadata.running_state() == OtaImgState.PENDING_VERIFY:
                raise_esp("ESP_ERR_OTA_ROLLBACK_INVALID_STATE",
                          "Running app has not confirmed state (ESP_OTA_IMG_PENDING_VERIFY)")
        self.writer.refuse_second_handle(part)
        if image_size != OTA_WITH_SEQUENTIAL_WRITES:
            size = part.size if image_size in (0, OTA_SIZE_UNKNOWN) else image_size
            self.writer.erase_for(part, image_size, size)
        handle = self.writer.open(part, image_size == OTA_WITH_SEQUENTIAL_WRITES)
        if self.config.rollback and part.is_ota_slot:
            self.esp_ota_invalidate_inactive_ota_data_slot()
        return handle

    def esp_ota_resume(self, partition: PartitionEntry | None, erase_size: int,
                       image_offset: int) -> int:
        """Continue an interrupted write of ``partition`` at ``image_offset`` (v5.5+).

        Nothing is erased here: the first ``image_offset`` bytes are taken as already written.
        With ``erase_size`` OTA_WITH_SEQUENTIAL_WRITES, ``esp_ota_write`` goes on erasing sector
        by sector from ``image_offset`` (the sector holding an unaligned offset is not erased
        again); any other value means the slot was erased by the interrupted ``esp_ota_begin``.
        Unlike ``esp_ota_begin`` there is no PENDING_VERIFY check and the inactive otadata
        sector is left alone (esp_ota_ops.c). Two handles on one partition are refused as in
        ``esp_ota_begin`` (v6.1-beta1+ rule of this emulator).

        Args:
            partition: the OTA slot being written.
            erase_size: OTA_WITH_SEQUENTIAL_WRITES to keep erasing while writing, else no erase.
            image_offset: bytes of the image already written (the next write goes there).

        Returns:
            The handle; ``esp_ota_end`` verifies the whole image as after ``esp_ota_begin``.

        Raises:
            EspError: INVALID_ARG (NULL, offset negative or past the partition end, not an OTA
                app slot), NOT_FOUND (not in the table), OTA_PARTITION_CONFLICT (the running
                partition), OTA_ALREADY_IN_PROGRESS.
        """
        if partition is None:
            raise_esp("ESP_ERR_INVALID_ARG", "partition is NULL")
        if not 0 <= image_offset <= partition.size:
            raise_esp("ESP_ERR_INVALID_ARG",
                      f"image_offset {image_offset} is outside {partition.name} "
                      f"({partition.size} bytes)")
        part = self.partitions.verify(partition)
        if part.type == APP_TYPE and not part.is_ota_slot:
            raise_esp("ESP_ERR_INVALID_ARG", f"{part.name} is not an OTA app partition")
        if part == self.running:
            raise_esp("ESP_ERR_OTA_PARTITION_CONFLICT", f"{part.name} is the running partition")
        self.writer.refuse_second_handle(part)
        return self.writer.open(part, erase_size == OTA_WITH_SEQUENTIAL_WRITES, image_offset)

    def esp_ota_write(self, handle: int, data: bytes) -> None:
        """Append ``data`` to the image (sequential); erase sectors first when lazily erasing.

        Raises:
            EspError: INVALID_ARG (unknown handle), OTA_VALIDATE_FAILED (first byte not 0xE9),
                INVALID_SIZE (past the end of the partition).
        """
        self.writer.append(handle, data)

    def esp_ota_write_with_offset(self, handle: int, data: bytes, offset: int) -> None:
        """Write ``data`` at ``offset`` of a pre-erased partition (non-sequential begin).

        Raises:
            EspError: INVALID_ARG (unknown handle), INVALID_STATE (lazy-erase handle: C asserts).
        """
        self.writer.write_at(handle, data, offset)

    def esp_ota_abort(self, handle: int) -> None:
        """Free the handle (nothing is erased). Raises EspError NOT_FOUND if unknown."""
        self.writer.get(handle, "ESP_ERR_NOT_FOUND")
        self.writer.close(handle)

    def esp_ota_end(self, handle: int) -> None:
        """Finish: verify the written image (and signature when configured); free the handle.

        Raises:
            EspError: NOT_FOUND (unknown handle), INVALID_ARG (nothing written),
                OTA_VALIDATE_FAILED (image or signature does not verify).
        """
        entry = self.writer.get(handle, "ESP_ERR_NOT_FOUND")
        try:
            if entry.wrote_size == 0:
                raise_esp("ESP_ERR_INVALID_ARG", "esp_ota_end: nothing was written")
            if entry.part.type == APP_TYPE:
                self.checker.validate(entry.part)
        finally:
            self.writer.close(handle)

    # --- boot selection -------------------------------------------------------------------

    def esp_ota_set_boot_partition(self, partition: PartitionEntry | None) -> None:
        """Make ``partition`` boot next (verifying it first).

        Factory: erase the whole otadata. OTA slot: with anti-rollback a lower secure_version
        erases the partition and fails; else rewrite otadata (erase sector, write entry).

        Raises:
            EspError: INVALID_ARG, OTA_VALIDATE_FAILED, NOT_FOUND (no otadata / no app desc),
                OTA_SMALL_SEC_VER.
        """
        if partition is None:
            raise_esp("ESP_ERR_INVALID_ARG", "partition is NULL")
        self.checker.validate(partition)
        if partition.type != APP_TYPE:
            raise_esp("ESP_ERR_INVALID_ARG", f"{partition.name} is not an app partition")
        if partition.subtype == FACTORY:
            self.otadata.erase_all()
            return
        if self.config.anti_rollback:
            desc = partition_description(self.flash, partition)
            efuses = self.checker.efuses
            if not efuses.check_secure_version(desc.secure_version):
                self.flash.erase_range(partition.offset, partition.size)
                raise_esp("ESP_ERR_OTA_SMALL_SEC_VER",
                          f"New firmware security version is less than eFuse programmed, "
                          f"{desc.secure_version} < {efuses.secure_version}; "
                          f"{partition.name} was erased")
        self.otadata.select_slot(partition.subtype)

    def esp_ota_get_boot_partition(self) -> PartitionEntry | None:
        """The partition otadata selects for the next boot (None without otadata)."""
        return self.otadata.boot_partition()

    def esp_ota_get_running_partition(self) -> PartitionEntry | None:
        """The partition the running app was loaded from."""
        return self.running

    def esp_ota_get_next_update_partition(
            self, start: PartitionEntry | None = None) -> PartitionEntry | None:
        """The OTA slot after ``start`` (C: ``start_from``; default: the running partition) in
        subtype order, else the first OTA slot."""
        return self.partitions.next_update(start)

    def esp_ota_get_app_partition_count(self) -> int:
        """Number of ota_N partitions counted from ota_0 while they exist (contiguously)."""
        return self.partitions.app_count()

    def esp_ota_get_state_partition(self, partition: PartitionEntry | None) -> int:
        """The otadata state of an OTA slot (first entry, by index, whose seq maps to it).

        Raises:
            EspError: INVALID_ARG, NOT_SUPPORTED (not an OTA slot), NOT_FOUND (no entry).
        """
        return self.otadata.state_of(partition)

    def esp_ota_get_partition_description(self, partition: PartitionEntry | None) -> AppDesc:
        """The ``esp_app_desc_t`` at offset 0x20 of an app partition.

        Raises:
            EspError: INVALID_ARG, NOT_SUPPORTED (not an app), NOT_FOUND (no desc magic).
        """
        return partition_description(self.flash, partition)

    # --- rollback -------------------------------------------------------------------------

    def esp_ota_mark_app_valid_cancel_rollback(self) -> None:
        """Mark the active otadata entry VALID (and burn secure_version with anti-rollback).

        Raises:
            EspError: NOT_FOUND (no otadata), ESP_FAIL ("Running firmware is factory").
        """
        self.rollback.mark_running(valid=True)

    def esp_ota_mark_app_invalid_rollback(self) -> None:
        """Mark the active entry INVALID (v5.5+ variant without the restart).

        Raises:
            EspError: OTA_ROLLBACK_FAILED when nothing else can boot, ESP_FAIL for factory.
        """
        self.rollback.mark_running(valid=False)

    def esp_ota_mark_app_invalid_rollback_and_reboot(self) -> None:
        """Mark the active entry INVALID, then ``esp_restart()`` (the ``restart`` hook)."""
        self.rollback.mark_running(valid=False)
        if self.restart is not None:
            self.restart()

    def esp_ota_check_rollback_is_possible(self) -> bool:
        """Is there another bootable app (other valid entry's slot, or factory) to go back to?"""
        return self.rollback.rollback_is_possible()

    def esp_ota_get_last_invalid_partition(self) -> PartitionEntry | None:
        """The slot of the INVALID/ABORTED entry (lower seq if two), if its image verifies."""
        return self.rollback.last_invalid_partition()

    def esp_ota_erase_last_boot_app_partition(self) -> None:
        """Erase the previous app's partition and its otadata sector.

        Raises:
            EspError: ESP_FAIL when there is no previous app other than the running one.
        """
        self.otadata.erase_last_boot(skip_app_erase=False)

    def esp_ota_invalidate_inactive_ota_data_slot(self) -> bool:
        """Erase the inactive otadata sector if it points at a non-running slot (v5.5+).

        Returns:
            True when a sector was erased (ESP_OK), False otherwise (ESP_FAIL, ignored by
            ``esp_ota_begin``).
        """
        try:
            self.otadata.erase_last_boot(skip_app_erase=True)
        except EspError as err:
            if err.name != "ESP_FAIL":
                raise
            return False
        return True

    def esp_ota_revoke_secure_boot_public_key(self, index: int) -> None:
        """Revoke Secure Boot v2 key digest ``index`` once the running app verifies without it.

        Raises:
            EspError: ESP_FAIL (secure boot off, running app not VALID with rollback, or the
                running app is signed only with that key), ESP_ERR_INVALID_ARG (index not 0..2).
        """
        self.rollback.revoke_key(index)
