"""What the emulator answers to each call of a firmware process (one boot, one session).

Flash reads/writes/erases go to the device's :class:`~otaforge.device.flash.Flash` (power cuts
fire there), ``esp_ota_*`` to its :class:`~otaforge.device.ota_ops.OtaOps`, eFuses to its
:class:`~otaforge.device.efuse.Efuses`, NVS to :class:`~otaforge.firmware.nvs_store.NvsPartition`,
HTTP to :class:`~otaforge.firmware.http_bridge.HttpBridge`, the watchdog and delays to the
device clock. A call that ends the boot raises :class:`SessionEnd`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field

from otaforge.device.emulator import BOOT_TIME_S, Clock
from otaforge.device.esp_err import OTA_SIZE_UNKNOWN, raise_esp
from otaforge.device.flash import SECTOR_SIZE, Flash
from otaforge.device.ota_ops import OtaOps
from otaforge.device.ota_partitions import read_partition_desc
from otaforge.errors import DeviceError, EspError, FormatError
from otaforge.firmware.http_bridge import HttpBridge, parse_headers
from otaforge.firmware.nvs_store import NvsPartition
from otaforge.firmware.serve_ops import nvs_handlers, ota_handlers, wdt_handlers
from otaforge.firmware.watchdog import TaskWatchdog
from otaforge.formats.app_desc import APP_DESC_SIZE
from otaforge.formats.app_image import app_image_length
from otaforge.formats.fw_frame import Field, FwOp, Request
from otaforge.formats.partition_table import PartitionEntry, PartitionTable

ESP_RST_POWERON, ESP_RST_SW, ESP_RST_PANIC, ESP_RST_TASK_WDT = 1, 3, 4, 6
ESP_FAIL = -1
NVS_DATA_SUBTYPE, DATA_TYPE = 0x02, 0x01

Reply = tuple[int, tuple[Field, ...]]


class SessionEnd(Exception):
    """The boot is over: ``kind`` is idle, restart, panic or watchdog."""

    def __init__(self, kind: str, detail: str = "") -> None:
        super().__init__(detail or kind)
        self.kind = kind
        self.detail = detail


@dataclass
class SessionConfig:
    """How the emulator treats this firmware.

    Attributes:
        idle_delay_s: a ``vTaskDelay`` at least this long, with no task on the watchdog,
            means the firmware is idle: the run stops there.
        watchdog: the TWDT as start-up left it.
        hosts: ``--host NAME=IP`` entries.
    """

    idle_delay_s: float = 30.0
    watchdog: TaskWatchdog = field(default_factory=TaskWatchdog)
    hosts: dict[str, str] = field(default_factory=dict)


class FirmwareSession:
    """The emulator's side of one boot of a firmware process."""

    def __init__(self, flash: Flash, table: PartitionTable, ota: OtaOps, clock: Clock,
                 running: PartitionEntry, reset_reason: int, config: SessionConfig,
                 console: Callable[[str], None]) -> None:
        self.flash, self.table, self.ota, self.clock = flash, table, ota, clock
        self.running, self.reset_reason, self.config = running, reset_reason, config
        self.console = console
        self.boot_start = clock.now() - BOOT_TIME_S  # the ROM and bootloader ran first
        self.http = HttpBridge(config.hosts)
        self.nvs: dict[str, NvsPartition] = {}
        self.last_op = 0
        self._handlers: dict[int, Callable[[Request], Reply]] = {
            FwOp.HELLO: self._hello, FwOp.DELAY: self._delay, FwOp.TIME: lambda r: (0, ()),
            FwOp.FLASH_READ: self._flash_read, FwOp.FLASH_WRITE: self._flash_write,
            FwOp.FLASH_ERASE: self._flash_erase,
            FwOp.EFUSE_SECURE_VERSION: lambda r: (0, (ota.checker.efuses.secure_version,)),
            FwOp.EFUSE_CHECK_SECURE_VERSION: lambda r: (
                0, (int(ota.checker.efuses.check_secure_version(r.int_at(0))),)),
            FwOp.EFUSE_UPDATE_SECURE_VERSION: self._efuse_update,
            FwOp.HTTP_REQUEST: self._http_request,
            FwOp.HTTP_READ: lambda r: (0, (self.http.read(r.int_at(0), r.int_at(1)),)),
            FwOp.HTTP_CLOSE: self._http_close,
        }
        self._handlers |= ota_handlers(self) | nvs_handlers(self) | wdt_handlers(self)

    # --- helpers ---------------------------------------------------------------------------

    def now_us(self) -> int:
        """Virtual microseconds since this boot started."""
        return int((self.clock.now() - self.boot_start) * 1_000_000)

    def partition_at(self, address: int) -> PartitionEntry | None:
        """The partition starting at ``address`` (C passes partitions by address)."""
        for part in self.table.entries:
            if part.offset == address:
                return part
        return None

    def address_of(self, part: PartitionEntry | None) -> int:
        """A partition as the C side receives it (-1: NULL)."""
        return part.offset if part is not None else -1

    # --- dispatch --------------------------------------------------------------------------

    def handle(self, request: Request) -> Reply:
        """Answer one call: (esp_err_t, fields).

        Raises:
            SessionEnd: the call ends the boot.
            PowerCut: a flash operation lost power (the whole power-on ends).
        """
        self.last_op = request.op
        if request.op == FwOp.EXIT:
            raise SessionEnd("idle", "app_main returned and no task is left")
        if request.op == FwOp.RESTART:
            rollback = self.last_restart_cause()
            raise SessionEnd("restart", rollback)
        if request.op == FwOp.PANIC:
            raise SessionEnd("panic", f"signal {request.int_at(0)}")
        handler = self._handlers.get(request.op)
        if handler is None:
            raise DeviceError(f"firmware called unknown emulator operation {request.op}")
        try:
            return handler(request)
        except EspError as err:
            return err.code, ()
        except FormatError as err:
            raise DeviceError(f"malformed firmware call {request.op}: {err}") from None

    def last_restart_cause(self) -> str:
        """Why ``esp_restart`` was called, as the device log shows it."""
        return "rollback restart" if self._marked_invalid else "software reset"

    _marked_invalid = False

    # --- operations ------------------------------------------------------------------------

    def _hello(self, request: Request) -> Reply:
        if request.int_at(0) != APP_DESC_SIZE:
            raise DeviceError("firmware's esp_app_desc_t is not 256 bytes")
        desc = read_partition_desc(self.flash, self.running)
        fields: list[Field] = [self.running.offset, desc.to_bytes() if desc else b"",
                               self.reset_reason, len(self.table.entries)]
        for part in self.table.entries:
            fields += [part.type, part.subtype, part.offset, part.size,
                       part.name.encode()[:16], int(part.encrypted), int(part.readonly)]
        return 0, tuple(fields)

    def _delay(self, request: Request) -> Reply:
        seconds = max(request.int_at(0), 0) / 1000
        wdt = self.config.watchdog
        target = self.clock.now() + seconds
        deadline = wdt.deadline()
        while deadline is not None and deadline <= target:
            self.clock.advance(max(deadline - self.clock.now(), 0))
            self._watchdog_fired()
            deadline = wdt.deadline()
        self.clock.advance(max(target - self.clock.now(), 0))
        if seconds >= self.config.idle_delay_s and not wdt.subscribers:
            raise SessionEnd("idle", f"sleeping {seconds:g} s")
        return 0, ()

    def _watchdog_fired(self) -> None:
        wdt = self.config.watchdog
        self.console(f"E ({self.now_us() // 1000}) task_wdt: Task watchdog got triggered. "
                     "The following tasks/users did not reset the watchdog in time:")
        if wdt.panic:
            self.console(f"E ({self.now_us() // 1000}) task_wdt: Aborting.")
            raise SessionEnd("watchdog", "task watchdog")
        wdt.restart_timers(self.clock.now())

    def check_watchdog(self) -> None:
        """After any call: a subscriber whose timeout passed fires the watchdog."""
        deadline = self.config.watchdog.deadline()
        if deadline is not None and deadline <= self.clock.now():
            self._watchdog_fired()

    def _flash_read(self, request: Request) -> Reply:
        addr, n = request.int_at(0), request.int_at(1)
        if n == -1:  # esp_partition_get_sha256
            return 0, (self._partition_sha256(addr),)
        if addr < 0 or n < 0 or addr + n > self.flash.size:
            raise_esp("ESP_ERR_INVALID_SIZE", f"read 0x{addr:x}+{n} outside the flash")
        return 0, (self.flash.read(addr, n),)

    def _partition_sha256(self, addr: int) -> bytes:
        part = self.partition_at(addr)
        if part is None:
            raise_esp("ESP_ERR_INVALID_ARG", f"no partition at 0x{addr:x}")
        data = self.flash.read(part.offset, part.size)
        if part.type == 0:
            length = app_image_length(data)
            if length is None:
                raise_esp("ESP_ERR_IMAGE_INVALID", f"{part.name}: no valid app image")
            data = data[:length]
        return hashlib.sha256(data).digest()

    def _flash_write(self, request: Request) -> Reply:
        addr, data = request.int_at(0), request.bytes_at(1)
        if addr < 0 or addr + len(data) > self.flash.size:
            raise_esp("ESP_ERR_INVALID_SIZE", f"write 0x{addr:x}+{len(data)} outside the flash")
        self.flash.program(addr, data)
        return 0, ()

    def _flash_erase(self, request: Request) -> Reply:
        addr, n = request.int_at(0), request.int_at(1)
        if addr % SECTOR_SIZE or n % SECTOR_SIZE or addr < 0 or addr + n > self.flash.size:
            raise_esp("ESP_ERR_INVALID_ARG", f"erase 0x{addr:x}+{n}: not whole sectors")
        self.flash.erase_range(addr, n)
        return 0, ()

    def _efuse_update(self, request: Request) -> Reply:
        self.ota.checker.efuses.burn_secure_version(request.int_at(0))
        return 0, ()

    def _http_request(self, request: Request) -> Reply:
        reply = self.http.request(request.str_at(0), request.str_at(1),
                                  parse_headers(request.str_at(2)), request.bytes_at(3),
                                  request.str_at(4), request.int_at(5), request.int_at(6),
                                  bool(request.int_at(7)))
        return 0, (reply.status, reply.content_length, reply.range_total, int(reply.chunked),
                   reply.stream, reply.headers, reply.url.encode())

    def _http_close(self, request: Request) -> Reply:
        self.http.close(request.int_at(0))
        return 0, ()

    def nvs_partition(self, label: str) -> NvsPartition:
        """The NVS store for the data/nvs partition ``label``.

        Raises:
            EspError: ESP_ERR_NOT_FOUND when there is no such partition.
        """
        store = self.nvs.get(label)
        if store is None:
            part = next((p for p in self.table.entries if p.name == label
                         and p.type == DATA_TYPE and p.subtype == NVS_DATA_SUBTYPE), None)
            if part is None:
                raise_esp("ESP_ERR_NOT_FOUND", f"no nvs partition labelled {label!r}")
            store = self.nvs[label] = NvsPartition(self.flash, part)
        return store

    def image_size_arg(self, value: int) -> int:
        """``size_t`` arguments arrive as signed i64; -1/-2 are OTA_SIZE_UNKNOWN/SEQUENTIAL."""
        return value & OTA_SIZE_UNKNOWN if value < 0 else value


__all__ = ["ESP_FAIL", "ESP_RST_PANIC", "ESP_RST_POWERON", "ESP_RST_SW", "ESP_RST_TASK_WDT",
           "FirmwareSession", "SessionConfig", "SessionEnd"]
