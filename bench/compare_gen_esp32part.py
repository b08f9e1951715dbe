"""By-hand oracle check: otaforge's partition table conversion against ESP-IDF's gen_esp32part.py.

Every scenario of ``tests/formats/test_partition_table_rules.py`` (each gen_esp32part rule, one
rejected or accepted CSV) plus ``--count`` random CSV tables is converted by both tools. They
must agree on the verdict (accepted or rejected) and, when accepted, on every byte of the binary.

The reference is ESP-IDF's own gen_esp32part.py in ``../shared/fixtures/esp-idf/``, run as a
command (``make test`` runs the same comparison in process, bounded, in
``tests/formats/test_gen_esp32part_differential.py``; this script runs more tables, by hand).

Usage: ``.venv/bin/python bench/compare_gen_esp32part.py [--count 150] [--seed 2026]``.
Exit status: 0 all agree, 1 any disagreement, 2 bad setup.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(os.environ.get("OTAFORGE_SHARED_FIXTURES", ROOT.parent / "shared" / "fixtures"))
GEN_ESP32PART = FIXTURES / "esp-idf" / "gen_esp32part.py"
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from tests.formats.test_partition_table_rules import ACCEPTED, REJECTED  # noqa: E402

from otaforge.errors import OtaforgeError  # noqa: E402
from otaforge.formats.partition_table import convert_table  # noqa: E402

_FIELDS = {
    "type": ["app", "data", "DATA", "0x40", "2", "bootloader", "partition_table", "", "foo", "256"],
    "subtype": ["factory", "ota_0", "ota_1", "ota_16", "test", "nvs", "ota", "phy", "coredump",
                "spiffs", "littlefs", "tee_ota", "", "0x10", "0x99", "primary", "fatk"],
    "offset": ["", "", "", "0x9000", "0x10000", "0x20000", "1M", "64K", "-0x1000", "zz", "010",
               "0x110000", "0xd000"],
    "size": ["", "4K", "0x2000", "8K", "1M", "-0x400000", "0x3000", "12k", "0", "1.5M", "0x1001",
             "24K", "0x100000", "0x1C0000"],
    "flags": ["", "", "encrypted", "readonly", "encrypted:readonly", "bad", " readonly"],
}


@dataclass(frozen=True)
class Case:
    """One CSV input with gen_esp32part options (``secure_v1``, bootloader offsets)."""

    name: str
    csv: str
    opts: dict[str, int]


def random_csv(rng: random.Random) -> str:
    """A small CSV table mixing valid and invalid fields (names, types, offsets, sizes, flags)."""
    lines = []
    for _ in range(rng.randrange(1, 7)):
        name = rng.choice(["nvs", "otadata", "factory", "ota_0", "ota_1", "storage", "x" * 20])
        fields = [name, *(rng.choice(_FIELDS[k]) for k in _FIELDS)]
        lines.append(", ".join(fields[:rng.choice([6, 6, 5, 4])]))
    return "\n".join(lines) + "\n"


def cases(count: int, seed: int) -> list[Case]:
    """The test suite's rule scenarios, then ``count`` random tables."""
    out = [Case(f"rejected/{name}", csv, opts) for name, csv, opts, _ in REJECTED]
    out += [Case(f"accepted/{name}", csv, opts) for name, csv, opts in ACCEPTED]
    rng = random.Random(seed)
    out += [Case(f"random/{i}", random_csv(rng), {}) for i in range(count)]
    return out


def ours(case: Case) -> tuple[bytes | None, str]:
    """otaforge's binary (None when rejected) and its error text."""
    kwargs = dict(case.opts)
    secure = "v1" if kwargs.pop("secure_v1", 0) else None
    try:
        return convert_table(case.csv.encode(), secure=secure, **kwargs).output, ""
    except OtaforgeError as err:
        return None, str(err)


def theirs(script: str, case: Case, work: Path) -> tuple[bytes | None, str]:
    """gen_esp32part.py's binary (None when it exits non-zero) and its stderr."""
    args = [sys.executable, script, "-q"]
    if case.opts.get("secure_v1"):
        args += ["--secure", "v1"]
    for key in ("primary_bootloader_offset", "recovery_bootloader_offset"):
        if key in case.opts:
            args += [f"--{key.replace('_', '-')}", hex(case.opts[key])]
    source = work / "input.csv"
    source.write_bytes(case.csv.encode())
    proc = subprocess.run([*args, str(source), "-"], capture_output=True, timeout=60, check=False)
    err = proc.stderr.decode(errors="replace").strip()
    return (proc.stdout if proc.returncode == 0 else None), err


def disagreement(case: Case, mine: tuple[bytes | None, str],
                 ref: tuple[bytes | None, str]) -> str | None:
    """A description of how the two tools differ on ``case``, or None when they agree."""
    (out, why), (ref_out, ref_why) = mine, ref
    if out == ref_out:
        return None
    if out is None or ref_out is None:
        verdict = f"otaforge {'rejects' if out is None else 'accepts'}, gen_esp32part " \
                  f"{'rejects' if ref_out is None else 'accepts'}"
    else:
        first = next((i for i, (a, b) in enumerate(zip(out, ref_out, strict=False)) if a != b),
                     min(len(out), len(ref_out)))
        verdict = f"both accept, binaries differ from byte 0x{first:x}"
    return (f"{case.name}: {verdict}\n  options: {case.opts}\n  csv: {case.csv!r}\n"
            f"  otaforge: {why or 'ok'}\n  gen_esp32part: {ref_why or 'ok'}")


def main() -> int:
    """Run every case through both tools; print each disagreement and a summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=150, help="random tables (default 150)")
    parser.add_argument("--seed", type=int, default=2026, help="random seed (default 2026)")
    args = parser.parse_args()
    script = str(GEN_ESP32PART)
    if not GEN_ESP32PART.is_file():
        print(f"{script}: missing (../shared/fixtures beside the checkout)", file=sys.stderr)
        return 2
    todo = cases(args.count, args.seed)
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        for case in todo:
            problem = disagreement(case, ours(case), theirs(script, case, Path(tmp)))
            if problem:
                failures.append(problem)
                print(problem)
    print(f"{len(todo) - len(failures)}/{len(todo)} cases agree with {script} "
          f"({len(REJECTED)} rejected + {len(ACCEPTED)} accepted scenarios, {args.count} random)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
