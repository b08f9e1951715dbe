"""Run every ``bench/bench_*.py`` in turn with this Python; exit non-zero if one fails.

Usage: ``.venv/bin/python bench/run_all.py [extra args passed to every benchmark]``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str]) -> int:
    failed = []
    for script in sorted(HERE.glob("bench_*.py")):
        print(f"=== {script.name}", flush=True)
        code = subprocess.run([sys.executable, str(script), *argv]).returncode
        if code != 0:
            failed.append(f"{script.name} (exit {code})")
        print(flush=True)
    if failed:
        print("failed: " + ", ".join(failed))
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
