"""atomic_write: all-or-nothing output with sensible permissions."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from otaforge.errors import InputError
from otaforge.fsutil import atomic_write


def test_new_file_follows_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        atomic_write(tmp_path / "out.bin", b"abc")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "out.bin").stat().st_mode) == 0o644
    assert (tmp_path / "out.bin").read_bytes() == b"abc"


def test_private_mode_is_exact(tmp_path: Path) -> None:
    (tmp_path / "key.pem").write_bytes(b"old")
    os.chmod(tmp_path / "key.pem", 0o644)
    atomic_write(tmp_path / "key.pem", b"secret", mode=0o600)
    assert stat.S_IMODE((tmp_path / "key.pem").stat().st_mode) == 0o600


def test_failure_leaves_old_file_and_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")


    with pytest.raises(TypeError):
        atomic_write(target, "not bytes")  # type: ignore[arg-type]
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


def test_missing_folder_raises_without_leftovers(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such directory"):
        atomic_write(tmp_path / "nope" / "out.bin", b"x")
    assert list(tmp_path.iterdir()) == []
