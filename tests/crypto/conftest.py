"""Fixtures for the signing tests: one key per scheme, unsigned images, the espsecure oracle."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from otaforge.crypto import keys as k
from tests.conftest import tool

V2_SCHEMES = ("rsa3072", "ecdsa256", "ecdsa384")


def espsecure(*args: str | Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the real ``espsecure`` (esptool from PyPI) as the oracle."""
    proc = subprocess.run([tool("espsecure"), *map(str, args)], capture_output=True, text=True,
                          timeout=120)
    if check and proc.returncode != 0:
        raise AssertionError(f"espsecure {args} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture(scope="session")
def v2_keys() -> dict[str, k.PrivateKey]:
    """One freshly generated private key per Secure Boot v2 scheme."""
    return {scheme: k.generate_key(scheme) for scheme in V2_SCHEMES}


@pytest.fixture(scope="session")
def other_keys() -> dict[str, k.PrivateKey]:
    """A second, unrelated key per scheme (the "wrong key")."""
    return {scheme: k.generate_key(scheme) for scheme in V2_SCHEMES}


@pytest.fixture(scope="session")
def app_template(shared_fixtures: Path) -> bytes:
    """A real esptool-made ESP32 app image (601,808 bytes, SHA-256 appended)."""
    return (shared_fixtures / "esptool" / "esp32-app-template.bin").read_bytes()


def small_image(size: int = 5000, seed: int = 1) -> bytes:
    """Arbitrary bytes to sign (espsecure signs any file; the size is not 4 KiB aligned)."""
    return bytes((i * 131 + seed * 17) & 0xFF for i in range(size))
