"""Benchmark: ``firmware build`` of the example app, boots per second of the emulator, and
``firmware sweep`` of the example's update.

Run by hand: ``.venv/bin/python bench/bench_firmware.py [--rounds N] [--sweep-every K]``.
Reports medians over N rounds: a clean build of firmware/examples/ota_app (fresh cache: the
host layer compiled too), a rebuild with the host layer cached, and boots per second of a
firmware that reboots at once (``esp_restart()`` in ``app_main``: process start, hello,
bootloader decision, reset). Then the power-cut sweep (before/after/torn) of the example
updating itself from factory 1.0.0 to a 600 KB 1.1.0 against a real otaforge server on
loopback (in this process; the cases run in ``--jobs`` worker processes): cases per second,
and the time of the whole sweep (target: under 2 minutes). ``--sweep-every K`` sweeps every
K-th op only (a sample: the full time is then extrapolated from the cases per second and
marked so). No reference tool exists for these (``idf.py build`` needs the Xtensa toolchain),
so the figures stand alone.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from otaforge.device.config import DeviceConfig  # noqa: E402
from otaforge.device.flash import MemoryFlash  # noqa: E402
from otaforge.device.flash_image import compose  # noqa: E402
from otaforge.firmware.build import build  # noqa: E402
from otaforge.firmware.runner import FirmwareDevice  # noqa: E402
from otaforge.formats.partition_table import PartitionTable  # noqa: E402

EXAMPLE = ROOT / "firmware" / "examples" / "ota_app"
BOOTS = 40
SWEEP_IMAGE = 600 * 1024
SWEEP_TARGET_S = 120.0


def _example(tmp: Path) -> Path:
    shutil.copytree(EXAMPLE.parents[1], tmp / "firmware")
    project = tmp / "firmware" / "examples" / "ota_app"
    (project / "main" / "server_cert.pem").write_text("not a real CA (build only)\n")
    return project


def _restarter(tmp: Path) -> Path:
    root = tmp / "restarter"
    (root / "main").mkdir(parents=True)
    (root / "CMakeLists.txt").write_text("project(restarter)\n")
    (root / "main" / "CMakeLists.txt").write_text('idf_component_register(SRCS "main.c")\n')
    (root / "main" / "main.c").write_text('#include "esp_system.h"\n'
                                          "void app_main(void) { esp_restart(); }\n")
    return root


def sweep(tmp: Path, every: int, jobs: int, size: int = SWEEP_IMAGE) -> None:
    """The example's update swept at every (or every K-th) op; prints the figures."""
    from otaforge.demo.local_server import LOOPBACK_CONNECTIONS, LocalServer
    from otaforge.firmware.commands import sweep_firmware
    from otaforge.fsutil import atomic_write
    from otaforge.server.settings import Settings

    os.environ["OTAFORGE_FIRMWARE_CACHE"] = str(tmp / "sweep-cache")
    settings = Settings(data_dir=tmp / "server", access_log=False,
                        max_connections_per_client=LOOPBACK_CONNECTIONS)
    with LocalServer(tmp / "server", settings) as server, server.admin() as admin:
        csv = (EXAMPLE / "partitions.csv").read_text()
        admin.create_fleet("bench", "esp32", csv)
        token = admin.create_device("bench", "bench-1")["token"]
        project = _example(tmp / "sweep")
        (project / "main" / "server_cert.pem").write_bytes(server.ca_pem)
        defines = {"CONFIG_OTAFORGE_SERVER_URL": f'"{server.url}"',
                   "CONFIG_OTAFORGE_FLEET": '"bench"', "CONFIG_OTAFORGE_DEVICE_ID": '"bench-1"',
                   "CONFIG_OTAFORGE_DEVICE_TOKEN": f'"{token}"'}
        factory = build(project, version="1.0.0", defines=defines)
        update = build(project, version="1.1.0", defines=defines, image_size=size)
        admin.publish("bench", update.image, channel="stable")
        flash = tmp / "FLASH.bin"
        table = PartitionTable.from_csv(csv)
        atomic_write(flash, compose(table, {"factory": factory.image}, flash_size=8 << 20))
        ops = None
        if every > 1:
            listing = sweep_firmware(flash, ops="0", modes="after", jobs=1)  # count the ops
            total = len(listing.recording.ops)
            ops = ",".join(str(i) for i in range(0, total, every))
        t0 = time.perf_counter()
        report = sweep_firmware(flash, ops=ops, jobs=jobs)
        took = time.perf_counter() - t0
    cases = len(report.cases)
    full = len(report.recording.ops) * 3
    rate = cases / took
    whole = took if ops is None else full / rate
    label = "measured" if ops is None else f"extrapolated from every {every}th op"
    print(f"firmware sweep (example 1.0.0 -> 1.1.0, {len(update.image)} bytes, "
          f"{len(report.recording.ops)} flash ops, jobs {jobs}): {cases} cases "
          f"({report.distinct} run, {report.known} ended at a known boot state), "
          f"{report.bricked} bricked in {took:.1f} s: "
          f"{rate:.2f} cases/s")
    print(f"firmware sweep, full before/after/torn ({full} cases): {whole:.0f} s ({label}); "
          f"target {SWEEP_TARGET_S:.0f} s for a 600 KB image: {SWEEP_TARGET_S / whole:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sweep-every", type=int, default=1, metavar="K",
                        help="sweep every K-th op only (default 1: the full sweep)")
    parser.add_argument("--jobs", type=int, default=2, help="sweep worker processes")
    parser.add_argument("--sweep-kib", type=int, default=SWEEP_IMAGE // 1024, metavar="KIB",
                        help="size of the update image swept (default 600 KiB: the target)")
    parser.add_argument("--no-sweep", action="store_true")
    args = parser.parse_args()
    clean, cached, rates = [], [], []
    for _ in range(args.rounds):
        with tempfile.TemporaryDirectory() as tmp_name:
            tmp = Path(tmp_name)
            os.environ["OTAFORGE_FIRMWARE_CACHE"] = str(tmp / "cache")
            project = _example(tmp)
            t0 = time.perf_counter()
            build(project)
            clean.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            build(project, version="2")
            cached.append(time.perf_counter() - t0)
            image = build(_restarter(tmp)).image
            table = PartitionTable.from_csv((EXAMPLE / "partitions.csv").read_text())
            flash = MemoryFlash(8 << 20, compose(table, {"factory": image}, flash_size=8 << 20))
            device = FirmwareDevice(flash, "esp32", DeviceConfig(max_boots=BOOTS))
            t0 = time.perf_counter()
            device.power_on()
            rates.append(len(device.boots) / (time.perf_counter() - t0))
    print(f"firmware build (example, clean cache): median {statistics.median(clean):.2f} s")
    print(f"firmware build (example, host layer cached): median "
          f"{statistics.median(cached):.2f} s")
    print(f"firmware run: median {statistics.median(rates):.0f} boots/s ({BOOTS} boots)")
    if not args.no_sweep:
        with tempfile.TemporaryDirectory() as tmp_name:
            sweep(Path(tmp_name), args.sweep_every, args.jobs, args.sweep_kib * 1024)


if __name__ == "__main__":
    main()
