"""Benchmark: every otaforge command that has an Espressif counterpart, as whole processes.

Run by hand::

    .venv/bin/python bench/bench_cli.py [--rounds 11] [--before-commit 6fa6e69]

Each case runs three commands on the same inputs: the reference tool (``esptool image-info``,
``espsecure sign-data`` / ``verify-signature`` / ``generate-signing-key``, ESP-IDF's real
``gen_esp32part.py`` from ``../shared/fixtures/esp-idf``), otaforge as it is in this tree, and
otaforge at ``--before-commit`` (``git archive`` into a temporary folder). The three run
interleaved, in a rotating order, for several rounds; the table shows medians and the ratios
reference/otaforge and before/otaforge. Targets (issue 9, section 4): at least 3x faster
than the reference (RSA key generation: at least as fast; its cost is the prime search) and
``otaforge --help`` under 60 ms.

All processes run with bytecode caching on (``PYTHONPYCACHEPREFIX`` in the temporary folder,
after a warm-up run), as after a pip install; both otaforge trees start through the same
``main()`` a console script calls.
"""

from __future__ import annotations

import argparse
import itertools
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
FIXTURES = Path(os.environ.get("OTAFORGE_SHARED_FIXTURES", ROOT.parent / "shared" / "fixtures"))
GEN_ESP32PART = FIXTURES / "esp-idf" / "gen_esp32part.py"
APP = FIXTURES / "esptool" / "esp32-app-template.bin"
TABLE_CSV = FIXTURES / "partitions" / "seed.csv"
TABLE_BIN = FIXTURES / "partitions" / "seed.bin"
LAUNCH = "import sys; from otaforge.cli.main import main; sys.exit(main())"
# a case: name -> (reference argv, otaforge argv (after `otaforge`)); "{n}" is a fresh number
Case = tuple[list[str], list[str]]


def _cases(work: Path) -> dict[str, Case]:
    es, et = str(BIN / "espsecure"), str(BIN / "esptool")
    gen = [sys.executable, str(GEN_ESP32PART)]
    cases: dict[str, Case] = {
        "image info": ([et, "image-info", str(APP)], ["image", "info", str(APP)]),
        "partitions csv->bin": ([*gen, str(TABLE_CSV), str(work / "ref-{n}.bin")],
                                ["partitions", "convert", str(TABLE_CSV),
                                 str(work / "ours-{n}.bin")]),
        "partitions bin->csv": ([*gen, str(TABLE_BIN), str(work / "ref-{n}.csv")],
                                ["partitions", "convert", str(TABLE_BIN),
                                 str(work / "ours-{n}.csv")]),
    }
    for scheme, version in (("rsa3072", "2"), ("ecdsa256", "2"), ("ecdsa384", "2"),
                            ("v1", "1")):
        key, signed = str(work / f"{scheme}.pem"), str(work / f"{scheme}-signed.bin")
        cases[f"sign {scheme}"] = (
            [es, "sign-data", "--version", version, "--keyfile", key, "-o",
             str(work / "ref-{n}.bin"), str(APP)],
            ["image", "sign", "--version", version, "--key", key, "-o",
             str(work / "ours-{n}.bin"), str(APP)])
        cases[f"verify {scheme}"] = (
            [es, "verify-signature", "--version", version, "--keyfile", key, signed],
            ["image", "verify", "--version", version, "--key", key, signed])
        scheme_args = ["--scheme", scheme] if version == "2" else []
        cases[f"keygen {scheme}"] = (
            [es, "generate-signing-key", "--version", version, *scheme_args,
             str(work / "ref-{n}.pem")],
            ["keys", "generate", "--version", version, *scheme_args,
             str(work / "ours-{n}.pem")])
    return cases


def _prepare(work: Path, env: dict[str, str]) -> None:
    es = str(BIN / "espsecure")
    for scheme, version in (("rsa3072", "2"), ("ecdsa256", "2"), ("ecdsa384", "2"),
                            ("v1", "1")):
        key = str(work / f"{scheme}.pem")
        extra = ["--scheme", scheme] if version == "2" else []
        subprocess.run([es, "generate-signing-key", "--version", version, *extra, key],
                       check=True, capture_output=True, env=env)
        subprocess.run([es, "sign-data", "--version", version, "--keyfile", key, "-o",
                        str(work / f"{scheme}-signed.bin"), str(APP)],
                       check=True, capture_output=True, env=env)


