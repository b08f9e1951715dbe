"""The README's tour, run verbatim as a newcomer would: every ``sh`` block of "A short tour"
in order, in one bash with ``set -euo pipefail``, in an empty directory beside the examples.

Any failing step fails the test (with the step's output); the server the tour starts in the
background is stopped whatever happens.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

README = ROOT / "README.md"
FENCE = re.compile(r"^```sh\n(.*?)^```", re.S | re.M)


def tour_blocks(text: str, heading: str = "## A short tour") -> list[str]:
    """The ``sh`` blocks of the README section that starts at ``heading``."""
    start = text.index(heading)
    end = text.find("\n## ", start + len(heading))
    return FENCE.findall(text[start:end if end != -1 else len(text)])


def test_the_tour_section_has_blocks() -> None:
    blocks = tour_blocks(README.read_text())
    assert len(blocks) >= 3
    assert any("server run" in b for b in blocks)


def test_readme_tour_runs_verbatim(tmp_path: Path) -> None:
    # a checkout as a newcomer has it after `make demo`: examples/ and an activatable .venv
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    activate = tmp_path / ".venv" / "bin" / "activate"
    activate.parent.mkdir(parents=True)
    activate.write_text(f'export PATH="{Path(sys.executable).parent}:$PATH"\n')
    script = ("set -euo pipefail\nset -x\n"
              "trap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n")
    script += "\n".join(tour_blocks(README.read_text()))
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTAFORGE_")}
    proc = subprocess.Popen(["bash", "-c", script], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=300)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)  # the background server, if still there
    assert proc.returncode == 0, out[-6000:]
    assert "Traceback" not in out, out[-6000:]
