"""The emulated ESP32 applies esp_delta_ota patches as the https_delta_ota example does, and
resumes them after a dropped connection or a power cut at any flash operation."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from otaforge.delta import variants
from otaforge.delta.create import create_patch
from otaforge.delta.source import BytesSource
from otaforge.device.delta_ota import DeltaOta, delta_ota, esp_partition_get_sha256
from otaforge.device.emulator import Device
from otaforge.device.flash import MemoryFlash
from otaforge.device.powercut import PowerCutPlan
from otaforge.errors import ConnectionLost, DigestMismatch, PowerCut
from tests.device._emu_helpers import make_device


@pytest.fixture(scope="module")
def base(shared_fixtures: Path) -> bytes:
    return (shared_fixtures / "esp-idf" / "hello_world_esp32.bin").read_bytes()


@pytest.fixture(scope="module")
def new(base: bytes) -> bytes:
    return variants.code_change(base)


@pytest.fixture(scope="module")
def patch(base: bytes, new: bytes) -> bytes:
    return create_patch(base, new).patch


def _device(base: bytes, flash: MemoryFlash | None = None) -> Device:
    dev = make_device(factory=base, strict=True)
    if flash is not None:
        dev = Device(flash, "esp32", dev.config)
    dev.power_on()
    return dev


def _apply(dev: Device, source: BytesSource | _Dropping, patch: bytes,
           new: bytes) -> tuple[int, int]:
    result = delta_ota(dev.ota, dev.partition_table()).apply(
        source, len(patch), hashlib.sha256(patch).digest(), hashlib.sha256(new).digest())
    return result.resumed_from, result.fetched


def _running_image(dev: Device, size: int) -> bytes:
    part = dev.running_partition
    assert part is not None
    return dev.flash.read(part.offset, size)


class _Dropping:
    """A patch source whose connection drops after ``budget`` bytes per connection."""

    def __init__(self, data: bytes, budget: int) -> None:
        self.data = data
        self.budget = budget
        self.left = budget
        self.fetched = 0

    def reconnect(self) -> None:
        self.left = self.budget

    def read(self, offset: int, size: int) -> bytes:
        if self.left <= 0:
            raise ConnectionLost("connection reset by peer (injected)")
        piece = self.data[offset:offset + min(size, self.left)]
        self.left -= len(piece)
        self.fetched += len(piece)
        return piece


def test_device_applies_a_delta_and_boots_the_new_image(base: bytes, new: bytes,
                                                         patch: bytes) -> None:
    dev = _device(base)
    running = dev.running_partition
    assert running is not None
    assert esp_partition_get_sha256(dev.flash, running) == patch[4:36]
    resumed_from, fetched = _apply(dev, BytesSource(patch), patch, new)
    # each byte once (the 16-byte peek at the detools header aside)
    assert resumed_from == 0 and len(patch) <= fetched <= len(patch) + 16
    boot = dev.reboot()
    assert boot.status == "running" and boot.partition is not None
    assert boot.partition.name == "ota_0"
    assert _running_image(dev, len(new)) == new


def test_header_for_another_base_is_refused_and_nothing_is_written(base: bytes, new: bytes,
                                                                    patch: bytes) -> None:
    dev = _device(new)  # runs the new image already: the patch's base is not there
    flash = dev.flash
    assert isinstance(flash, MemoryFlash)
    ops = flash.op_count
    with pytest.raises(DigestMismatch, match="SHA256 of current firmware differs"):
        _apply(dev, BytesSource(patch), patch, new)
    assert flash.op_count == ops


def test_dropped_connections_resume_without_refetching(base: bytes, new: bytes,
                                                       patch: bytes) -> None:
    dev = _device(base)
    source = _Dropping(patch, budget=700)
    starts = []
    for _ in range(100):
        try:
            starts.append(_apply(dev, source, patch, new)[0])
            break
        except ConnectionLost:
            source.reconnect()
    assert starts and starts[0] > 0  # the successful call resumed
    # every byte once, plus the 64-byte header and at most a 4 KiB block per reconnection
    reconnects = source.fetched // 700
    assert source.fetched <= len(patch) + reconnects * (64 + 4096)
    assert dev.reboot().status == "running"
    assert _running_image(dev, len(new)) == new


def _record_ops(base: bytes, patch: bytes, new: bytes) -> int:
    dev = _device(base)
    flash = dev.flash
    assert isinstance(flash, MemoryFlash)
    before = flash.op_count
    _apply(dev, BytesSource(patch), patch, new)
    return flash.op_count - before


@pytest.mark.parametrize("mode", ["before", "after", "torn"])
def test_power_cut_at_every_flash_operation_resumes_and_never_bricks(
        base: bytes, new: bytes, patch: bytes, mode: str) -> None:
    total = _record_ops(base, patch, new)
    assert total > 40
    resumed = 0
    for op in range(total):
        dev = _device(base)
        flash = dev.flash
        assert isinstance(flash, MemoryFlash)
        flash.arm(PowerCutPlan(op, mode, seed=op))  # type: ignore[arg-type]
        with pytest.raises(PowerCut):
            _apply(dev, BytesSource(patch), patch, new)
        flash.plan = None
        after = Device(flash, "esp32", dev.config)
        boot = after.power_on()
        assert boot.status == "running", (op, boot.reason)
        image = _running_image(after, len(new))
        if image == new:  # the cut came after esp_ota_set_boot_partition
            continue
        assert after.running_partition is not None
        assert after.running_partition.name == "factory", op
        start, fetched = _apply(after, BytesSource(patch), patch, new)
        if start > 0:  # resumed from a checkpoint: fetched only the rest of the patch
            resumed += 1
            assert fetched < len(patch), op
        assert after.reboot().status == "running"
        assert _running_image(after, len(new)) == new, op
    assert resumed > total // 2


def test_stock_behaviour_without_a_store_starts_over(base: bytes, new: bytes,
                                                     patch: bytes) -> None:
    dev = _device(base)
    ota = DeltaOta(dev.ota, None)
    source = _Dropping(patch, budget=900)
    with pytest.raises(ConnectionLost):
        ota.apply(source, len(patch), hashlib.sha256(patch).digest())
    source.reconnect()
    source.budget = 1 << 30
    source.reconnect()
    result = ota.apply(source, len(patch), hashlib.sha256(patch).digest())
    assert result.resumed_from == 0 and result.fetched >= len(patch)