def _before_tree(commit: str, work: Path) -> Path:
    dest = work / "before"
    dest.mkdir()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", commit], check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return dest / "src"


counter = itertools.count()


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _timed(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall, CPU) seconds of one run of ``argv``."""
    n = str(next(counter))
    cmd = [a.replace("{n}", n) for a in argv]
    cpu, start = _cpu(), time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, env=env, check=False)
    elapsed, cpu = time.perf_counter() - start, _cpu() - cpu
    if proc.returncode != 0:
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(cmd)}\n"
                         f"{proc.stderr.decode(errors='replace')}")
    return elapsed, cpu


def _runners(cases: dict[str, Case], envs: dict[str, dict[str, str]]
             ) -> dict[str, dict[str, Callable[[], tuple[float, float]]]]:
    out: dict[str, dict[str, Callable[[], tuple[float, float]]]] = {}
    for name, (ref, ours) in cases.items():
        ours_cmd = [sys.executable, "-c", LAUNCH, *ours]
        out[name] = {
            "reference": lambda ref=ref: _timed(ref, envs["reference"]),
            "before": lambda cmd=ours_cmd: _timed(cmd, envs["before"]),
            "otaforge": lambda cmd=ours_cmd: _timed(cmd, envs["after"]),
        }
    helps = [sys.executable, "-c", LAUNCH, "--help"]
    out["otaforge --help"] = {
        "before": lambda: _timed(helps, envs["before"]),
        "otaforge": lambda: _timed(helps, envs["after"]),
    }
    return out


def _target(name: str, ratio: float | None, after: float) -> str:
    if name == "otaforge --help":
        return "ok" if after < 0.060 else "MISS (< 60 ms)"
    want = 1.0 if name == "keygen rsa3072" else 3.0
    assert ratio is not None
    return "ok" if ratio >= want else f"MISS (>= {want:.0f}x)"


def _row(name: str, med: dict[str, float]) -> None:
    after = med["otaforge"]
    ratio = med["reference"] / after if "reference" in med else None
    ref = f"{med['reference'] * 1000:8.1f}ms" if "reference" in med else " " * 9 + "-"
    ratio_text = f"{ratio:9.2f}x" if ratio else " " * 9 + "-"
    print(f"{name:<22}{ref}{med['before'] * 1000:7.1f}ms{after * 1000:8.1f}ms"
          f"{ratio_text}{med['before'] / after:11.2f}x  {_target(name, ratio, after)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=11)
    parser.add_argument("--before-commit", default="6fa6e69")
    args = parser.parse_args()
    base = {k: v for k, v in os.environ.items()
            if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPATH")}
    with tempfile.TemporaryDirectory(prefix="bench_cli_") as tmp:
        work = Path(tmp)
        before = _before_tree(args.before_commit, work)
        cache = {"PYTHONPYCACHEPREFIX": str(work / "pycache")}
        envs = {"reference": {**base, **cache},
                "before": {**base, **cache, "PYTHONPATH": str(before)},
                "after": {**base, **cache, "PYTHONPATH": str(ROOT / "src")}}
        _prepare(work, envs["reference"])
        runners = _runners(_cases(work), envs)
        for tools in runners.values():  # warm-up: page cache, .pyc files, outputs checked
            for run in tools.values():
                run()
        times: dict[str, dict[str, list[tuple[float, float]]]] = {
            name: {tool: [] for tool in tools} for name, tools in runners.items()}
        for r in range(args.rounds):
            for name, tools in runners.items():
                order = list(tools)
                order = order[r % len(order):] + order[:r % len(order)]
                for tool in order:
                    times[name][tool].append(tools[tool]())
        load = os.getloadavg()[0]
        print(f"{args.rounds} rounds, interleaved, medians; before = {args.before_commit}; "
              f"load average {load:.1f} on {os.cpu_count()} CPUs")
        for column, label in ((0, "wall time"), (1, "CPU time (user+sys), steadier on a busy "
                                                   "machine")):
            print(f"\n{label}")
            print(f"{'case':<22}{'reference':>10}{'before':>9}{'otaforge':>10}"
                  f"{'ref/ours':>10}{'before/ours':>12}  target")
            for name, by_tool in times.items():
                _row(name, {tool: statistics.median(t[column] for t in v)
                            for tool, v in by_tool.items()})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
