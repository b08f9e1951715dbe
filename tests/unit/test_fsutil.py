"""atomic_write: all-or-nothing output with sensible permissions."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import pytest

from otaforge.errors import InputError
from otaforge.fsutil import atomic_write, ensure_dir, read_file


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


@pytest.mark.parametrize(("target", "message"), [
    ("adir", "is a directory: give a file name to write"),
    ("afile/out.bin", "afile is a file, not a directory"),
    ("afile/deeper/out.bin", "afile is a file, not a directory"),
    ("/proc/version", "/proc does not take new files"),
])
def test_write_errors_become_one_input_error_and_leave_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, target: str, message: str) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "adir").mkdir()
    (tmp_path / "afile").write_bytes(b"keep")
    with pytest.raises(InputError, match=re.escape(message)) as refused:
        atomic_write(target, b"new")
    assert target in str(refused.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adir", "afile"]
    assert (tmp_path / "afile").read_bytes() == b"keep" and not any((tmp_path / "adir").iterdir())


def test_write_to_a_character_device_streams(tmp_path: Path) -> None:
    atomic_write("/dev/null", b"discarded")  # no temporary file next to /dev/null, no rename


def test_ensure_dir_refuses_a_file_on_the_way(tmp_path: Path) -> None:
    (tmp_path / "afile").write_bytes(b"x")
    for target in (tmp_path / "afile", tmp_path / "afile" / "sub"):
        with pytest.raises(InputError, match="is a file, not a directory"):
            ensure_dir(target)
    ensure_dir(tmp_path / "new" / "sub")
    assert (tmp_path / "new" / "sub").is_dir()


@pytest.mark.parametrize(("target", "message"), [
    ("missing.bin", "no such file (expected a flash image file)"),
    ("adir", "is a directory, expected a flash image file"),
    ("afile/x.bin", "afile is a file, not a directory"),
])
def test_read_errors_become_one_input_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            target: str, message: str) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "adir").mkdir()
    (tmp_path / "afile").write_bytes(b"x")
    with pytest.raises(InputError, match=re.escape(message)):
        read_file(target, "flash image")
