"""``otaforge partitions convert|check`` run as a user runs them (separate processes)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from otaforge.formats.image_builder import build_image
from tests.conftest import run_cli

FIXTURES = ("seed", "partitions_two_ota", "partitions_singleapp")
BAD_CSV = ("nvs, data, nvs, , 0x6000\nota_0, app, ota_0, 0x10000, 1M\n"
           "ota_1, app, ota_1, 0x100000, 1M\n")


def _fixture(shared: Path, name: str) -> Path:
    return shared / "partitions" / name


@pytest.mark.parametrize("name", FIXTURES)
def test_convert_csv_matches_gen_esp32part(shared_fixtures: Path, tmp_path: Path,
                                           name: str) -> None:
    out = tmp_path / "sub" / f"{name}.bin"
    proc = run_cli("partitions", "convert", str(_fixture(shared_fixtures, f"{name}.csv")), str(out))
    assert proc.returncode == 0, proc.stderr
    assert out.read_bytes() == _fixture(shared_fixtures, f"{name}.bin").read_bytes()
    assert "binary partition table" in proc.stdout


def test_convert_binary_to_csv_and_back(shared_fixtures: Path, tmp_path: Path) -> None:
    csv, binary = tmp_path / "t.csv", tmp_path / "t.bin"
    assert run_cli("partitions", "convert", str(_fixture(shared_fixtures, "seed.bin")),
                   str(csv)).returncode == 0
    assert csv.read_text().startswith("# ESP-IDF Partition Table\n")
    assert run_cli("partitions", "convert", str(csv), str(binary), "--flash-size", "8MB",
                   "--offset", "0x8000").returncode == 0
    assert binary.read_bytes() == _fixture(shared_fixtures, "seed.bin").read_bytes()


def test_convert_to_stdout(shared_fixtures: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "otaforge", "partitions", "convert",
         str(_fixture(shared_fixtures, "partitions_two_ota.csv")), "-"],
        capture_output=True, timeout=60, check=False)
    assert proc.returncode == 0
    assert proc.stdout == _fixture(shared_fixtures, "partitions_two_ota.bin").read_bytes()


@pytest.mark.parametrize(("name", "content", "args", "message"), [
    ("overlapping-offsets", BAD_CSV, (), "line 3: partition 'ota_1' at offset 0x100000 overlaps "
     "the previous partition 'ota_0' (0x10000-0x110000, line 2)"),
    ("seed-on-4mb-flash", None, ("--flash-size", "4MB"), "does not fit in a 4MB flash"),
    ("unknown-subtype", "a, data, nvz, , 4K\n", (), "line 1: subtype 'nvz' is not valid"),
    ("bad-md5-binary", "md5", (), "MD5 mismatch"),
    ("bad-flash-size-option", None, ("--flash-size", "lots"), "flash size 'lots' is not a size"),
])
def test_invalid_input_exits_2_and_writes_nothing(
        shared_fixtures: Path, tmp_path: Path, name: str, content: str | None,
        args: tuple[str, ...], message: str) -> None:
    src = tmp_path / "in.csv"
    if content is None:
        src.write_bytes(_fixture(shared_fixtures, "seed.csv").read_bytes())
    elif content == "md5":
        data = bytearray(_fixture(shared_fixtures, "seed.bin").read_bytes())
        data[4] ^= 0x10
        src.write_bytes(bytes(data))
    else:
        src.write_text(content)
    out = tmp_path / "out.bin"
    proc = run_cli("partitions", "convert", str(src), str(out), *args)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert proc.stderr.startswith("error: ")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv"]


def test_missing_input_file(tmp_path: Path) -> None:
    proc = run_cli("partitions", "convert", str(tmp_path / "nope.csv"), str(tmp_path / "o.bin"))
    assert proc.returncode == 2
    assert "nope.csv: no such file" in proc.stderr


def test_convert_imports_no_ui_libraries_or_cryptography(shared_fixtures: Path,
                                                         tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from otaforge.cli.main import main\n"
        f"rc = main(['partitions', 'convert', {str(_fixture(shared_fixtures, 'seed.csv'))!r}, "
        f"{str(tmp_path / 'o.bin')!r}])\n"
        "heavy = sorted(m for m in ('typer', 'rich', 'click', 'cryptography')\n"
        "               if m in sys.modules)\n"
        "print(rc, heavy)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=False)
    assert proc.stdout.strip().splitlines()[-1] == "0 []", proc.stderr


def test_check_prints_table_free_space_and_ota_findings(shared_fixtures: Path) -> None:
    proc = run_cli("partitions", "check", str(_fixture(shared_fixtures, "seed.bin")),
                   "--flash-size", "8MB")
    assert proc.returncode == 0, proc.stderr
    assert "ota_1     app   ota_1     0x3a0000  0x1c0000 (1792K)  0x560000" in proc.stdout
    assert "free to flash end: 0x290000 (2624K)" in proc.stdout
    assert "OK: 2 OTA slots of 0x1c0000 bytes each" in proc.stdout


def test_check_critical_slot_sizes_exit_1(tmp_path: Path) -> None:
    src = tmp_path / "t.csv"
    src.write_text("nvs, data, nvs, , 16K\notadata, data, ota, , 8K\n"
                   "ota_0, app, ota_0, , 1M\nota_1, app, ota_1, , 2M\n")
    proc = run_cli("partitions", "check", str(src))
    assert proc.returncode == 1
    assert ("Critical: ota_0 and ota_1 must be identical size and large enough for your firmware"
            in proc.stdout)


def test_check_image_too_large_for_a_slot(shared_fixtures: Path, tmp_path: Path) -> None:
    image = tmp_path / "app.bin"
    image.write_bytes(build_image(version="big", size=0x1C1000))  # 4 KiB more than a seed slot
    proc = run_cli("partitions", "check", str(_fixture(shared_fixtures, "seed.csv")),
                   "--image", str(image))
    assert proc.returncode == 1
    assert "does not fit in ota_0" in proc.stdout
    ok = run_cli("partitions", "check", str(_fixture(shared_fixtures, "seed.csv")), "--image",
                 str(shared_fixtures / "esptool" / "esp32-app-template.bin"))
    assert ok.returncode == 0
    assert "fits every app slot" in ok.stdout


def test_check_invalid_table_exits_2(tmp_path: Path) -> None:
    src = tmp_path / "t.csv"
    src.write_text("otadata, data, ota, , 12K\n")
    proc = run_cli("partitions", "check", str(src))
    assert proc.returncode == 2
    assert "line 1: otadata partition 'otadata' has size 0x3000; it must be 0x2000" in proc.stderr


def test_disable_md5sum(shared_fixtures: Path, tmp_path: Path) -> None:
    out = tmp_path / "t.bin"
    proc = run_cli("partitions", "convert", str(_fixture(shared_fixtures, "seed.csv")), str(out),
                   "--disable-md5sum")
    assert proc.returncode == 0, proc.stderr
    data = out.read_bytes()
    reference = _fixture(shared_fixtures, "seed.bin").read_bytes()
    assert data[:7 * 32] == reference[:7 * 32]
    assert data[7 * 32:] == b"\xff" * (0xC00 - 7 * 32)
    # reading an MD5-carrying table with --disable-md5sum fails as in gen_esp32part
    bad = run_cli("partitions", "convert", str(_fixture(shared_fixtures, "seed.bin")),
                  str(tmp_path / "t.csv"), "--disable-md5sum")
    assert bad.returncode == 2
    assert "magic eb eb" in bad.stderr


# --- acceptance QA regressions ---------------------------------------------------------------


def test_invalid_input_leaves_an_existing_output_untouched(tmp_path: Path) -> None:
    src, out = tmp_path / "bad.csv", tmp_path / "out.bin"
    src.write_text(BAD_CSV)
    out.write_bytes(b"previous build")
    out.chmod(0o640)
    proc = run_cli("partitions", "convert", str(src), str(out))
    assert proc.returncode == 2 and "line 3:" in proc.stderr
    assert out.read_bytes() == b"previous build"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.csv", "out.bin"]


def test_output_file_gets_normal_permissions_not_0600(shared_fixtures: Path,
                                                      tmp_path: Path) -> None:
    # atomic_write goes through a mkstemp file (mode 0600); users expect gen_esp32part's 0644
    out = tmp_path / "new.bin"
    proc = run_cli("partitions", "convert", str(_fixture(shared_fixtures, "seed.csv")), str(out))
    assert proc.returncode == 0, proc.stderr
    umask = os.umask(0o022)
    os.umask(umask)
    assert stat.S_IMODE(out.stat().st_mode) == 0o666 & ~umask
    kept = tmp_path / "kept.bin"
    kept.write_bytes(b"old")
    kept.chmod(0o640)
    assert run_cli("partitions", "convert", str(_fixture(shared_fixtures, "seed.csv")),
                   str(kept)).returncode == 0
    assert stat.S_IMODE(kept.stat().st_mode) == 0o640
    assert kept.read_bytes() == _fixture(shared_fixtures, "seed.bin").read_bytes()


def test_check_image_that_is_a_directory_exits_2(shared_fixtures: Path, tmp_path: Path) -> None:
    proc = run_cli("partitions", "check", str(_fixture(shared_fixtures, "seed.csv")),
                   "--image", str(tmp_path))
    assert proc.returncode == 2
    assert "is a directory" in proc.stderr and "OTA checks" not in proc.stdout


@pytest.mark.parametrize(("name", "content"), [
    ("erased-flash", b"\xff" * 0xC00),
    ("random-bytes", bytes(range(256)) * 4),
    ("table-without-entries", b"\xeb\xeb" + b"\xff" * 0xBFE),
])
def test_binary_that_is_not_a_table_is_named_so(tmp_path: Path, name: str,
                                                content: bytes) -> None:
    src = tmp_path / f"{name}.bin"
    src.write_bytes(content)
    proc = run_cli("partitions", "convert", str(src), str(tmp_path / "o.csv"))
    assert proc.returncode == 2
    assert "not a partition table: a binary table starts with bytes aa 50" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "o.csv").exists()


@pytest.mark.parametrize(("content", "warning"), [
    (b"ota_0, app, ota_1, , 1M\n", "line 1: partition 'ota_0' is named like the subtype 'ota_0' "
     "but is app/ota_1"),
    (b"data, 0x40, 0, , 4K\n", "partition 'data' is named like the partition type 'data'"),
    (b"", "the table has no partitions"),
    (b"\xaa\x50\x01\x81\x00\x90\x00\x00\x00\x10\x00\x00" + b"fat".ljust(16, b"\x00")
     + b"\x11\x00\x00\x00" + b"\xff" * 32, "unknown flag bit(s) 0x00000010"),
])
def test_gen_esp32part_warnings_are_shown_and_output_still_written(
        tmp_path: Path, content: bytes, warning: str) -> None:
    src, out = tmp_path / "in", tmp_path / "out"
    src.write_bytes(content)
    proc = run_cli("partitions", "convert", str(src), str(out))
    assert proc.returncode == 0, proc.stderr
    assert f"warning: {src}: " in proc.stderr and warning in proc.stderr
    assert out.exists()


def test_fixtures_convert_without_warnings(shared_fixtures: Path, tmp_path: Path) -> None:
    for name in FIXTURES:
        for ext in ("csv", "bin"):
            proc = run_cli("partitions", "convert", str(_fixture(shared_fixtures, f"{name}.{ext}")),
                           str(tmp_path / f"{name}.{ext}.out"))
            assert (proc.returncode, proc.stderr) == (0, ""), name
