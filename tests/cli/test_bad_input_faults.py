"""The bad-input faults found by attacking otaforge (issue 9, 2.4-2.6), one test each, as a user
runs them: one ``error:`` line, exit 2 (1 when a flash boots nothing), nothing half-written."""

from __future__ import annotations

from pathlib import Path

from otaforge.device.flash_image import compose
from otaforge.formats.image_builder import build_image
from otaforge.formats.partition_table import PartitionTable
from tests.conftest import run_cli

TABLE = "nvs, data, nvs, , 0x4000,\notadata, data, ota, , 0x2000,\nfactory, app, factory, , 1M,\n"


def _one_error_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    return lines[0]


def _files(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def test_convert_into_a_folder_that_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "in.csv").write_text(TABLE)
    (tmp_path / "afile").write_text("x")
    proc = run_cli("partitions", "convert", "in.csv", "afile/out.bin", cwd=tmp_path)
    assert proc.returncode == 2
    assert "afile is a file, not a directory" in _one_error_line(proc.stderr)
    assert _files(tmp_path) == {"in.csv", "afile"}


def test_convert_onto_proc_version(tmp_path: Path) -> None:
    (tmp_path / "in.csv").write_text(TABLE)
    proc = run_cli("partitions", "convert", "in.csv", "/proc/version", cwd=tmp_path)
    assert proc.returncode == 2
    assert "/proc/version: cannot write" in _one_error_line(proc.stderr)


def test_server_init_under_a_file_and_its_cleanup(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x")
    proc = run_cli("server", "init", "--dir", "afile/x", cwd=tmp_path)
    assert proc.returncode == 2
    assert "afile is a file, not a directory" in _one_error_line(proc.stderr)
    assert _files(tmp_path) == {"afile"} and (tmp_path / "afile").read_text() == "x"


def test_device_run_on_a_garbage_flash_leaves_no_efuse_file(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.bin"
    garbage.write_bytes(bytes((i * 131 + 7) % 256 for i in range(0x10000)))
    proc = run_cli("device", "run", "--flash", str(garbage), "--fleet", "f", "--server",
                   "https://127.0.0.1:9", "--ca", str(garbage), "--token", "t")
    assert proc.returncode == 2
    assert "not a flash image" in _one_error_line(proc.stderr)
    assert _files(tmp_path) == {"garbage.bin"}  # no garbage.bin.efuse.json


def test_compose_with_an_empty_factory_app(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text(TABLE)
    (tmp_path / "empty.bin").write_bytes(b"")
    proc = run_cli("flash", "compose", "--partitions", "t.csv", "-o", "f.bin", "--factory",
                   "empty.bin", cwd=tmp_path)
    assert proc.returncode == 2
    assert "--factory empty.bin: empty file, not an app image" in _one_error_line(proc.stderr)
    assert not (tmp_path / "f.bin").exists()


def test_check_image_garbage_is_not_ok_after_a_size_check(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text(TABLE)
    (tmp_path / "garbage.bin").write_bytes(b"\x12\x34" * 2000)
    proc = run_cli("partitions", "check", "t.csv", "--image", "garbage.bin", cwd=tmp_path)
    assert proc.returncode == 2 and "OK" not in proc.stdout
    assert "garbage.bin (--image): not an app image" in _one_error_line(proc.stderr)


def test_inspect_of_a_flash_nothing_boots_exits_1_unless_report_only(tmp_path: Path) -> None:
    table = PartitionTable.from_csv(TABLE)
    broken = bytearray(build_image(version="1"))
    broken[0x1000] ^= 0xFF
    flash = tmp_path / "flash.bin"
    flash.write_bytes(compose(table, {"factory": bytes(broken)}))
    proc = run_cli("flash", "inspect", str(flash))
    assert proc.returncode == 1 and "NOTHING BOOTS" in proc.stdout
    assert "nothing boots" in _one_error_line(proc.stderr)
    assert run_cli("flash", "inspect", str(flash), "--report-only").returncode == 0
