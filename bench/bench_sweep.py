"""Benchmark: the power-cut sweep and device memory, against a reference commit, in one run.

Run by hand: ``.venv/bin/python bench/bench_sweep.py [--rounds 5] [--size-kb 600]
[--reference 6fa6e69]``.

* Sweep: ``otaforge device sweep --partitions seed.csv --from old.bin --to new.bin --rollback``
  (modes before/after/torn, 600 KB images, the seed's partition table from
  ``../shared/fixtures/partitions/seed.csv``) run as a user runs it, by this tree and by the
  reference commit (default ``6fa6e69``: the code before the sweep was made faster), exported
  with ``git archive`` into a temporary directory and run with ``PYTHONPATH`` pointing at it.
  The two alternate within each round (the order flips every round); the medians of the wall
  times and of the sweep times the command reports are printed with their ratio (target: at
  least 4x). Both must report the same outcomes: same case count, same outcome table, 0
  bricked -- the bench fails otherwise.
* Memory (each tree in its own process, with tracemalloc): bytes per idle 8 MB device forked
  from one that installed the update, and per device that wrote the whole update itself;
  the current tree must not use more than the reference (2 % slack for allocator noise).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("OTAFORGE_SHARED_FIXTURES", ROOT.parent / "shared" / "fixtures"))
SEED_CSV = SHARED / "partitions" / "seed.csv"
REFERENCE = "6fa6e69"  # main before issue 9: the sweep as it was measured in the issue
MEMORY_SLACK = 1.02

_IMAGES = """
import sys
from otaforge.formats.image_builder import build_image
size = int(sys.argv[1])
open(sys.argv[2], "wb").write(build_image(version="1.0.0", size=size, seed=1))
open(sys.argv[3], "wb").write(build_image(version="2.0.0", size=size, seed=2))
"""

# runs under either tree: only the API both have
_MEMORY = """
import json, sys, tracemalloc
from pathlib import Path
try:
    from otaforge.device.config import DeviceConfig
except ImportError:  # the reference tree kept it in the emulator module
    from otaforge.device.emulator import DeviceConfig
from otaforge.device.emulator import Device
from otaforge.device.sweep import SweepConfig, Sweeper
from otaforge.formats.partition_table import PartitionTable

table = PartitionTable.from_csv(Path(sys.argv[1]).read_text())
old, new = Path(sys.argv[2]).read_bytes(), Path(sys.argv[3]).read_bytes()
devices = int(sys.argv[4])
try:
    config = SweepConfig(table=table, flash_size=8 << 20, old=old, new=new,
                         device=DeviceConfig(rollback=True))
except TypeError:  # the reference tree: rollback was a SweepConfig field
    config = SweepConfig(table=table, flash_size=8 << 20, old=old, new=new, rollback=True)
sweeper = Sweeper(config)
template = sweeper._fresh()
template.power_on()
sweeper.update(template, new)
tracemalloc.start()
start = tracemalloc.get_traced_memory()[0]
idle = [Device(template.flash.fork(), "esp32", DeviceConfig(rollback=True))
        for _ in range(devices)]
