"""The ``esp_ota_*``, NVS and task-watchdog calls of a firmware session."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from otaforge.formats.fw_frame import Field, FwOp, Request
from otaforge.formats.partition_table import PartitionEntry

if TYPE_CHECKING:
    from otaforge.firmware.serve import FirmwareSession

Reply = tuple[int, tuple[Field, ...]]
Handlers = dict[int, Callable[[Request], Reply]]
OK: Reply = (0, ())


def ota_handlers(s: FirmwareSession) -> Handlers:
    """``esp_ota_*`` over the device's OtaOps (partitions travel as flash addresses)."""
    ota = s.ota

    def begin(r: Request) -> Reply:
        return 0, (ota.esp_ota_begin(s.partition_at(r.int_at(0)), r.int_at(1)),)

    def resume(r: Request) -> Reply:
        return 0, (ota.esp_ota_resume(s.partition_at(r.int_at(0)), r.int_at(1), r.int_at(2)),)

    def write(r: Request) -> Reply:
        ota.esp_ota_write(r.int_at(0), r.bytes_at(1))
        return OK

    def write_offset(r: Request) -> Reply:
        ota.esp_ota_write_with_offset(r.int_at(0), r.bytes_at(1), r.int_at(2))
        return OK

    def set_boot(r: Request) -> Reply:
        ota.esp_ota_set_boot_partition(s.partition_at(r.int_at(0)))
        return OK

    def state(r: Request) -> Reply:
        return 0, (int(ota.esp_ota_get_state_partition(s.partition_at(r.int_at(0)))),)

    def desc(r: Request) -> Reply:
        return 0, (ota.esp_ota_get_partition_description(s.partition_at(r.int_at(0))).to_bytes(),)

    def next_update(r: Request) -> Reply:
        return maybe(ota.esp_ota_get_next_update_partition(s.partition_at(r.int_at(0))))

    def mark_invalid(r: Request) -> Reply:
        ota.esp_ota_mark_app_invalid_rollback()
        s._marked_invalid = True
        return OK

    def maybe(found: PartitionEntry | None) -> Reply:
        return (0, (s.address_of(found),)) if found is not None else (-1, ())

    def invalidate(r: Request) -> Reply:
        return OK if ota.esp_ota_invalidate_inactive_ota_data_slot() else (-1, ())

    def with_int(call: Callable[[int], None]) -> Callable[[Request], Reply]:
        def handler(r: Request) -> Reply:
            call(r.int_at(0))
            return OK
        return handler

    def run(call: Callable[[], object]) -> Callable[[Request], Reply]:
        def handler(r: Request) -> Reply:
            call()
            return OK
        return handler

    return {
        FwOp.OTA_BEGIN: begin, FwOp.OTA_RESUME: resume, FwOp.OTA_WRITE: write,
        FwOp.OTA_WRITE_OFFSET: write_offset,
        FwOp.OTA_END: with_int(ota.esp_ota_end), FwOp.OTA_ABORT: with_int(ota.esp_ota_abort),
        FwOp.OTA_SET_BOOT: set_boot,
        FwOp.OTA_GET_BOOT: lambda r: maybe(ota.esp_ota_get_boot_partition()),
        FwOp.OTA_NEXT_UPDATE: next_update, FwOp.OTA_GET_STATE: state, FwOp.OTA_GET_DESC: desc,
        FwOp.OTA_MARK_VALID: run(ota.esp_ota_mark_app_valid_cancel_rollback),
        FwOp.OTA_MARK_INVALID: mark_invalid,
        FwOp.OTA_ROLLBACK_POSSIBLE: lambda r: (0, (int(ota.esp_ota_check_rollback_is_possible()),)),
        FwOp.OTA_LAST_INVALID: lambda r: maybe(ota.esp_ota_get_last_invalid_partition()),
        FwOp.OTA_ERASE_LAST_BOOT: run(ota.esp_ota_erase_last_boot_app_partition),
        FwOp.OTA_INVALIDATE_INACTIVE: invalidate,
        FwOp.OTA_APP_COUNT: lambda r: (0, (ota.esp_ota_get_app_partition_count(),)),
        FwOp.OTA_REVOKE_KEY: with_int(ota.esp_ota_revoke_secure_boot_public_key),
    }


def nvs_handlers(s: FirmwareSession) -> Handlers:
    """``nvs_flash_*`` and ``nvs_*`` (partition label, namespace, key as strings)."""

    def init(r: Request) -> Reply:
        s.nvs_partition(r.str_at(0)).init()
        return OK

    def erase(r: Request) -> Reply:
        s.nvs_partition(r.str_at(0)).erase()
        return OK

    def open_ns(r: Request) -> Reply:
        s.nvs_partition(r.str_at(0)).open(r.str_at(1), r.int_at(2))
        return OK

    def set_value(r: Request) -> Reply:
        s.nvs_partition(r.str_at(0)).set(r.str_at(1), r.str_at(2), r.int_at(3), r.bytes_at(4))
        return OK

    def get_value(r: Request) -> Reply:
        vtype, value = s.nvs_partition(r.str_at(0)).get(r.str_at(1), r.str_at(2), r.int_at(3))
        return 0, (value, vtype)

    def erase_key(r: Request) -> Reply:
        s.nvs_partition(r.str_at(0)).erase_key(r.str_at(1), r.str_at(2))
        return OK

    def erase_ns(r: Request) -> Reply:
        s.nvs_partition(r.str_at(0)).erase_namespace(r.str_at(1))
        return OK

    return {FwOp.NVS_INIT: init, FwOp.NVS_ERASE_PARTITION: erase, FwOp.NVS_OPEN: open_ns,
            FwOp.NVS_SET: set_value, FwOp.NVS_GET: get_value, FwOp.NVS_ERASE_KEY: erase_key,
            FwOp.NVS_ERASE_NAMESPACE: erase_ns}


def wdt_handlers(s: FirmwareSession) -> Handlers:
    """``esp_task_wdt_*`` on the session's virtual-time watchdog."""
    wdt = s.config.watchdog

    def now() -> float:
        return s.clock.now()

    def init(r: Request) -> Reply:
        wdt.init(r.int_at(0), bool(r.int_at(1)), now())
        return OK

    def reconfigure(r: Request) -> Reply:
        wdt.reconfigure(r.int_at(0), bool(r.int_at(1)), now())
        return OK

    def add(r: Request) -> Reply:
        wdt.add(r.int_at(0), now())
        return OK

    def reset(r: Request) -> Reply:
        wdt.reset(r.int_at(0), now())
        return OK

    def delete(r: Request) -> Reply:
        wdt.delete(r.int_at(0))
        return OK

    def status(r: Request) -> Reply:
        wdt.status(r.int_at(0))
        return OK

    def deinit(r: Request) -> Reply:
        wdt.deinit()
        return OK

    return {FwOp.WDT_INIT: init, FwOp.WDT_RECONFIGURE: reconfigure, FwOp.WDT_DEINIT: deinit,
            FwOp.WDT_ADD: add, FwOp.WDT_RESET: reset, FwOp.WDT_DELETE: delete,
            FwOp.WDT_STATUS: status}
