"""Benchmark: sign and verify a 1.5 MB image as whole processes, otaforge vs espsecure.

Run by hand::

    .venv/bin/python bench/bench_signing.py [--runs 7] [--size 1572864]

For every scheme (Secure Boot v2 RSA-3072, ECDSA-256, ECDSA-384, and v1) both tools sign the
same image with the same key (made by espsecure) and verify the result, each as a fresh process
started from its console script, runs interleaved; the median wall time of each is printed with
the ratio espsecure / otaforge (target: at least 2x). Each tool's output is cross-checked by the
other tool first, so the timed commands are known to do the same job.

Both tools run with bytecode caching on (``PYTHONPYCACHEPREFIX`` in a temporary folder, after a
warm-up run), as in a normal pip install; a checkout with ``PYTHONDONTWRITEBYTECODE=1`` would
otherwise recompile otaforge's modules on every start while espsecure's are precompiled.
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

BIN = Path(sys.executable).parent
OTAFORGE = str(BIN / "otaforge")
ESPSECURE = str(BIN / "espsecure")
SCHEMES = (("rsa3072", "2"), ("ecdsa256", "2"), ("ecdsa384", "2"), ("v1", "1"))


def _env(cache: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(cache)
    return env


def _run(cmd: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"command failed: {' '.join(cmd)}\n{proc.stdout}\n{proc.stderr}")
    return elapsed


def _image(size: int) -> bytes:
    try:
        from otaforge.formats.image_builder import build_image

        return build_image(version="bench-1.0", size=size)
    except Exception:  # builder not available: espsecure signs any file the same way
        return bytes((i * 2654435761 >> 13) & 0xFF for i in range(size))


def _commands(work: Path, scheme: str, version: str) -> dict[str, list[str]]:
    key, image = str(work / f"{scheme}.pem"), str(work / "image.bin")
    ours, theirs = str(work / f"ours_{scheme}.bin"), str(work / f"es_{scheme}.bin")
    cmds = {
        "otaforge sign": [OTAFORGE, "image", "sign", "--version", version, "--key", key,
                          "-o", ours, image],
        "espsecure sign": [ESPSECURE, "sign-data", "--version", version, "--keyfile", key,
                           "-o", theirs, image],
        "otaforge verify": [OTAFORGE, "image", "verify", "--version", version, "--key", key,
                            theirs],
        "espsecure verify": [ESPSECURE, "verify-signature", "--version", version, "--keyfile",
                             key, ours],
    }
    return cmds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--size", type=int, default=1_572_864)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench_signing_") as tmp:
        work = Path(tmp)
        env = _env(work / "pycache")
        (work / "image.bin").write_bytes(_image(args.size))
        print(f"image: {args.size} bytes; {args.runs} runs each, interleaved; best-of-N "
              "(median) wall time per process; ratio = espsecure / otaforge, on best-of-N")
        head = f"{'scheme':<9} {'step':<6} {'otaforge':>17} {'espsecure':>17} {'ratio':>6}"
        print(head)
        ratios: list[float] = []
        for scheme, version in SCHEMES:
            gen = ["generate-signing-key", "--version", version]
            if version == "2":
                gen += ["--scheme", scheme]
            _run([ESPSECURE, *gen, str(work / f"{scheme}.pem")], env)
            cmds = _commands(work, scheme, version)
            for cmd in cmds.values():  # warm-up, creates both outputs, cross-verifies
                _run(cmd, env)
            times: dict[str, list[float]] = {name: [] for name in cmds}
            for _ in range(args.runs):
                for name, cmd in cmds.items():
                    times[name].append(_run(cmd, env))
            for step in ("sign", "verify"):
                ours, theirs = times[f"otaforge {step}"], times[f"espsecure {step}"]
                ratios.append(min(theirs) / min(ours))
                line = (f"{scheme:<9} {step:<6} {_fmt(ours)} {_fmt(theirs)} "
                        f"{ratios[-1]:>5.2f}x")
                print(line)
        _summary("otaforge command", ratios)


def _fmt(times: list[float]) -> str:
    return f"{min(times) * 1000:6.1f} ({statistics.median(times) * 1000:6.1f})ms"


def _summary(what: str, ratios: list[float]) -> None:
    print(f"{what}: geometric mean speed-up vs espsecure {statistics.geometric_mean(ratios):.2f}x"
          f" (min {min(ratios):.2f}x; target >= 2x)")


if __name__ == "__main__":
    main()
