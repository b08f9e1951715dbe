"""``otaforge firmware sweep``: cut power at every flash operation of a real firmware's update.

The scenario is what ``firmware run`` would do with the device in ``FLASH.bin``: power on and
let the firmware (its own C code, against the running otaforge server it is built for) run
until it is idle. The sweep first *records* that run on an in-memory copy of the flash: every
flash program and erase (the bootloader's otadata writes, the firmware's partition, OTA and NVS
writes) with the eFuses as they were before it. A cut is then a deterministic op index: case
(op N, mode) rebuilds the flash as it was before op N from ``FLASH.bin`` and ops 0..N-1,
applies op N as the mode says (not at all, fully, or torn as
:class:`~otaforge.device.powercut.PowerCutPlan` tears it), and powers the device on again:
the firmware boots, talks to the same server, until it is idle or ``--boots`` boots. After a
power cut nothing but flash and eFuses survives, so this is the device after a real cut
there (the tests check it against a run cut with a real plan).

Every case must end with the device idle on a valid image: not bricked, not in a reset loop,
running byte for byte the image that ran before the update or the one the recorded run ended
on (never a half-written one), otadata consistent with what runs (the bootloader did not fall
back; with rollback the running OTA slot is confirmed VALID).

Speed: ``before`` op N leaves exactly the flash of ``after`` op N-1; when the eFuses are the
same too, the two cases are one device state and are run once (``shared_with`` says so).
And a boot depends only on the state it starts from (flash, eFuses, reset reason: RAM does
not survive a reset) and the server: when a boot of a case starts from a state that a boot
of an earlier case started from, and that case then ended well, the case ends there with
that outcome (``known_at_boot``): a torn erase of a sector that was still erased powers on
into the state of the ``after`` case; cases resuming from one download checkpoint meet again
at the reboot into the new image when the server answered them alike (a different
deployment id in NVS keeps them apart).
Cases run in a pool of worker processes (``jobs``), each rebuilding flash states from the
recorded ops (no flash copy crosses a process boundary); the server is the same for all.
``FLASH.bin`` and its side files are never written.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import multiprocessing
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from otaforge.device.config import DeviceConfig
from otaforge.device.efuse import Efuses, EfuseSnapshot
from otaforge.device.flash import MemoryFlash
from otaforge.device.powercut import CUT_MODES, CutMode, PowerCutPlan
from otaforge.device.sweep import otadata_problem
from otaforge.errors import DeviceError, InputError, OtaforgeError, PowerCut
from otaforge.firmware.runner import FirmwareDevice
from otaforge.formats.app_image import app_image_length


@dataclass(frozen=True)
class _Tail:
    """How a case went on from a boot's start state: its outcome and the boots it took."""

    outcome: str
    boots: int


class _KnownState(Exception):
    """A boot starts from a device state an earlier case went on from, and ended well."""

    def __init__(self, tail: _Tail) -> None:
        super().__init__(tail.outcome)
        self.tail = tail


