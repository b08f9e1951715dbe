"""Real Espressif-made images and releases made from them (see otaforge.delta.variants)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from otaforge.delta import variants

# (fixture path, chip) of the real app images the delta tests use
REAL_IMAGES = (
    ("esp-idf/hello_world_esp32.bin", "esp32"),
    ("esptool/esp32-app-template.bin", "esp32"),
    ("esptool/esp_idf_blink_esp32s2.bin", "esp32s2"),
)
KINDS = ("version", "code", "larger")


def make_release(base: bytes, kind: str) -> bytes:
    """The new release of ``kind`` made from ``base``."""
    if kind == "version":
        return variants.version_change(base)
    if kind == "code":
        return variants.code_change(base)
    return variants.larger_release(base)


@pytest.fixture(scope="session")
def hello_world(shared_fixtures: Path) -> bytes:
    """ESP-IDF's hello_world for the ESP32 (the esp_delta_ota example's test image)."""
    return (shared_fixtures / "esp-idf" / "hello_world_esp32.bin").read_bytes()


def patch_gen(shared_fixtures: Path, *args: str | Path, cwd: Path) -> str:
    """Run Espressif's esp_delta_ota_patch_gen.py (it prints, never exits non-zero)."""
    script = shared_fixtures / "esp-idf" / "esp_delta_ota_patch_gen.py"
    done = subprocess.run([sys.executable, str(script), *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout
