"""Benchmark: power-cut sweep speed and memory per emulated device.

Run by hand: ``.venv/bin/python bench/bench_sweep.py [--size-kb 600] [--chunk 4096]``.

* Sweep: the full before/after/torn sweep of a 600 KB update on the seed's partition table
  (target: under 60 s on the 2-core machine). Reference measured in the same run: replaying a
  sample of the same cases from scratch with a real PowerCutPlan (re-running the whole flow per
  case, MCUboot-simulator style); printed as a speed-up ratio.
* Memory: 1000 idle 8 MB devices that each installed the 600 KB update, sharing one base image
  (target: under 1 MiB each). Reference: one plain 8 MB bytearray per device.
"""

from __future__ import annotations

import argparse
import sys
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from otaforge.device.emulator import Device, DeviceConfig  # noqa: E402
from otaforge.device.flash import MemoryFlash  # noqa: E402
from otaforge.device.sweep import SweepConfig, Sweeper, SweepReport  # noqa: E402
from otaforge.formats.image_builder import build_image  # noqa: E402
from otaforge.formats.partition_table import PartitionTable  # noqa: E402

SEED_CSV = ROOT.parent / "shared" / "fixtures" / "partitions" / "seed.csv"
MB = 1024 * 1024


def bench_sweep(size: int, chunk: int, rollback: bool) -> tuple[SweepReport, float, Sweeper]:
    table = PartitionTable.from_csv(SEED_CSV.read_text())
    old = build_image(version="1.0.0", size=size, seed=1)
    new = build_image(version="2.0.0", size=size, seed=2)
    sweeper = Sweeper(SweepConfig(table=table, flash_size=8 * MB, old=old, new=new,
                                  rollback=rollback, chunk_size=chunk))
    began = time.perf_counter()
    report = sweeper.run()
    return report, time.perf_counter() - began, sweeper


def bench_replay(sweeper: Sweeper, total_ops: int, samples: int) -> float:
    """Seconds per case when each case re-runs the whole flow from scratch."""
    step = max(1, total_ops // samples)
    picks = list(range(0, total_ops, step))[:samples]
    began = time.perf_counter()
    for index in picks:
        sweeper.replay_case("update", index, "torn")
    return (time.perf_counter() - began) / len(picks)


def bench_memory(sweeper: Sweeper, devices: int) -> tuple[float, float]:
    """(bytes per idle device sharing a base, bytes per plain-bytearray device)."""
    update = sweeper.config.new
    tracemalloc.start()
    start = tracemalloc.get_traced_memory()[0]
    fleet = []
    template = sweeper._fresh()
    template.power_on()
    sweeper.update(template, update)
    flash = template.flash
    assert isinstance(flash, MemoryFlash)
    for _ in range(devices):
        twin = Device(flash.fork(), "esp32", DeviceConfig(rollback=sweeper.config.rollback))
        fleet.append(twin)
    per_device = (tracemalloc.get_traced_memory()[0] - start) / devices
    tracemalloc.stop()
    tracemalloc.start()
    start = tracemalloc.get_traced_memory()[0]
    plain = [bytearray(8 * MB) for _ in range(8)]
    per_plain = (tracemalloc.get_traced_memory()[0] - start) / len(plain)
    tracemalloc.stop()
    del plain, fleet
    return per_device, per_plain


def bench_fresh_fleet(sweeper: Sweeper, devices: int) -> float:
    """Bytes per device for devices that each ran the whole update themselves."""
    tracemalloc.start()
    start = tracemalloc.get_traced_memory()[0]
    fleet = []
    for _ in range(devices):
        dev = sweeper._fresh()
        dev.power_on()
        sweeper.update(dev, sweeper.config.new)
        fleet.append(dev)
    per_device = (tracemalloc.get_traced_memory()[0] - start) / devices
    tracemalloc.stop()
    return per_device


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-kb", type=int, default=600)
    parser.add_argument("--chunk", type=int, default=4096, help="bytes per esp_ota_write")
    parser.add_argument("--no-rollback", action="store_true")
    parser.add_argument("--devices", type=int, default=1000)
    args = parser.parse_args()
    rollback = not args.no_rollback
    report, elapsed, sweeper = bench_sweep(args.size_kb * 1024, args.chunk, rollback)
    ops = report.ops_per_flow
    print(f"sweep: {args.size_kb} KB update, seed table, chunk {args.chunk} B, "
          f"rollback={rollback}, modes before/after/torn")
    print(f"  flash ops swept: {ops}")
    print(f"  {report.cases} cases, {report.bricked} bricked in {elapsed:.1f} s "
          f"-> {report.cases / elapsed:.0f} cases/s (target: whole sweep < 60 s: "
          f"{'met' if elapsed < 60 else 'MISSED'})")
    replay = bench_replay(sweeper, ops["update"], samples=30)
    per_case = elapsed / report.cases
    print(f"  reference (replay each case from scratch): {replay * 1000:.1f} ms/case vs "
          f"{per_case * 1000:.1f} ms/case snapshot-fork -> {replay / per_case:.1f}x faster")
    per_device, per_plain = bench_memory(sweeper, args.devices)
    print(f"memory: {args.devices} idle 8 MB devices after the update, one shared base")
    print(f"  {per_device / 1024:.0f} KiB per device (target < 1024 KiB: "
          f"{'met' if per_device < MB else 'MISSED'}); reference plain bytearray "
          f"{per_plain / 1024:.0f} KiB -> {per_plain / per_device:.0f}x smaller")
    fresh = bench_fresh_fleet(sweeper, 100)
    print(f"  devices that each wrote the update themselves: {fresh / 1024:.0f} KiB per device")


if __name__ == "__main__":
    main()
