"""Benchmark: ``otaforge image info`` vs ``esptool image-info``, whole processes, same inputs.

Run by hand: ``.venv/bin/python bench/bench_image_info.py [--runs N]``. Each command is run
``N`` times, interleaved so both see the same machine state; the median wall time is reported
with the ratio esptool/otaforge (target: >= 2x on the 600 KB fixture). Inputs: the real
fixtures in ../shared/fixtures/esptool and a 1.5 MB image from ``otaforge image build``.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
FIXTURES = ROOT.parent / "shared" / "fixtures" / "esptool"
TARGET_RATIO = 2.0
# An installed package has its .pyc files; PYTHONDONTWRITEBYTECODE (set in some shells and CI)
# would make every timed run recompile the modules changed since the last write, so the timed
# processes run without it and the warm-up run writes the cache, as a pip install would.
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _run(cmd: list[str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one run of ``cmd``."""
    cpu0, start = _cpu(), time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=ENV)
    elapsed, cpu = time.perf_counter() - start, _cpu() - cpu0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.decode()}")
    return elapsed, cpu


def compare(label: str, ours: list[str], theirs: list[str], runs: int) -> float:
    """Median wall (and CPU) times of both commands, interleaved; prints, returns wall ratio.

    The CPU-time ratio is printed too: on a busy machine it is the steadier of the two.
    """
    _run(ours), _run(theirs)  # warm the page cache and .pyc files
    a: list[tuple[float, float]] = []
    b: list[tuple[float, float]] = []
    for _ in range(runs):
        a.append(_run(ours))
        b.append(_run(theirs))
    mine, ref = statistics.median(w for w, _ in a), statistics.median(w for w, _ in b)
    mine_cpu, ref_cpu = statistics.median(c for _, c in a), statistics.median(c for _, c in b)
    ratio = ref / mine
    print(f"{label:<42} otaforge {mine * 1000:6.1f} ms  esptool {ref * 1000:6.1f} ms  "
          f"ratio {ratio:5.2f}x  (CPU {mine_cpu * 1000:5.1f} vs {ref_cpu * 1000:5.1f} ms: "
          f"{ref_cpu / mine_cpu:4.2f}x)")
    return ratio


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    if "PYTHONDONTWRITEBYTECODE" in os.environ:
        print("note: PYTHONDONTWRITEBYTECODE is unset for the timed processes (an installed "
              "package has cached .pyc files)")
    otaforge, esptool = str(BIN / "otaforge"), str(BIN / "esptool")
    with tempfile.TemporaryDirectory() as tmp:
        built = Path(tmp) / "built-1.5MB.bin"
        subprocess.run([otaforge, "image", "build", "-o", str(built), "--version", "1.0.0",
                        "--size", "1500000", "--chip", "esp32s3"], check=True,
                       stdout=subprocess.DEVNULL, env=ENV)
        inputs = [FIXTURES / "esp32-app-template.bin", FIXTURES / "esp_idf_blink_esp32s2.bin",
                  built]
        ratios = {}
        for path in inputs:
            ratios[path.name] = compare(f"image info {path.name}",
                                        [otaforge, "image", "info", str(path)],
                                        [esptool, "image-info", str(path)], args.runs)
        compare("image info --json esp32-app-template.bin",
                [otaforge, "image", "info", "--json", str(inputs[0])],
                [esptool, "image-info", str(inputs[0])], args.runs)
    key = ratios["esp32-app-template.bin"]
    verdict = "meets" if key >= TARGET_RATIO else "MISSES"
    print(f"\n600 KB fixture: {key:.2f}x faster than esptool image-info "
          f"({verdict} the {TARGET_RATIO:.0f}x target)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
