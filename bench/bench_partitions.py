"""Benchmark: ``otaforge partitions convert`` vs ESP-IDF's gen_esp32part.py, whole processes.

Both tools convert the same inputs (the shared fixture CSVs and binaries plus a generated
94-partition table) in the same run; the script prints median wall time per conversion and
the ratio otaforge / gen_esp32part (below 1.0 = otaforge is faster).

The reference is ESP-IDF's own gen_esp32part.py in ``../shared/fixtures/esp-idf/`` (it runs
with the packages esptool brings).

Usage: ``.venv/bin/python bench/bench_partitions.py [--repeat 15]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(os.environ.get("OTAFORGE_SHARED_FIXTURES", ROOT.parent / "shared" / "fixtures"))
OTAFORGE = Path(sys.executable).parent / "otaforge"
GEN_ESP32PART = FIXTURES / "esp-idf" / "gen_esp32part.py"
# An installed package has its .pyc files; PYTHONDONTWRITEBYTECODE would make every timed run
# recompile the modules changed since the last write, so the timed processes run without it
# (the warm-up run writes the cache, as a pip install would).
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def _inputs(work: Path) -> list[Path]:
    inputs = sorted((FIXTURES / "partitions").glob("*.csv"))
    inputs += sorted((FIXTURES / "partitions").glob("*.bin"))
    big = work / "big94.csv"
    big.write_text("# Name, Type, SubType, Offset, Size, Flags\n"
                   + "".join(f"part{i}, data, fat, , 0x1000,\n" for i in range(94)))
    return [*inputs, big]


def _time(cmd: list[str], repeat: int) -> float:
    subprocess.run(cmd, capture_output=True, check=False, env=ENV)  # warm .pyc and page cache
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, check=False, env=ENV)
        samples.append(time.perf_counter() - start)
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed: {proc.stderr.decode(errors='replace')}")
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    if not GEN_ESP32PART.is_file():
        raise SystemExit(f"{GEN_ESP32PART}: missing (../shared/fixtures beside the checkout)")
    gen = str(GEN_ESP32PART)
    if os.environ.get("PYTHONDONTWRITEBYTECODE"):
        print("note: PYTHONDONTWRITEBYTECODE is unset for the timed processes (an installed "
              "package has cached .pyc files)")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        ours_total = theirs_total = 0.0
        print(f"{'input':28} {'otaforge ms':>12} {'gen_esp32part ms':>17} {'ratio':>7}")
        for src in _inputs(work):
            out_ours, out_gen = work / f"ours-{src.name}.out", work / f"gen-{src.name}.out"
            ours = _time([str(OTAFORGE), "partitions", "convert", str(src), str(out_ours)],
                         args.repeat)
            ours_total += ours
            theirs = _time([sys.executable, gen, "-q", str(src), str(out_gen)], args.repeat)
            theirs_total += theirs
            same = out_ours.read_bytes() == out_gen.read_bytes()
            print(f"{src.name:28} {ours * 1000:12.1f} {theirs * 1000:17.1f} "
                  f"{ours / theirs:7.2f}{'' if same else '  OUTPUT DIFFERS'}")
        print(f"{'total':28} {ours_total * 1000:12.1f} {theirs_total * 1000:17.1f} "
              f"{ours_total / theirs_total:7.2f}  (otaforge / gen_esp32part)")


if __name__ == "__main__":
    main()