per_idle = (tracemalloc.get_traced_memory()[0] - start) / devices
del idle
start = tracemalloc.get_traced_memory()[0]
fleet = []
for _ in range(devices // 10):
    dev = sweeper._fresh()
    dev.power_on()
    sweeper.update(dev, new)
    fleet.append(dev)
per_updated = (tracemalloc.get_traced_memory()[0] - start) / len(fleet)
print(json.dumps({"idle": per_idle, "updated": per_updated}))
"""


def export_reference(commit: str, into: Path) -> Path:
    """``git archive <commit> src`` unpacked under ``into``; returns its ``src`` directory."""
    archive = into / "reference.tar"
    with archive.open("wb") as out:
        subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", commit, "src"],
                       stdout=out, check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(into / "reference", filter="data")
    return into / "reference" / "src"


def _env(src: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(src)}


def run_sweep(src: Path, old: Path, new: Path) -> tuple[float, float, list[str]]:
    """(wall seconds, sweep seconds the command reports, outcome lines) of one sweep."""
    cmd = [sys.executable, "-m", "otaforge", "device", "sweep", "--partitions", str(SEED_CSV),
           "--from", str(old), "--to", str(new), "--rollback"]
    began = time.perf_counter()
    proc = subprocess.run(cmd, env=_env(src), capture_output=True, text=True, timeout=1800)
    wall = time.perf_counter() - began
    if proc.returncode != 0:
        raise SystemExit(f"sweep failed under {src} (exit {proc.returncode}):\n"
                         f"{proc.stdout}{proc.stderr}")
    sweep_s = -1.0
    outcomes = []
    for line in proc.stdout.splitlines():
        if " cases in " in line:  # "954 cases in 9.7 s (99 cases/s)"
            sweep_s = float(line.split(" cases in ")[1].split(" s")[0])
        else:
            outcomes.append(line.strip())
    return wall, sweep_s, outcomes


def measure_memory(src: Path, old: Path, new: Path, devices: int) -> dict[str, float]:
    """Bytes per idle forked device and per device that wrote the update (own process)."""
    proc = subprocess.run([sys.executable, "-c", _MEMORY, str(SEED_CSV), str(old), str(new),
                           str(devices)], env=_env(src), capture_output=True, text=True,
                          check=True, timeout=1800)
    return dict(json.loads(proc.stdout))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--size-kb", type=int, default=600)
    parser.add_argument("--reference", default=REFERENCE, help="commit to compare against")
    parser.add_argument("--devices", type=int, default=1000, help="devices in the memory test")
    args = parser.parse_args()
    current = ROOT / "src"
    with tempfile.TemporaryDirectory(prefix="otaforge-bench-sweep-") as tmp:
        work = Path(tmp)
        reference = export_reference(args.reference, work)
        old, new = work / "old.bin", work / "new.bin"
        subprocess.run([sys.executable, "-c", _IMAGES, str(args.size_kb * 1024), str(old),
                        str(new)], env=_env(current), check=True)
        trees = {"reference": reference, "current": current}
        walls: dict[str, list[float]] = {name: [] for name in trees}
        sweeps: dict[str, list[float]] = {name: [] for name in trees}
        results: dict[str, list[str]] = {}
        for index in range(args.rounds):
            order = list(trees) if index % 2 == 0 else list(reversed(trees))
            for name in order:
                wall, sweep_s, outcomes = run_sweep(trees[name], old, new)
                walls[name].append(wall)
                sweeps[name].append(sweep_s)
                if results.setdefault(name, outcomes) != outcomes:
                    raise SystemExit(f"{name}: the sweep result changed between rounds")
            print(f"round {index + 1}: reference {walls['reference'][-1]:.2f} s, "
                  f"current {walls['current'][-1]:.2f} s", flush=True)
        memory = {name: measure_memory(src, old, new, args.devices)
                  for name, src in trees.items()}
    report(args, walls, sweeps, results, memory)


def report(args: argparse.Namespace, walls: dict[str, list[float]],
           sweeps: dict[str, list[float]], results: dict[str, list[str]],
           memory: dict[str, dict[str, float]]) -> None:
    """Print medians and ratios; exit 1 when a result differs or a target is missed."""
    summary = results["current"][-1]  # "954 cases, 0 bricked"
    print(f"\nsweep: {args.size_kb} KB --rollback, seed table, before/after/torn; "
          f"{args.rounds} interleaved rounds, medians; reference = {args.reference}")
    for line in results["current"]:
        print(f"  {line}")
    same = results["current"] == results["reference"]
    print(f"  same result as the reference: {'yes' if same else 'NO'}")
    ratios = {}
    for label, data in (("wall (whole command)", walls), ("sweep (reported)", sweeps)):
        ref, cur = statistics.median(data["reference"]), statistics.median(data["current"])
        ratios[label] = ref / cur
        print(f"  {label}: reference {ref:.2f} s, current {cur:.2f} s -> {ref / cur:.1f}x")
    speed_ok = ratios["wall (whole command)"] >= 4.0
    print(f"  target >= 4x on the whole command: {'met' if speed_ok else 'MISSED'}")
    print(f"memory ({args.devices} idle 8 MB devices; {args.devices // 10} that each wrote the "
          "update)")
    memory_ok = True
    for key, label in (("idle", "idle device"), ("updated", "after the update")):
        ref, cur = memory["reference"][key], memory["current"][key]
        ok = cur <= ref * MEMORY_SLACK
        memory_ok = memory_ok and ok
        print(f"  {label}: reference {ref / 1024:.1f} KiB, current {cur / 1024:.1f} KiB "
              f"({'no regression' if ok else 'REGRESSED'})")
    bricked_none = summary.endswith(" 0 bricked")
    if not (same and bricked_none and speed_ok and memory_ok):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
