"""NVS for firmware on the emulated device: keys kept in the nvs partition of its flash.

The layout is :mod:`otaforge.formats.nvs_log` (two halves, an append-only log with CRCs). Every
``nvs_set_*`` is an append (a flash program the power-cut machinery can cut); a full half is
compacted into the other one, whose header is programmed last, so a cut at any point leaves
either the old or the new state.
"""

from __future__ import annotations

from otaforge.device.esp_err import raise_esp
from otaforge.device.flash import Flash
from otaforge.errors import EspError, FormatError
from otaforge.formats.nvs_log import (
    HALF_HEADER_SIZE,
    NvsRecord,
    RecordKind,
    half_header,
    is_erased,
    parse_half_header,
    parse_records,
)
from otaforge.formats.partition_table import PartitionEntry
from otaforge.formats.sector import SECTOR_SIZE

TYPE_ANY = 0xFF
NVS_READONLY = 0
KEY_MAX = 15

Value = tuple[int, bytes]


class NvsPartition:
    """One nvs partition's keys, loaded from flash by :meth:`init`."""

    def __init__(self, flash: Flash, part: PartitionEntry) -> None:
        self.flash = flash
        self.part = part
        sectors = part.size // SECTOR_SIZE
        self.half_size = (sectors // 2) * SECTOR_SIZE
        self.initialized = False
        self.values: dict[tuple[str, str], Value] = {}
        self.namespaces: set[str] = set()
        self._live = 0
        self._generation = 0
        self._next = HALF_HEADER_SIZE

    def _half_addr(self, half: int) -> int:
        return self.part.offset + half * self.half_size

    def init(self) -> None:
        """``nvs_flash_init``: find the live half (format an erased partition).

        Raises:
            EspError: ESP_ERR_NVS_NO_FREE_PAGES (not this layout: erase it first),
                ESP_ERR_NVS_NOT_ENOUGH_SPACE (a partition under two sectors).
        """
        if self.half_size == 0:
            raise_esp("ESP_ERR_NVS_NOT_ENOUGH_SPACE", f"{self.part.name} is under 8 KiB")
        halves = [self.flash.read(self._half_addr(h), self.half_size) for h in (0, 1)]
        gens = [parse_half_header(data[:HALF_HEADER_SIZE]) for data in halves]
        self.values.clear()
        self.namespaces.clear()
        if gens[0] is None and gens[1] is None:
            if not all(is_erased(data) for data in halves):
                raise_esp("ESP_ERR_NVS_NO_FREE_PAGES",
                          f"{self.part.name} holds data otaforge's NVS cannot read; erase it "
                          "(nvs_flash_erase) and init again")
            self.flash.program(self._half_addr(0), half_header(1))
            self._live, self._generation, self._next = 0, 1, HALF_HEADER_SIZE
        else:
            live = 0 if (gens[1] is None or (gens[0] or 0) > gens[1]) else 1
            self._live, self._generation = live, int(gens[live] or 0)
            records, self._next = parse_records(halves[live])
            for record in records:
                self._apply(record)
        self.initialized = True

    def erase(self) -> None:
        """``nvs_flash_erase``: erase the whole partition (init must run again)."""
        self.flash.erase_range(self.part.offset, self.part.size)
        self.initialized = False
        self.values.clear()
        self.namespaces.clear()

    def _apply(self, record: NvsRecord) -> None:
        if record.kind == RecordKind.NAMESPACE:
            self.namespaces.add(record.namespace)
        elif record.kind == RecordKind.SET:
            self.namespaces.add(record.namespace)
            self.values[(record.namespace, record.key)] = (record.type, record.value)
        elif record.kind == RecordKind.ERASE_KEY:
            self.values.pop((record.namespace, record.key), None)
        else:
            for key in [k for k in self.values if k[0] == record.namespace]:
                del self.values[key]

    def _require_init(self) -> None:
        if not self.initialized:
            raise_esp("ESP_ERR_NVS_NOT_INITIALIZED", "call nvs_flash_init first")

    def _append(self, record: NvsRecord) -> None:
        try:
            raw = record.to_bytes()
        except FormatError as err:
            raise_esp("ESP_ERR_NVS_VALUE_TOO_LONG", str(err))
        if self._next + len(raw) > self.half_size:
            self._compact(extra=len(raw))
        self.flash.program(self._half_addr(self._live) + self._next, raw)
        self._next += len(raw)
        self._apply(record)

    def _state_records(self) -> list[NvsRecord]:
        out = [NvsRecord(RecordKind.NAMESPACE, ns) for ns in sorted(self.namespaces)]
        out += [NvsRecord(RecordKind.SET, ns, key, t, v)
                for (ns, key), (t, v) in sorted(self.values.items())]
        return out

    def _compact(self, extra: int) -> None:
        blob = b"".join(r.to_bytes() for r in self._state_records())
        if HALF_HEADER_SIZE + len(blob) + extra > self.half_size:
            raise_esp("ESP_ERR_NVS_NOT_ENOUGH_SPACE", f"{self.part.name} is full")
        other = 1 - self._live
        addr = self._half_addr(other)
        self.flash.erase_range(addr, self.half_size)
        if blob:
            self.flash.program(addr + HALF_HEADER_SIZE, blob)
        self.flash.program(addr, half_header(self._generation + 1))
        self._live, self._generation = other, self._generation + 1
        self._next = HALF_HEADER_SIZE + len(blob)

    def open(self, namespace: str, mode: int) -> None:
        """``nvs_open``: a read-only open needs the namespace; read-write creates it.

        Raises:
            EspError: NVS_NOT_INITIALIZED, NVS_NOT_FOUND, NVS_INVALID_NAME.
        """
        self._require_init()
        if not namespace or len(namespace.encode()) > KEY_MAX:
            raise_esp("ESP_ERR_NVS_INVALID_NAME", f"namespace {namespace!r}")
        if namespace in self.namespaces:
            return
        if mode == NVS_READONLY:
            raise_esp("ESP_ERR_NVS_NOT_FOUND", f"namespace {namespace!r} does not exist yet")
        self._append(NvsRecord(RecordKind.NAMESPACE, namespace))

    def set(self, namespace: str, key: str, vtype: int, value: bytes) -> None:
        """``nvs_set_*``: store (an unchanged value is not written again).

        Raises:
            EspError: NVS_KEY_TOO_LONG, NVS_NOT_ENOUGH_SPACE, NVS_VALUE_TOO_LONG.
        """
        self._require_init()
        self._check_key(key)
        if self.values.get((namespace, key)) == (vtype, value):
            return
        self._append(NvsRecord(RecordKind.SET, namespace, key, vtype, value))

    def get(self, namespace: str, key: str, vtype: int) -> Value:
        """``nvs_get_*``: (type, value) of ``key`` of type ``vtype`` (TYPE_ANY: any type).

        Raises:
            EspError: NVS_NOT_FOUND (missing, or stored with another type), NVS_KEY_TOO_LONG.
        """
        self._require_init()
        self._check_key(key)
        found = self.values.get((namespace, key))
        if found is None or (vtype != TYPE_ANY and found[0] != vtype):
            raise_esp("ESP_ERR_NVS_NOT_FOUND", f"{namespace}/{key}")
        return found

    def erase_key(self, namespace: str, key: str) -> None:
        """``nvs_erase_key``. Raises EspError NVS_NOT_FOUND when there is no such key."""
        self._require_init()
        if (namespace, key) not in self.values:
            raise_esp("ESP_ERR_NVS_NOT_FOUND", f"{namespace}/{key}")
        self._append(NvsRecord(RecordKind.ERASE_KEY, namespace, key))

    def erase_namespace(self, namespace: str) -> None:
        """``nvs_erase_all`` on a handle: every key of the namespace."""
        self._require_init()
        if any(k[0] == namespace for k in self.values):
            self._append(NvsRecord(RecordKind.ERASE_NAMESPACE, namespace))

    @staticmethod
    def _check_key(key: str) -> None:
        if not key or len(key.encode()) > KEY_MAX:
            raise_esp("ESP_ERR_NVS_KEY_TOO_LONG", f"key {key!r}: 1..15 bytes")


def esp_code(err: EspError) -> int:
    """The esp_err_t of ``err`` (for the reply frame)."""
    return err.code
