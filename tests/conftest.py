"""Shared test fixtures: where ../shared/fixtures lives, the otaforge CLI runner."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED_FIXTURES = Path(
    os.environ.get("OTAFORGE_SHARED_FIXTURES", ROOT.parent / "shared" / "fixtures")
)


@pytest.fixture(scope="session")
def shared_fixtures() -> Path:
    """``../shared/fixtures`` (real Espressif-made files); tests read, never copy them."""
    if not SHARED_FIXTURES.is_dir():
        pytest.fail(f"{SHARED_FIXTURES} is missing: CI clones the project with ../shared beside it")
    return SHARED_FIXTURES


def run_cli(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
            input: bytes | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``otaforge ARGS`` as a separate process, as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "otaforge", *args],
        cwd=cwd, env={**os.environ, **(env or {})}, capture_output=True, text=True,
        input=input.decode() if input else None, timeout=600,
    )


def tool(name: str) -> str:
    """Path of a console script installed beside this Python (esptool, espsecure, ...)."""
    return str(Path(sys.executable).parent / name)


GEN_ESP32PART = SHARED_FIXTURES / "esp-idf" / "gen_esp32part.py"


@pytest.fixture(scope="session")
def gen_esp32part() -> Path:
    """ESP-IDF's real gen_esp32part.py (``../shared/fixtures/esp-idf``), the partition oracle.

    It runs with the packages esptool brings (rich_click, esp_pylib): ``sys.executable``.
    """
    if not GEN_ESP32PART.is_file():
        pytest.fail(f"{GEN_ESP32PART} is missing: CI clones the project with ../shared beside it")
    return GEN_ESP32PART
