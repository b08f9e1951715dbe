"""Benchmark: ``firmware build`` of the example app, and boots per second of the emulator.

Run by hand: ``.venv/bin/python bench/bench_firmware.py [--rounds N]``. Reports medians over N
rounds: a clean build of firmware/examples/ota_app (fresh cache: the host layer compiled too),
a rebuild with the host layer cached, and boots per second of a firmware that reboots at once
(``esp_restart()`` in ``app_main``: process start, hello, bootloader decision, reset). No
reference tool exists for these (``idf.py build`` needs the Xtensa toolchain), so the figures
stand alone.
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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
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


if __name__ == "__main__":
    main()