class _SweepDevice(FirmwareDevice):
    """A firmware device that notes the state each boot starts from (flash, eFuses, reset
    reason): RAM does not survive a reset, so that state is all a boot depends on besides
    the server. With a ``memo`` of states earlier cases went on from to a good end, a boot
    starting from one of them ends the case there with that case's outcome."""

    def __init__(self, *args: Any, memo: dict[bytes, _Tail] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.memo = memo
        self.seen: list[bytes] = []

    def _boot_once(self, pins: tuple[bool, bool], resets: list[str],
                   log: list[str]) -> Any:
        flash = self.flash
        if self.memo is not None and isinstance(flash, MemoryFlash):
            key = hashlib.sha256(flash.state_digest() + repr(
                (self.efuses.snapshot(), self._reset_reason, pins)).encode()).digest()
            tail = self.memo.get(key)
            if tail is not None and len(self.seen) + tail.boots <= self.config.max_boots:
                raise _KnownState(tail)
            self.seen.append(key)
        return super()._boot_once(pins, resets, log)


@dataclass(frozen=True)
class DeviceSetup:
    """Everything needed to make the swept device again (picklable, for the worker pool).

    Attributes:
        base: the flash contents of ``FLASH.bin``.
        chip: chip name.
        config: bootloader/app configuration (``max_boots`` is ``--boots``).
        efuses: the device's eFuses before the scenario.
        hosts: ``--host NAME=IP`` entries.
        wall_timeout_s: ``--wdt-timeout``.
    """

    base: bytes
    chip: str
    config: DeviceConfig
    efuses: Efuses
    hosts: dict[str, str] = field(default_factory=dict)
    wall_timeout_s: float = 10.0

    def device(self, flash: MemoryFlash, fuses: EfuseSnapshot | None = None,
               console: Callable[[str], None] | None = None,
               memo: dict[bytes, _Tail] | None = None) -> _SweepDevice:
        """A device on ``flash`` with the setup's eFuses (or ``fuses``); see
        :class:`_SweepDevice` for ``memo``."""
        efuses = copy.deepcopy(self.efuses)
        if fuses is not None:
            efuses.restore(fuses)
        return _SweepDevice(flash, self.chip, self.config, efuses=efuses,
                            wall_timeout_s=self.wall_timeout_s, hosts=self.hosts,
                            console=console, memo=memo)

    def flash(self) -> MemoryFlash:
        """A fresh in-memory copy of ``FLASH.bin`` (the file is never written)."""
        return MemoryFlash(len(self.base), self.base)


@dataclass(frozen=True)
class FlashOp:
    """One recorded flash operation: its index, kind, address, data, boot and prior eFuses."""

    index: int
    kind: str  # "program", "erase" (4 KiB sector) or "erase_block" (64 KiB)
    addr: int
    data: bytes
    boot: int  # the boot (1-based) during which it ran
    efuses: EfuseSnapshot

    def apply(self, flash: MemoryFlash) -> None:
        """Perform the operation on ``flash`` (a plan armed there may cut it)."""
        if self.kind == "erase":
            flash.erase_sector(self.addr)
        elif self.kind == "erase_block":
            flash.erase_block(self.addr)
        else:
            flash.program(self.addr, self.data)


@dataclass(frozen=True)
class Recording:
    """The uncut scenario: its flash ops, boots, and the images a case may end on.

    Attributes:
        ops: every flash operation, in order.
        boots: ``(partition, version, how it ended)`` of each boot.
        images: image SHA-256 (hex) -> ``old`` (ran first) / ``new`` (ran last).
    """

    ops: tuple[FlashOp, ...]
    boots: tuple[tuple[str, str | None, str], ...]
    images: dict[str, str]


@dataclass(frozen=True)
class FwCase:
    """The outcome of one (op, mode) case."""

    op_index: int
    mode: CutMode
    kind: str
    boot: int
    outcome: str
    ok: bool
    detail: str = ""
    boots: int = 0
    shared_with: str = ""  # "after #N-1": the same device state, run once
    known_at_boot: int = 0  # boot N started from a state an earlier case went on from

    def to_json(self) -> dict[str, Any]:
        """The case for ``--json``."""
        return {"op": self.op_index, "mode": self.mode, "kind": self.kind, "boot": self.boot,
                "outcome": self.outcome, "ok": self.ok, "detail": self.detail,
                "boots": self.boots, "shared_with": self.shared_with or None,
                "known_at_boot": self.known_at_boot or None}


def running_image_sha(dev: FirmwareDevice) -> str | None:
    """SHA-256 (hex) of the app image the device runs (its image length), or None."""
    part = dev.running_partition
    if part is None:
        return None
    data = dev.flash.read(part.offset, part.size)
    length = app_image_length(data)
    return hashlib.sha256(data[:length]).hexdigest() if length is not None else None


def record(setup: DeviceSetup) -> Recording:
    """Run the scenario once, uncut, recording every flash operation.

    Raises:
        InputError: the scenario does not end idle on a running image (nothing to sweep).
    """
    flash = setup.flash()
    dev = setup.device(flash)
    ops: list[FlashOp] = []

    def observe(index: int, kind: str, addr: int, data: bytes) -> None:
        ops.append(FlashOp(index, kind, addr, bytes(data), dev.boot_count,
                           dev.efuses.snapshot()))

    flash.observer = observe
    result = dev.power_on()
    flash.observer = None
    boots = tuple((b.partition, b.version, b.ended) for b in dev.boots)
    if result.status != "running" or not dev.boots or dev.boots[-1].ended != "idle":
        ends = "; ".join(f"boot {n}: {p} {v} -> {e}" for n, (p, v, e) in enumerate(boots, 1))
        raise InputError(f"the uncut run does not end idle ({result.status}: {result.reason}"
                         f"{'; ' + ends if ends else ''}); fix the scenario (firmware run "
                         "shows it) before sweeping it")
    images: dict[str, str] = {}
    first = _image_in(setup.flash(), dev, dev.boots[0].partition)  # as FLASH.bin holds it
    if first is not None:
        images[first] = "old"
    last = running_image_sha(dev)
    if last is not None:
        images.setdefault(last, "new")
    return Recording(tuple(ops), boots, images)


def _image_in(flash: MemoryFlash, dev: FirmwareDevice, name: str) -> str | None:
    """SHA-256 (hex) of the app image in partition ``name`` of ``flash``, or None."""
    part = dev.partition(name)
    data = flash.read(part.offset, part.size)
    length = app_image_length(data)
    return hashlib.sha256(data[:length]).hexdigest() if length is not None else None


def run_case(setup: DeviceSetup, images: dict[str, str], before: MemoryFlash, op: FlashOp,
             mode: CutMode, seed: int = 0, memo: dict[bytes, _Tail] | None = None) -> FwCase:
    """Cut op ``op`` with ``mode`` on a fork of ``before`` (the flash before it), power on,
    let the firmware run until idle, and check the device. ``memo``: boot start states of
    earlier cases that ended well (read and extended)."""
    flash = before.fork()
    flash.op_count = op.index
    flash.plan = PowerCutPlan(op.index, mode, seed=seed)
    with contextlib.suppress(PowerCut):
        op.apply(flash)
    flash.plan = None
    flash.op_count = 0
    console: list[str] = []
    dev = setup.device(flash, op.efuses, console.append, memo)
    known = 0
    try:
        outcome, ok, detail = check(dev, images, setup.config.rollback, console)
        boots = len(dev.boots)
    except _KnownState as hit:
        known = len(dev.boots) + 1
        outcome, ok, detail = hit.tail.outcome, True, ""
        boots = len(dev.boots) + hit.tail.boots
    if ok and memo is not None:
        for number, key in enumerate(dev.seen[: known - 1 if known else None]):
            memo.setdefault(key, _Tail(outcome, boots - number))
    resets = f" after {boots - 1} reset(s)" if ok and boots > 1 else ""
    return FwCase(op.index, mode, op.kind, op.boot, outcome + resets, ok, detail, boots,
                  known_at_boot=known)


def check(dev: FirmwareDevice, images: dict[str, str], rollback: bool,
          console: list[str]) -> tuple[str, bool, str]:
    """Power ``dev`` on until idle: (outcome, ok, detail).

    Raises:
        _KnownState: a boot started from a state known to end well (a :class:`_SweepDevice`
            with a memo).
    """
    try:
        result = dev.power_on()
    except _KnownState:
        raise
    except (OtaforgeError, PowerCut) as err:
        return "power-on failed", False, f"{err}; {_tail(console)}"
    if result.status != "running":
        return result.status, False, f"{result.reason}; {_tail(console)}"
    last = dev.boots[-1] if dev.boots else None
    if last is None or last.ended != "idle":
        why = last.ended if last else "no boot"
        return "did not end idle", False, f"{why}; {_tail(console)}"
    which = images.get(running_image_sha(dev) or "")
    part = dev.running_partition
    name = part.name if part else "?"
    if which is None:
        return "runs an image the uncut run never ended on", False, name
    try:
        problem = otadata_problem(dev, rollback)
    except DeviceError as err:
        problem = str(err)
    if problem:
        return f"ended on {which}, otadata inconsistent", False, problem
    return f"ended on {which} ({name})", True, ""


def _tail(console: list[str], n: int = 3) -> str:
    return " | ".join(console[-n:])


# --- sweeping ------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Job:
    setup: DeviceSetup
    recording: Recording
    modes: tuple[CutMode, ...]
    seed: int


_JOB: _Job | None = None


def _init_worker(job: _Job) -> None:
    global _JOB
    _JOB = job


def _wanted(job: _Job, index: int) -> list[CutMode]:
    """The modes run for op ``index`` (``before`` is skipped when it is ``after`` of the
    previous op: the same flash and eFuses)."""
    return [m for m in job.modes if _shared(job, index, m) is None]


def _shared(job: _Job, index: int, mode: CutMode) -> int | None:
    ops = job.recording.ops
    if mode == "before" and index > 0 and "after" in job.modes and \
            ops[index - 1].efuses == ops[index].efuses:
        return index - 1
    return None


_MEMO: dict[bytes, _Tail] = {}  # a worker's boot start states (kept across its ranges)


def _run_range(job: _Job, start: int, stop: int,
               memo: dict[bytes, _Tail] | None = None) -> list[FwCase]:
    flash = job.setup.flash()
    ops = job.recording.ops
    for op in ops[:start]:
        op.apply(flash)
    out: list[FwCase] = []
    for op in ops[start:stop]:
        for mode in _wanted(job, op.index):
            out.append(run_case(job.setup, job.recording.images, flash, op, mode, job.seed,
                                memo))
        op.apply(flash)
    return out


def _worker(bounds: tuple[int, int]) -> list[FwCase]:
    assert _JOB is not None
    return _run_range(_JOB, *bounds, memo=_MEMO)


def _chunks(total: int, jobs: int) -> list[tuple[int, int]]:
    size = max(1, -(-total // max(jobs * 6, 1)))
    return [(i, min(i + size, total)) for i in range(0, total, size)]


@dataclass
class FwSweepReport:
    """Totals of a firmware sweep."""

    recording: Recording
    cases: list[FwCase] = field(default_factory=list)

    @property
    def bricked(self) -> int:
        """Cases that did not end idle on a valid image."""
        return sum(not c.ok for c in self.cases)

    @property
    def distinct(self) -> int:
        """Cases run (the others share a device state with one that was)."""
        return sum(not c.shared_with for c in self.cases)

    @property
    def known(self) -> int:
        """Cases that reached, at a boot start, a state an earlier case went on from."""
        return sum(bool(c.known_at_boot) for c in self.cases)

    def outcomes(self) -> Counter[str]:
        """How many cases ended each way."""
        return Counter(c.outcome for c in self.cases)

    def to_json(self) -> dict[str, Any]:
        """The ``--json`` document."""
        return {"cases": len(self.cases), "bricked": self.bricked, "run": self.distinct,
                "known_states": self.known,
                "ops": len(self.recording.ops),
                "recorded_boots": [{"partition": p, "version": v, "ended": e}
                                   for p, v, e in self.recording.boots],
                "outcomes": dict(self.outcomes()),
                "failures": [c.to_json() for c in self.cases if not c.ok]}


def iter_cases(setup: DeviceSetup, recording: Recording, modes: tuple[CutMode, ...] = CUT_MODES,
               *, ops: list[int] | None = None, jobs: int = 1,
               seed: int = 0) -> Iterator[FwCase]:
    """Every (op, mode) case of ``recording`` (only the ops in ``ops`` when given), in order.

    Raises:
        InputError: an op index outside the recording.
    """
    job = _Job(setup, recording, modes, seed)
    total = len(recording.ops)
    chosen = sorted(set(ops)) if ops is not None else list(range(total))
    bad = [i for i in chosen if not 0 <= i < total]
    if bad:
        raise InputError(f"--ops: op {bad[0]} is outside the recorded run (ops 0..{total - 1})")
    ranges = [(i, i + 1) for i in chosen] if ops is not None else _chunks(total, jobs)
    by_key: dict[tuple[int, str], FwCase] = {}
    for batch in _batches(job, ranges, jobs):
        for case in batch:
            by_key[(case.op_index, case.mode)] = case
    for index in chosen:
        for mode in modes:
            source = _shared(job, index, mode)
            found = by_key.get((index, mode))
            if found is None and source is not None:
                base = by_key.get((source, "after"))
                if base is None:  # the op it shares with is not swept: run it
                    base = _run_range(replace(job, modes=("after",)), source, source + 1)[0]
                found = replace(base, op_index=index, mode=mode, kind=recording.ops[index].kind,
                               boot=recording.ops[index].boot, shared_with=f"after #{source}")
            assert found is not None
            yield found


def _batches(job: _Job, ranges: list[tuple[int, int]], jobs: int) -> Iterator[list[FwCase]]:
    if jobs <= 1 or len(ranges) <= 1:
        memo: dict[bytes, _Tail] = {}
        for bounds in ranges:
            yield _run_range(job, *bounds, memo=memo)
        return
    ctx = multiprocessing.get_context("spawn")  # the caller may run a server in a thread
    with ctx.Pool(min(jobs, len(ranges)), initializer=_init_worker, initargs=(job,)) as pool:
        yield from pool.imap(_worker, ranges)
