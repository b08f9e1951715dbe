"""SPI NOR flash with the chip's rules: 4 KiB sector erase to 0xFF, programming clears bits.

:class:`MemoryFlash` keeps only the sectors a device changed, over an optional shared base
image (the bytes ``esptool write-flash`` would put on the chip), so thousands of emulated
8 MB devices share one copy of the factory image: an idle device costs its changed sectors
(a 600 KB update is ~150 sectors) plus a small dict. :meth:`MemoryFlash.fork` gives a
copy-on-write clone in O(changed sectors) without copying any sector data.

:class:`FileFlash` is a flash image file laid out as on the chip (what ``esptool read-flash``
reads back), loaded as the base and written back atomically by :meth:`FileFlash.save`.

Every program and erase is counted; a :class:`~otaforge.device.powercut.PowerCutPlan` makes
power fail before, after or inside the planned operation (raising
:class:`~otaforge.errors.PowerCut`); an observer sees every operation before it runs (the
sweep uses it to snapshot the flash at each operation).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Hashable, Mapping
from pathlib import Path
from typing import Protocol, runtime_checkable

from otaforge.device.powercut import PowerCutPlan
from otaforge.errors import FlashError, InputError, PowerCut
from otaforge.formats.sector import SECTOR_SIZE as SECTOR_SIZE  # the erase unit of a Flash
from otaforge.fsutil import atomic_write

BLOCK_SIZE = 0x10000
ERASED_SECTOR = b"\xff" * SECTOR_SIZE

# observer(op_index, kind, addr, data) is called before each counted operation runs; kind is
# "erase" (one 4 KiB sector), "erase_block" (64 KiB) or "program" (``data`` empty for erases)
FlashObserver = Callable[[int, str, int, bytes], None]


@runtime_checkable
class Flash(Protocol):
    """The one-method-per-operation seam every device component talks to."""

    @property
    def size(self) -> int:
        """Flash size in bytes."""
        ...

    def read(self, addr: int, n: int) -> bytes:
        """Read ``n`` bytes at ``addr``."""
        ...

    def erase_sector(self, addr: int) -> None:
        """Erase the 4 KiB sector at ``addr`` (sector aligned) to 0xFF."""
        ...

    def erase_range(self, addr: int, n: int) -> None:
        """Erase ``n`` bytes (whole sectors) from ``addr``."""
        ...

    def program(self, addr: int, data: bytes) -> None:
        """Program ``data`` at ``addr``: each bit can only go from 1 to 0."""
        ...


def _and_bytes(old: bytes, new: bytes) -> bytes:
    """Bitwise AND of two equal-length byte strings (NOR programming)."""
    n = len(old)
    return (int.from_bytes(old, "little") & int.from_bytes(new, "little")).to_bytes(n, "little")


class _SameObject:
    """Equal only to a wrapper of the very same object (hashed by identity); holding it keeps
    the object alive, so its identity is never reused while a key names it."""

    __slots__ = ("obj",)

    def __init__(self, obj: object) -> None:
        self.obj = obj

    def __hash__(self) -> int:
        return id(self.obj)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _SameObject) and other.obj is self.obj


class MemoryFlash:
    """Sparse copy-on-write NOR flash in memory.

    Args:
        size: flash size in bytes (a multiple of 4 KiB).
        base: shared initial contents (shorter than ``size`` means 0xFF after it). Never
            modified; pass the same object to many devices.
        strict: refuse to program a byte twice without an erase in between (MCUboot's
            ``write_safe``), instead of silently ANDing.

    Attributes:
        op_count: counted operations (programs + sector erases) since creation or
            :meth:`reset_counters`.
        plan: the armed power cut, or None.
        observer: called before each counted operation, or None.
    """

    def __init__(self, size: int, base: bytes | memoryview | None = None,
                 strict: bool = False) -> None:
        if size <= 0 or size % SECTOR_SIZE:
            raise InputError(f"flash size 0x{size:x} is not a positive multiple of 4 KiB")
        if base is not None and len(base) > size:
            raise InputError(
                f"flash image is {len(base)} bytes; it does not fit a 0x{size:x}-byte flash"
            )
        self._size = size
        self._base: bytes | memoryview | None = base
        self._base_token = _SameObject(base)  # names ``base`` in content keys
        self._sectors: dict[int, bytes] = {}
        self._written: dict[int, int] = {}  # strict mode: sector -> bitmask of programmed bytes
        self.strict = strict
        self.op_count = 0
        self.erase_count = 0
        self.program_count = 0
        self.plan: PowerCutPlan | None = None
        self.observer: FlashObserver | None = None
        self.powered = True

    # --- reading --------------------------------------------------------------------------

    @property
    def size(self) -> int:
        """Flash size in bytes."""
        return self._size

    def _base_sector(self, index: int) -> bytes:
        base = self._base
        start = index * SECTOR_SIZE
        if base is None or start >= len(base):
            return ERASED_SECTOR
        chunk = bytes(base[start : start + SECTOR_SIZE])
        if len(chunk) < SECTOR_SIZE:
            chunk += ERASED_SECTOR[len(chunk) :]
        return chunk

    def _sector(self, index: int) -> bytes:
        sector = self._sectors.get(index)
        return sector if sector is not None else self._base_sector(index)

    def _check_range(self, addr: int, n: int, what: str) -> None:
        if addr < 0 or n < 0 or addr + n > self._size:
            raise FlashError(
                f"{what} of {n} bytes at 0x{addr:x} is outside the 0x{self._size:x}-byte flash"
            )

    def _base_run(self, first: int, stop: int) -> bytes:
        """Base contents of sectors ``first..stop-1`` in one slice (0xFF past the base)."""
        base = self._base
        start, end = first * SECTOR_SIZE, stop * SECTOR_SIZE
        if base is None or start >= len(base):
            return ERASED_SECTOR * (stop - first) if stop - first > 1 else ERASED_SECTOR
        chunk = bytes(base[start:end])
        if len(chunk) < end - start:
            chunk += b"\xff" * (end - start - len(chunk))
        return chunk

    def read(self, addr: int, n: int) -> bytes:
        """Read ``n`` bytes at ``addr`` (reads are not counted and never cut).

        Raises:
            FlashError: the range is outside the flash.
        """
        self._check_range(addr, n, "read")
        if n == 0:
            return b""
        first, last = addr // SECTOR_SIZE, (addr + n - 1) // SECTOR_SIZE
        off = addr - first * SECTOR_SIZE
        if first == last:
            return self._sector(first)[off : off + n]
        sectors = self._sectors
        parts: list[bytes] = []
        index = first
        while index <= last:
            sector = sectors.get(index)
            if sector is not None:
                parts.append(sector)
                index += 1
                continue
            stop = index + 1
            while stop <= last and stop not in sectors:
                stop += 1
            parts.append(self._base_run(index, stop))
            index = stop
        data = b"".join(parts)
        return data[off : off + n] if off or len(data) != n else data

    def content_key(self, addr: int, n: int) -> Hashable | None:
        """A value that is equal for two ranges only when they hold the same bytes.

        The key names the shared base and the sector objects over the range (None where the
        base shows through); sector data is immutable, so equal keys mean equal contents on
        this flash, its forks and any other flash, and a program or erase in the range
        changes the key. Building it reads no sector data. None for a range outside the flash.
        """
        if addr < 0 or n <= 0 or addr + n > self._size:
            return None
        first, last = addr // SECTOR_SIZE, (addr + n - 1) // SECTOR_SIZE
        get = self._sectors.get
        return (self._base_token, addr, n, tuple([get(i) for i in range(first, last + 1)]))

    def to_bytes(self) -> bytes:
        """The whole flash contents (what ``esptool read-flash 0 SIZE`` would return)."""
        return self.read(0, self._size)

    # --- counting and power cuts ----------------------------------------------------------

    def arm(self, plan: PowerCutPlan | None) -> None:
        """Arm a power cut counted from now (the op counter restarts at 0)."""
        self.plan = plan
        self.op_count = 0

    def reset_counters(self) -> None:
        """Zero the operation counters (the plan stays armed)."""
        self.op_count = self.erase_count = self.program_count = 0

    def power_restore(self) -> None:
        """Power comes back: operations work again; a fired plan is gone."""
        self.powered = True

    def _begin_op(self, kind: str, addr: int, data: bytes) -> PowerCutPlan | None:
        """Count one operation; return the plan if power fails during or after it."""
        if not self.powered:
            raise PowerCut("flash operation after a power cut: the device is off")
        index = self.op_count
        self.op_count += 1
        if self.observer is not None:
            self.observer(index, kind, addr, data)
        plan = self.plan
        if plan is None or plan.op_index != index:
            return None
        self.plan = None
        self.powered = False
        if plan.mode == "before":
            raise PowerCut(f"power cut before flash op #{index} ({kind} at 0x{addr:x})")
        return plan

    # --- erase ----------------------------------------------------------------------------

    def erase_sector(self, addr: int) -> None:
        """Erase the 4 KiB sector at ``addr`` to 0xFF (one counted operation).

        Raises:
            FlashError: ``addr`` is not sector aligned or outside the flash.
            PowerCut: the armed plan fires here.
        """
        self._erase(addr, SECTOR_SIZE, "erase")

    def erase_block(self, addr: int) -> None:
        """Erase the 64 KiB block at ``addr`` (one counted operation; a tear leaves a prefix).

        Raises:
            FlashError: ``addr`` is not 64 KiB aligned or outside the flash.
            PowerCut: the armed plan fires here.
        """
        self._erase(addr, BLOCK_SIZE, "erase_block")

    def _erase(self, addr: int, size: int, kind: str) -> None:
        if addr % size:
            raise FlashError(f"{kind} at 0x{addr:x} is not aligned to 0x{size:x}")
        self._check_range(addr, size, "erase")
        cut = self._begin_op(kind, addr, b"")
        first = addr // SECTOR_SIZE
        done = size
        if cut is not None and cut.mode == "torn":
            done = cut.torn_length(size)
        for i in range(size // SECTOR_SIZE):
            erased = min(max(done - i * SECTOR_SIZE, 0), SECTOR_SIZE)
            if erased == 0:
                break
            index = first + i
            if erased == SECTOR_SIZE:
                self._sectors[index] = ERASED_SECTOR
            else:
                self._sectors[index] = ERASED_SECTOR[:erased] + self._sector(index)[erased:]
            self._written.pop(index, None)
        if cut is not None and cut.mode == "torn":
            raise PowerCut(f"power cut inside flash op #{self.op_count - 1} ({kind} at "
                           f"0x{addr:x}: {done} of {size} bytes erased)")
        self.erase_count += 1
        if cut is not None:
            raise PowerCut(f"power cut after flash op #{self.op_count - 1} ({kind} at 0x{addr:x})")

    def erase_range(self, addr: int, n: int) -> None:
        """Erase ``n`` bytes from ``addr``: one counted operation per 4 KiB sector.

        Raises:
            FlashError: ``addr`` or ``n`` not sector aligned, or outside the flash.
        """
        if addr % SECTOR_SIZE or n % SECTOR_SIZE:
            raise FlashError(
                f"erase of 0x{n:x} bytes at 0x{addr:x} is not 4 KiB-sector aligned"
            )
        self._check_range(addr, n, "erase")
        for sector_addr in range(addr, addr + n, SECTOR_SIZE):
            self.erase_sector(sector_addr)

    # --- program --------------------------------------------------------------------------

    def program(self, addr: int, data: bytes) -> None:
        """Program ``data`` at ``addr`` (one counted operation): new = old AND data.

        Raises:
            FlashError: outside the flash, or (strict mode) a byte already programmed since
                its sector was last erased.
            PowerCut: the armed plan fires here.
        """
        data = bytes(data)
        self._check_range(addr, len(data), "program")
        if not data:
            return
        if self.strict:
            self._check_strict(addr, data)
        cut = self._begin_op("program", addr, data)
        if cut is not None and cut.mode == "torn":
            done = cut.torn_length(len(data))
            if done:
                self._program_raw(addr, data[:done])
            raise PowerCut(f"power cut inside flash op #{self.op_count - 1} (program at "
                           f"0x{addr:x}: {done} of {len(data)} bytes programmed)")
        self._program_raw(addr, data)
        self.program_count += 1
        if cut is not None:
            raise PowerCut(
                f"power cut after flash op #{self.op_count - 1} (program at 0x{addr:x})"
            )

    def _program_raw(self, addr: int, data: bytes) -> None:
        pos = 0
        n = len(data)
        while pos < n:
            index, off = divmod(addr + pos, SECTOR_SIZE)
            take = min(SECTOR_SIZE - off, n - pos)
            chunk = data[pos : pos + take]
            old = self._sector(index)
            region = old[off : off + take]
            if region != ERASED_SECTOR[:take]:
                chunk = _and_bytes(region, chunk)
            if take == SECTOR_SIZE:
                self._sectors[index] = chunk
            else:
                self._sectors[index] = old[:off] + chunk + old[off + take :]
            if self.strict:
                mask = ((1 << take) - 1) << off
                self._written[index] = self._written.get(index, 0) | mask
            pos += take

    def _check_strict(self, addr: int, data: bytes) -> None:
        pos = 0
        while pos < len(data):
            index, off = divmod(addr + pos, SECTOR_SIZE)
            take = min(SECTOR_SIZE - off, len(data) - pos)
            mask = ((1 << take) - 1) << off
            region = self._sector(index)[off : off + take]
            if self._written.get(index, 0) & mask or region != ERASED_SECTOR[:take]:
                raise FlashError(
                    f"strict flash: program at 0x{addr + pos:x} hits bytes already programmed "
                    f"since sector 0x{index * SECTOR_SIZE:x} was last erased"
                )
            pos += take

    # --- copy-on-write --------------------------------------------------------------------

    def fork(self) -> MemoryFlash:
        """A copy-on-write clone: same base and sectors, no plan, no observer, counters 0."""
        clone = MemoryFlash.__new__(MemoryFlash)
        clone._size = self._size
        clone._base = self._base
        clone._base_token = self._base_token
        clone._sectors = dict(self._sectors)
        clone._written = dict(self._written)
        clone.strict = self.strict
        clone.op_count = clone.erase_count = clone.program_count = 0
        clone.plan = None
        clone.observer = None
        clone.powered = True
        return clone

    def share_sectors(self, pool: dict[bytes, bytes], addr: int, n: int) -> int:
        """Replace the sector objects over ``addr..addr+n`` by equal ones from ``pool``.

        ``pool`` is a content-addressed sector store shared by many flashes (devices that
        wrote the same image then hold one copy of its sectors); sectors it lacks are added.
        Contents never change, only which equal object holds them. Returns how many sectors
        were replaced by an already pooled copy.
        """
        self._check_range(addr, n, "share")
        shared = 0
        sectors = self._sectors
        for index in range(addr // SECTOR_SIZE, (addr + n + SECTOR_SIZE - 1) // SECTOR_SIZE):
            sector = sectors.get(index)
            if sector is None or sector is ERASED_SECTOR:
                continue
            pooled = pool.setdefault(sector, sector)
            if pooled is not sector:
                sectors[index] = pooled
                shared += 1
        return shared

    def state_digest(self) -> bytes:
        """SHA-256 over the sectors changed from the base (index and contents).

        Two flashes over the same base with equal digests hold the same bytes; equal bytes can
        still differ in digest (a sector rewritten to its base contents counts as changed).
        """
        digest = hashlib.sha256(self._size.to_bytes(8, "little"))
        for index in sorted(self._sectors):
            digest.update(index.to_bytes(4, "little"))
            digest.update(self._sectors[index])
        return digest.digest()

    def private_bytes(self, pool: Mapping[bytes, bytes] | None = None) -> int:
        """Bytes of sector data owned by this flash alone: shared erased sectors excluded,
        and with ``pool`` (see :meth:`share_sectors`) the sectors held there too."""
        return sum(len(s) for s in self._sectors.values() if s is not ERASED_SECTOR
                   and (pool is None or pool.get(s) is not s))

    def changed_sectors(self) -> int:
        """Number of sectors that differ from the base (written or erased since creation)."""
        return len(self._sectors)


class FileFlash(MemoryFlash):
    """A flash image file laid out as on the chip, loaded into memory, saved atomically.

    Args:
        path: the image file (``esptool read-flash`` output, or a merged ``write-flash``
            image). Missing means an all-erased flash of ``size`` bytes.
        size: flash size; defaults to the file's size. A shorter file is padded with 0xFF.
        strict: see :class:`MemoryFlash`.
    """

    def __init__(self, path: str | os.PathLike[str], size: int | None = None,
                 strict: bool = False) -> None:
        self.path = Path(path)
        data = self.path.read_bytes() if self.path.exists() else b""
        if size is None:
            if not data:
                raise InputError(f"{self.path}: no flash image here; give the flash size")
            size = len(data)
        if len(data) % SECTOR_SIZE and size == len(data):
            raise InputError(f"{self.path}: {len(data)} bytes is not a multiple of 4 KiB")
        super().__init__(size, data, strict)

    def save(self, path: str | os.PathLike[str] | None = None) -> None:
        """Write the whole flash to ``path`` (default: the file it came from) atomically."""
        atomic_write(path if path is not None else self.path, self.to_bytes())
