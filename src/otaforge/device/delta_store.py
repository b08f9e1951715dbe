"""Where the emulated device keeps the checkpoint of an interrupted delta apply.

An append-only log of 512-byte records (layout :mod:`otaforge.formats.agent_record`, payload a
:class:`~otaforge.formats.delta_patch.ResumeRecord`) in one 4 KiB sector -- by default the
second-to-last sector of the ``nvs`` partition (the agent's own state uses the last one).
Loading takes the last intact record, so a record torn by a power cut is skipped and the
previous checkpoint wins (the apply then redoes at most one more sector). A full sector is
erased and the log restarts; a cut during that erase loses the checkpoint, which is safe: the
apply starts over from the beginning. :meth:`DeltaResumeStore.clear` appends an empty record.
"""

from __future__ import annotations

from otaforge.device.flash import SECTOR_SIZE, Flash
from otaforge.errors import FormatError, InputError
from otaforge.formats.agent_record import FREE_SLOT, RECORD_SIZE, decode_record, encode_record
from otaforge.formats.delta_patch import ResumeRecord
from otaforge.formats.partition_table import PartitionTable

_CLEARED = b""


class DeltaResumeStore:
    """The checkpoint log in one flash sector.

    Args:
        flash: the device flash.
        sector_addr: absolute, 4 KiB aligned address of the sector.
    """

    def __init__(self, flash: Flash, sector_addr: int) -> None:
        if sector_addr % SECTOR_SIZE:
            raise ValueError(f"delta resume sector 0x{sector_addr:x} is not 4 KiB aligned")
        self.flash = flash
        self.addr = sector_addr

    @staticmethod
    def sector_in(table: PartitionTable, name: str = "nvs") -> int:
        """Address of the second-to-last sector of partition ``name``.

        Raises:
            InputError: no such partition, or it has fewer than two sectors.
        """
        part = table.find(name)
        if part is None or part.size < 2 * SECTOR_SIZE:
            raise InputError(f"the partition table needs a {name!r} partition of at least "
                             f"8 KiB to keep delta resume checkpoints")
        return part.offset + part.size - 2 * SECTOR_SIZE

    @classmethod
    def in_partition(cls, flash: Flash, table: PartitionTable,
                     name: str = "nvs") -> DeltaResumeStore:
        """The store in the second-to-last sector of partition ``name``.

        Raises:
            InputError: no such partition, or it has fewer than two sectors.
        """
        return cls(flash, cls.sector_in(table, name))

    def _records(self) -> tuple[list[bytes], int | None]:
        raw = self.flash.read(self.addr, SECTOR_SIZE)
        payloads: list[bytes] = []
        for index in range(SECTOR_SIZE // RECORD_SIZE):
            slot = raw[index * RECORD_SIZE:(index + 1) * RECORD_SIZE]
            if slot == FREE_SLOT:
                return payloads, index
            payload = decode_record(slot)
            if payload is not None:
                payloads.append(payload)
        return payloads, None

    def load(self) -> ResumeRecord | None:
        """The last checkpoint, or None (none saved, or cleared since)."""
        payloads, _ = self._records()
        if not payloads or payloads[-1] == _CLEARED:
            return None
        try:
            return ResumeRecord.from_bytes(payloads[-1])
        except FormatError:
            return None

    def _append(self, payload: bytes) -> None:
        record = encode_record(payload)
        _, free = self._records()
        if free is None:
            self.flash.erase_sector(self.addr)
            free = 0
        self.flash.program(self.addr + free * RECORD_SIZE, record)

    def save(self, record: ResumeRecord) -> None:
        """Append a checkpoint (erasing the sector first when it is full)."""
        self._append(record.to_bytes())

    def clear(self) -> None:
        """Forget the checkpoint (the apply finished or was given up)."""
        if self.load() is not None:
            self._append(_CLEARED)
