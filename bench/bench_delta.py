"""Benchmark: esp_delta_ota patch sizes and times for real images, next to the references.

Run by hand: ``.venv/bin/python bench/bench_delta.py [--rounds 5]``.

Pairs: each real app image of ``../shared/fixtures`` (hello_world_esp32, esp32-app-template,
esp_idf_blink_esp32s2) to three releases made from it (``otaforge.delta.variants``): a
version-string change, a small code change (64 bytes rewritten + 64 inserted) and a larger
release (1 % of the largest segment's words rewritten, 8 KiB inserted).

* Size (stock esp_delta_ota: sequential bsdiff + heatshrink 8/7, 64-byte header included):
  otaforge's patch next to the patch of Espressif's ``esp_delta_ota_patch_gen.py`` (run as a
  subprocess on the same files; otaforge must never be larger -- the bench fails otherwise),
  the heatshrink 8/7 floor (every new byte passes the decompressor; one 16-bit back-reference
  yields at most 128 bytes: new_size / 64) and NervesHub's published 1.6 % / 3.1 %.
* Better encodings the stock component cannot apply (detools' own figures): lzma, zstd and
  heatshrink with a 4 KiB window / 2 KiB lookahead (needs a device build with
  HEATSHRINK_DYNAMIC_ALLOC or other static sizes).
* Time: patch creation (otaforge's create, which also applies the patch twice to check it,
  against detools.create_patch alone) and application (otaforge's pure-Python resumable
  applier against detools' applier), interleaved, medians over ``--rounds``.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
SHARED = Path(os.environ.get("OTAFORGE_SHARED_FIXTURES", ROOT.parent / "shared" / "fixtures"))
GENERATOR = SHARED / "esp-idf" / "esp_delta_ota_patch_gen.py"
IMAGES = ("esp-idf/hello_world_esp32.bin", "esptool/esp32-app-template.bin",
          "esptool/esp_idf_blink_esp32s2.bin")
NERVESHUB = {"version": 0.016, "code": 0.031}
HEADER = 64

import detools  # noqa: E402

from otaforge.delta import variants  # noqa: E402
from otaforge.delta.applier import apply_patch  # noqa: E402
from otaforge.delta.create import create_patch, detools_patch  # noqa: E402
from otaforge.formats.app_image import AppImage  # noqa: E402


def _release(base: bytes, kind: str) -> bytes:
    if kind == "version":
        return variants.version_change(base)
    if kind == "code":
        return variants.code_change(base)
    return variants.larger_release(base)


def _generator_size(base: Path, new: bytes, chip: str, work: Path) -> int:
    (work / "new.bin").write_bytes(new)
    out = work / "gen.bin"
    done = subprocess.run([sys.executable, str(GENERATOR), "create_patch", "--chip", chip,
                           "--base_binary", str(base), "--new_binary", "new.bin",
                           "--patch_file_name", str(out)], cwd=work, capture_output=True,
                          text=True, timeout=300, check=False)
    if "verified successfully" not in done.stdout:
        raise SystemExit(f"generator failed on {base.name}: {done.stdout}{done.stderr}")
    return out.stat().st_size


def _median_pair(rounds: int, first: Callable[[], object],
                 second: Callable[[], object]) -> tuple[float, float]:
    a: list[float] = []
    b: list[float] = []
    for i in range(rounds):
        order = [(first, a), (second, b)] if i % 2 == 0 else [(second, b), (first, a)]
        for fn, bucket in order:
            began = time.perf_counter()
            fn()
            bucket.append(time.perf_counter() - began)
    return statistics.median(a), statistics.median(b)


def _detools_apply(base: bytes, patch: bytes) -> bytes:
    out = io.BytesIO()
    detools.apply_patch(io.BytesIO(base), io.BytesIO(patch[HEADER:]), out)
    return out.getvalue()


def _pct(n: int, total: int) -> str:
    return f"{100 * n / total:6.2f}%"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args, _ = parser.parse_known_args(argv)
    failures = []
    print("size: % of the new image (64-byte header included); floor = new/64 + header")
    print(f"{'pair':44} {'new':>8} {'otaforge':>9} {'generator':>9} {'floor':>8} "
          f"{'NervesHub':>9} | {'lzma':>7} {'zstd':>7} {'hs 12/11':>8}")
    timings = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for path in IMAGES:
            base_path = SHARED / path
            base = base_path.read_bytes()
            chip = AppImage.from_bytes(base).chip
            chip_name = chip.name if chip is not None else "esp32"
            for kind in ("version", "code", "larger"):
                new = _release(base, kind)
                ours = create_patch(base, new).patch
                gen = _generator_size(base_path, new, chip_name, work)
                if len(ours) > gen:
                    failures.append(f"{path} {kind}: otaforge {len(ours)} > generator {gen}")
                floor = len(new) // 64 + HEADER
                lz = len(detools_patch(base, new, "lzma")) + HEADER
                zs = len(detools_patch(base, new, "zstd")) + HEADER
                hs = len(detools_patch(base, new, "heatshrink", 12, 11)) + HEADER
                ref = NERVESHUB.get(kind)
                nh = f"{100 * ref:8.1f}%" if ref else f"{'-':>9}"
                name = f"{Path(path).stem} {kind}"
                print(f"{name:44} {len(new):8d} {_pct(len(ours), len(new)):>9} "
                      f"{_pct(gen, len(new)):>9} {_pct(floor, len(new)):>8} {nh} | "
                      f"{_pct(lz, len(new)):>7} {_pct(zs, len(new)):>7} "
                      f"{_pct(hs, len(new)):>8}")
                make = _median_pair(args.rounds, partial(create_patch, base, new),
                                    partial(detools_patch, base, new))
                use = _median_pair(args.rounds, partial(apply_patch, base, ours),
                                   partial(_detools_apply, base, ours))
                timings.append((name, make, use))
    print()
    print(f"time (median of {args.rounds}, interleaved)")
    print(f"{'pair':44} {'create ours':>11} {'detools':>9} {'apply ours':>11} {'detools':>9}")
    for name, (mo, md), (ao, ad) in timings:
        print(f"{name:44} {mo * 1e3:9.1f}ms {md * 1e3:7.1f}ms {ao * 1e3:9.1f}ms "
              f"{ad * 1e3:7.1f}ms")
    for line in failures:
        print(f"FAIL {line}")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
