"""``otaforge fleet simulate`` as a user runs it: the ``--json`` document has exactly the
issue's keys, ``--report`` writes one self-contained HTML page with its plots, exit 1 when a
bad release spread past the wave that should have stopped it, exit 2 for bad input with
nothing written."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.conftest import run_cli

TOP_KEYS = {"devices", "wall_s", "peak_rss_mib", "final", "rollout", "blast_radius",
            "bytes_served"}
FINAL_KEYS = {"confirmed", "rolled_back", "failed", "silent", "on_old", "bricked"}


def _simulate(files: tuple[Path, Path, Path], *extra: str) -> list[str]:
    csv, old, new = files
    return ["fleet", "simulate", "--partitions", str(csv), "--from", str(old),
            "--release", str(new), "--check-in", "5m", *extra]


def test_silent_release_past_a_client_gate_without_soak_exit_1_json_and_report(
        image_files: tuple[Path, Path, Path], tmp_path: Path) -> None:
    report = tmp_path / "report.html"
    done = run_cli(*_simulate(image_files, "--devices", "40", "--waves", "25%,50%,100%",
                              "--soak", "0", "--max-failures", "1", "--release-fails",
                              "30%:silent", "--seed", "2", "--controller", "channel",
                              "--json", "--report",
                              str(report)))
    assert done.returncode == 1, done.stderr
    doc = json.loads(done.stdout)
    assert set(doc) == TOP_KEYS
    assert set(doc["final"]) == FINAL_KEYS
    assert set(doc["rollout"]) == {"state", "paused_reason", "waves"}
    assert doc["devices"] == 40 == sum(doc["final"].values())
    assert doc["blast_radius"] > doc["rollout"]["waves"][0]["devices"]
    page = report.read_text()
    assert page.count("<svg") >= 2 and "Gate decisions" in page
    assert "spread past it" in page
    # self-contained: no script, stylesheet, image or font fetched from anywhere
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert "<script" not in page


def test_good_release_exit_0_with_summary(image_files: tuple[Path, Path, Path]) -> None:
    done = run_cli(*_simulate(image_files, "--devices", "12", "--waves", "50%,100%",
                              "--soak", "10m", "--faults", "power_cut=0.3,drop=0.3"))
    assert done.returncode == 0, done.stderr
    assert "confirmed 12," in done.stdout and "bricked 0" in done.stdout
    assert "rollout complete" in done.stdout


def test_bad_release_fails_mode_is_bad_input(image_files: tuple[Path, Path, Path],
                                            tmp_path: Path) -> None:
    report = tmp_path / "r.html"
    done = run_cli(*_simulate(image_files, "--devices", "5", "--release-fails",
                              "20%:explode", "--report", str(report)))
    assert done.returncode == 2
    assert "--release-fails" in done.stderr and "Traceback" not in done.stderr
    assert not report.exists()


def test_report_marks_where_the_server_paused_and_why(image_files: tuple[Path, Path, Path],
                                                      tmp_path: Path) -> None:
    report = tmp_path / "paused.html"
    done = run_cli(*_simulate(image_files, "--devices", "40", "--waves", "25%,50%,100%",
                              "--soak", "15m", "--max-failures", "1", "--release-fails",
                              "20%:self_test", "--seed", "1", "--report", str(report)))
    assert done.returncode == 0, done.stderr
    assert "rollout paused (" in done.stdout
    page = report.read_text()
    assert "Paused: " in page and "paused at " in page  # the reason, and the plot's marker
    assert "exceed the limit of 1 devices" in page  # the server's numbers behind it
