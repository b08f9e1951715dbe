"""Benchmark: ``otaforge fleet simulate`` at fleet scale, with the figures of the same runs.

Run by hand: ``.venv/bin/python bench/bench_fleet.py [--devices 10000] [--check-in-devices
100000] [--size 600000]``.

Two runs, each against the real in-process HTTPS server on the virtual clock:

* **rollout**: ``--devices`` emulated ESP32s (the real device model and agent) take a
  ``--size``-byte release through waves 1%,10%,50%,100% (1 h soak, 1 h check-ins, a 2 %
  concurrency limit) to the end; target: 10,000 devices in under 5 minutes wall on 2 cores.
* **check-ins**: ``--check-in-devices`` devices check in once each, no release offered;
  target: 100,000 devices in under 5 minutes.

Each reports wall seconds, devices/s, the server's check-ins/s (check-ins answered / wall),
requests, peak RSS, and the memory a device holds alone after the run (measured on the
objects, :mod:`otaforge.fleet.memory`; target < 64 KiB after a full update) next to the
shared part (factory image, content-addressed sector pool). Targets are printed as met or
missed; the figures are what they are.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from otaforge.fleet.engine import Progress  # noqa: E402
from otaforge.fleet.result import SimResult  # noqa: E402
from otaforge.fleet.run import SimSpec, simulate  # noqa: E402
from otaforge.fleet.spec import Amount, Plan, Scenario, parse_waves  # noqa: E402
from otaforge.formats.image_builder import build_image  # noqa: E402

PARTITIONS = (ROOT / "examples" / "partitions.csv").read_text()
TARGET_WALL_S = 300.0
TARGET_DEVICE_KIB = 64.0


def _spec(devices: int, size: int, check_ins_only: int = 0) -> SimSpec:
    plan = Plan(waves=parse_waves("1%,10%,50%,100%"), soak_s=3600.0, check_in_s=3600.0,
                max_failures=Amount(5.0), concurrency=max(2, devices // 50))
    return SimSpec(devices=devices, partitions_csv=PARTITIONS,
                   old=build_image(version="1.0.0", size=size, seed=0),
                   new=build_image(version="1.1.0", size=size, seed=1),
                   scenario=Scenario(plan=plan), seed=0, check_ins_only=check_ins_only)


def _line(name: str, result: SimResult) -> dict[str, object]:
    c = result.counters
    memory = result.memory.to_json() if result.memory else {}
    row: dict[str, object] = {
        "run": name, "devices": result.devices, "wall_s": round(result.wall_s, 1),
        "devices_per_s": round(result.devices / result.wall_s, 1),
        "check_ins": c.check_ins, "check_ins_per_s": round(c.check_ins / result.wall_s, 1),
        "updates": c.updates, "events": c.events, "simulated_h": round(result.sim_s / 3600, 1),
        "peak_rss_mib": round(result.peak_rss_mib, 1), "final": result.final,
        "rollout": result.rollout["state"], "bytes_served": result.bytes_served,
        "memory": memory}
    wall_ok = result.wall_s < TARGET_WALL_S
    row["target_wall"] = f"{'met' if wall_ok else 'MISSED'} (< {TARGET_WALL_S:.0f} s)"
    if memory and name == "rollout":
        kib = float(memory["per_device_kib"])
        row["target_memory"] = (f"{'met' if kib < TARGET_DEVICE_KIB else 'MISSED'} "
                                f"(< {TARGET_DEVICE_KIB:.0f} KiB per device)")
    return row


def _progress(name: str, started: float, progress: Progress) -> None:
    """One line per driver tick on stderr: how far a long run got."""
    print(f"{name}: {time.perf_counter() - started:.0f} s wall, t={progress.t_s / 3600:.1f} h,"
          f" {progress.confirmed}/{progress.devices} confirmed, {progress.installed} "
          f"installed, rollout {progress.state}", file=sys.stderr, flush=True)


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--check-in-devices", type=int, default=100_000)
    parser.add_argument("--size", type=int, default=600_000, help="release size in bytes")
    parser.add_argument("--only", choices=("rollout", "check-ins"))
    args = parser.parse_args(argv)
    runs = []
    if args.only != "check-ins":
        runs.append(("rollout", _spec(args.devices, args.size)))
    if args.only != "rollout":
        runs.append(("check-ins", _spec(args.check_in_devices, args.size, check_ins_only=1)))
    for name, spec in runs:
        started = time.perf_counter()
        cpu = _cpu_s()
        result = simulate(spec, partial(_progress, name, started))
        row = _line(name, result)
        row["cpu_s"] = round(_cpu_s() - cpu, 1)  # this process, server thread included
        print(json.dumps(row), flush=True)
        if name == "rollout" and (result.final["bricked"] or result.rollout["state"] !=
                                  "complete"):
            print(f"rollout did not complete cleanly after {time.perf_counter() - started:.0f}"
                  " s", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
