"""``otaforge image info`` / ``image build`` as a user runs them, against ``esptool image-info``.

Exit policy of ``image info``: report printed and exit 0 for a valid image; report printed and
exit 1 when checksum or hash is invalid; error on stderr and exit 2 when the file is not an app
image (or is missing/truncated).
"""

from __future__ import annotations

import json
import os
import stat
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from otaforge.formats.app_image import AppImage, ImageHeader, Segment, assemble_image
from otaforge.formats.chips import chip as chip_spec
from otaforge.formats.image_verify import verify_image
from tests.conftest import run_cli, tool

JSON_KEYS = {"chip", "size", "segments", "checksum_valid", "hash_valid", "app_desc"}
DESC_KEYS = {"version", "project_name", "idf_ver", "secure_version", "time", "date",
             "app_elf_sha256"}


def esptool_info(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([tool("esptool"), "image-info", str(path)], capture_output=True,
                          text=True, timeout=120)


def espsecure_signed(tmp_path: Path, version: str, *build_args: str) -> tuple[Path, Path]:
    """An image built by ``otaforge image build``, signed by espsecure with a key espsecure made.

    Returns:
        (unsigned image, signed image).
    """
    image, key, signed = tmp_path / "fw.bin", tmp_path / "k.pem", tmp_path / "signed.bin"
    run_cli("image", "build", "-o", str(image), "--version", "1", *build_args)
    scheme = ["--scheme", "ecdsa256"] if version == "2" else []
    for args in (["generate-signing-key", "--version", version, *scheme, str(key)],
                 ["sign-data", "--version", version, "--keyfile", str(key), "-o", str(signed),
                  str(image)]):
        done = subprocess.run([tool("espsecure"), *args], capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
    return image, signed


def _without_banner(text: str) -> str:
    lines = text.splitlines()
    return "\n".join(lines[1:] if lines and lines[0].startswith("esptool v") else lines)


@pytest.mark.parametrize("name", ["esp32-app-template.bin", "esp_idf_blink_esp32s2.bin",
                                  "bootloader_esp32.bin"])
def test_info_text_matches_esptool_line_for_line(shared_fixtures: Path, name: str) -> None:
    path = shared_fixtures / "esptool" / name
    ours = run_cli("image", "info", str(path))
    theirs = esptool_info(path)
    assert ours.returncode == 0, ours.stderr
    assert ours.stdout.strip() == _without_banner(theirs.stdout).strip()


@pytest.mark.parametrize(("name", "expected"), [
    ("esp32-app-template.bin", {"project_name": "app-template", "version": "1cd5752",
                                "idf_ver": "v4.0-dev-30-g31ca6e399", "secure_version": 0}),
    ("esp_idf_blink_esp32s2.bin", {"project_name": "blink",
                                   "version": "qa-test-v5.0-20220830-4-g4532e6",
                                   "idf_ver": "v5.0-beta1-427-g4532e6e0b2-dirt",
                                   "secure_version": 0}),
])
def test_info_json_keys_and_values(shared_fixtures: Path, name: str,
                                   expected: dict[str, object]) -> None:
    path = shared_fixtures / "esptool" / name
    proc = run_cli("image", "info", "--json", str(path))
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert set(report) >= JSON_KEYS
    assert set(report["app_desc"]) >= DESC_KEYS
    assert report["checksum_valid"] is True and report["hash_valid"] is True
    assert report["size"] == path.stat().st_size
    assert {k: report["app_desc"][k] for k in expected} == expected
    assert len(report["segments"]) == len(AppImage.from_bytes(path.read_bytes()).segments)


@pytest.mark.parametrize(("chip", "size"), [("esp32", 0x30000), ("esp32c3", 0x50000),
                                            ("esp32c6", 0x9000), ("esp32s3", 0x40000),
                                            ("esp32h4", 0x9000), ("esp32h21", 0x9000),
                                            ("esp32e22", 0x9000), ("esp32s31", 0x9000)])
def test_build_then_info_matches_esptool(tmp_path: Path, chip: str, size: int) -> None:
    out = tmp_path / "fw.bin"
    built = run_cli("image", "build", "-o", str(out), "--version", "3.1.4", "--project", "demo",
                    "--secure-version", "2", "--chip", chip, "--size", str(size), "--seed", "7")
    assert built.returncode == 0, built.stderr
    assert f"wrote {out}" in built.stdout
    theirs = esptool_info(out)
    assert theirs.returncode == 0
    assert "Checksum" in theirs.stdout and "(valid)" in theirs.stdout
    assert theirs.stdout.count("(valid)") == 2 and "invalid" not in theirs.stdout
    ours = run_cli("image", "info", str(out))
    assert ours.stdout.strip() == _without_banner(theirs.stdout).strip()


def test_build_is_deterministic_for_a_seed(tmp_path: Path) -> None:
    a, b = tmp_path / "a.bin", tmp_path / "b.bin"
    for path in (a, b):
        assert run_cli("image", "build", "-o", str(path), "--version", "1",
                       "--seed", "5").returncode == 0
    assert a.read_bytes() == b.read_bytes()


@pytest.mark.parametrize(("args", "message"), [
    (["--chip", "esp8266"], "unknown chip 'esp8266'"),
    (["--size", "12"], "--size 12"),
    (["--version", "x" * 40], "the field holds 31"),
])
def test_build_bad_input_exits_2_and_writes_nothing(tmp_path: Path, args: list[str],
                                                    message: str) -> None:
    out = tmp_path / "fw.bin"
    base = ["image", "build", "-o", str(out)]
    if "--version" not in args:
        base += ["--version", "1"]
    proc = run_cli(*base, *args)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert not out.exists()


def test_build_into_missing_directory_exits_2(tmp_path: Path) -> None:
    proc = run_cli("image", "build", "-o", str(tmp_path / "no" / "fw.bin"), "--version", "1")
    assert proc.returncode == 2 and "no such directory" in proc.stderr


def test_corrupt_image_prints_report_and_exits_1(tmp_path: Path) -> None:
    good = tmp_path / "good.bin"
    run_cli("image", "build", "-o", str(good), "--version", "1")
    data = bytearray(good.read_bytes())
    data[0x200] ^= 0x01
    bad = tmp_path / "bad.bin"
    bad.write_bytes(bytes(data))
    text = run_cli("image", "info", str(bad))
    assert text.returncode == 1
    assert "invalid - calculated" in text.stdout and "(invalid)" in text.stdout
    assert "checksum or image hash is invalid" in text.stderr
    as_json = run_cli("image", "info", "--json", str(bad))
    assert as_json.returncode == 1
    report = json.loads(as_json.stdout)
    assert report["checksum_valid"] is False and report["hash_valid"] is False


@pytest.mark.parametrize(("content", "message"), [
    (b"\xff" * 4096, "invalid magic byte (nothing flashed here?)"),
    (b"", "image header"),
    (b"\xe9\x01\x02\x20" + b"\x00" * 20 + bytes.fromhex("0000fb3f00100000") + b"\x00" * 50,
     "segment 0 data needs 4096 bytes"),
])
def test_not_an_image_exits_2_with_clear_message(tmp_path: Path, content: bytes,
                                                 message: str) -> None:
    path = tmp_path / "x.bin"
    path.write_bytes(content)
    proc = run_cli("image", "info", str(path))
    assert proc.returncode == 2
    assert message in proc.stderr and str(path) in proc.stderr
    assert "Traceback" not in proc.stderr


def test_partition_table_is_not_an_image(shared_fixtures: Path) -> None:
    proc = run_cli("image", "info", str(shared_fixtures / "partitions" / "seed.bin"))
    assert proc.returncode == 2 and "invalid magic byte" in proc.stderr


def test_missing_file_and_directory_exit_2(tmp_path: Path) -> None:
    missing = run_cli("image", "info", str(tmp_path / "nope.bin"))
    assert missing.returncode == 2 and "no such file" in missing.stderr
    directory = run_cli("image", "info", str(tmp_path))
    assert directory.returncode == 2 and "is a directory" in directory.stderr


def test_usage_errors_go_through_argparse(tmp_path: Path) -> None:
    proc = run_cli("image", "info", "--bogus", str(tmp_path))
    assert proc.returncode == 2 and "unknown option or extra argument: --bogus" in proc.stderr


def test_signed_image_shows_its_signature_sector(tmp_path: Path) -> None:
    _, signed = espsecure_signed(tmp_path, "2", "--chip", "esp32c3")
    proc = run_cli("image", "info", str(signed))
    assert proc.returncode == 0, proc.stderr
    assert "Signature Sector" in proc.stdout
    assert "Block 0: ECDSA (Secure Boot v2), CRC valid" in proc.stdout
    report = json.loads(run_cli("image", "info", "--json", str(signed)).stdout)
    assert [b["version"] for b in report["signature_blocks"]] == [3]
    assert report["image_len"] < report["size"]


def test_v1_signed_image_shows_its_signature(tmp_path: Path) -> None:
    image, signed = espsecure_signed(tmp_path, "1")
    proc = run_cli("image", "info", str(signed))
    assert proc.returncode == 0, proc.stderr
    assert "68-byte ECDSA signature (v1 signed app)" in proc.stdout
    report = json.loads(run_cli("image", "info", "--json", str(signed)).stdout)
    assert report["sbv1_signature"] is True and report["signature_blocks"] == []
    plain = json.loads(run_cli("image", "info", "--json", str(image)).stdout)
    assert plain["sbv1_signature"] is False


def test_info_imports_no_ui_libraries_or_cryptography(shared_fixtures: Path) -> None:
    path = shared_fixtures / "esptool" / "esp32-app-template.bin"
    code = ("import sys, io; from otaforge.cli.main import main; "
            "sys.stdout = io.StringIO(); rc = main(['image', 'info', sys.argv[1]]); "
            "sys.stdout = sys.__stdout__; "
            "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
            "{'typer', 'rich', 'click', 'cryptography', 'json', 'pathlib'}); print(rc, heavy)")
    proc = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True,
                          text=True, timeout=60)
    assert proc.stdout.strip() == "0 []", proc.stdout + proc.stderr


def test_bootloader_description_matches_esptool(tmp_path: Path) -> None:
    desc = struct.pack("<BxxBI32s24s16x", 0x50, 2, 7, b"v5.4.1", b"Jan  1 2025 00:00:00")
    segments = [Segment(0x3FFF0000, desc + b"\x00" * 48), Segment(0x40078000, b"\x01" * 256)]
    path = tmp_path / "bootloader.bin"
    path.write_bytes(assemble_image(ImageHeader(entry_addr=0x40078000, hash_appended=0),
                                    segments))
    ours = run_cli("image", "info", str(path))
    assert ours.returncode == 0, ours.stderr
    expected = "Bootloader version: 7\nESP-IDF: v5.4.1\nCompile time: Jan  1 2025 00:00:00"
    assert expected in ours.stdout
    assert ours.stdout.strip() == _without_banner(esptool_info(path).stdout).strip()
    report = json.loads(run_cli("image", "info", "--json", str(path)).stdout)
    assert report["bootloader_desc"] == {"secure_version": 2, "version": 7, "idf_ver": "v5.4.1",
                                         "date_time": "Jan  1 2025 00:00:00"}
    assert report["app_desc"] is None


@pytest.mark.parametrize(("elf", "chip"), [("esp32c6-appdesc.elf", "esp32c6"),
                                           ("esp32-app-template.elf", "esp32"),
                                           # the chips esptool 5.6 added, from a RISC-V ELF
                                           ("esp32c6-appdesc.elf", "esp32h4"),
                                           ("esp32c6-appdesc.elf", "esp32h21"),
                                           ("esp32c6-appdesc.elf", "esp32s31"),
                                           ("esp32c6-appdesc.elf", "esp32e22")])
def test_images_made_by_esptool_elf2image(tmp_path: Path, shared_fixtures: Path, elf: str,
                                          chip: str) -> None:
    out = tmp_path / "app.bin"
    made = subprocess.run([tool("esptool"), "--chip", chip, "elf2image", "-o", str(out),
                           str(shared_fixtures / "esptool" / elf)], capture_output=True,
                          text=True, timeout=120)
    assert made.returncode == 0, made.stdout + made.stderr
    ours = run_cli("image", "info", str(out))
    assert ours.returncode == 0, ours.stderr
    assert ours.stdout.strip() == _without_banner(esptool_info(out).stdout).strip()
    data = out.read_bytes()
    assert verify_image(data, chip=chip_spec(chip)).to_bytes() == data


# --- acceptance QA regressions ---------------------------------------------------------------


def test_built_image_gets_normal_permissions_not_0600(tmp_path: Path) -> None:
    out = tmp_path / "fw.bin"
    assert run_cli("image", "build", "-o", str(out), "--version", "1").returncode == 0
    umask = os.umask(0o022)
    os.umask(umask)
    assert stat.S_IMODE(out.stat().st_mode) == 0o666 & ~umask


@pytest.mark.parametrize(("name", "hint"), [
    ("esptool/esp32-app-template.elf", "this is an ELF file"),
    ("partitions/seed.bin", "this looks like a partition table"),
])
def test_common_wrong_files_get_a_hint(shared_fixtures: Path, name: str, hint: str) -> None:
    proc = run_cli("image", "info", str(shared_fixtures / name))
    assert proc.returncode == 2
    assert "invalid magic byte" in proc.stderr and hint in proc.stderr


@pytest.mark.parametrize("flipped", [-1, 0x2000], ids=["stored-hash-byte", "segment-byte"])
def test_wrong_appended_hash_shows_computed_like_esptool_and_the_stored_one(
        tmp_path: Path, shared_fixtures: Path, flipped: int) -> None:
    data = bytearray((shared_fixtures / "esptool" / "esp32-app-template.bin").read_bytes())
    data[flipped] ^= 0x5A  # in the appended SHA-256, or in segment data (checksum wrong too)
    bad = tmp_path / "badhash.bin"
    bad.write_bytes(bytes(data))
    theirs = _without_banner(esptool_info(bad).stdout).strip().splitlines()
    ours = run_cli("image", "info", str(bad))
    assert ours.returncode == 1
    lines = ours.stdout.strip().splitlines()
    stored = f"Stored hash: {bytes(data[-32:]).hex()} (appended to the image)"
    verdict = ["", "Image is INVALID: the bootloader would refuse it."]
    at = next(i for i, line in enumerate(theirs) if line.startswith("Validation hash:"))
    assert theirs[at].endswith("(invalid)")
    assert lines == [*theirs[:at + 1], stored, *theirs[at + 1:], *verdict]
    report = json.loads(run_cli("image", "info", "--json", str(bad)).stdout)
    assert report["image_hash"] == bytes(data[-32:]).hex()
    assert theirs[at] == f"Validation hash: {report['calc_image_hash']} (invalid)"


def _esp8266_images(tmp_path: Path) -> dict[str, Path]:
    """An original ESP8266 ROM image and a "v2" (0xEA) image, written by esptool's own classes."""
    from esptool.bin_image import ESP8266ROMFirmwareImage, ESP8266V2FirmwareImage, ImageSegment

    rom = ESP8266ROMFirmwareImage()
    rom.entrypoint = 0x40100000
    rom.segments = [ImageSegment(0x40100000, bytes(range(256)) * 4),
                    ImageSegment(0x3FFE8000, b"\x11" * 64)]
    rom.save(str(tmp_path / "rom"))
    v2 = ESP8266V2FirmwareImage()
    v2.entrypoint, v2.flash_mode, v2.flash_size_freq = 0x40100000, 0, 0
    v2.segments = [ImageSegment(0x40201010, b"\x22" * 0x100),
                   ImageSegment(0x40100000, bytes(range(256)) * 4)]
    v2.save(str(tmp_path / "v2.bin"))
    return {"rom": tmp_path / "rom0x00000.bin", "v2": tmp_path / "v2.bin"}


@pytest.mark.parametrize("kind", ["rom", "v2"])
def test_esp8266_image_is_named_and_refused_not_misread_as_esp32(tmp_path: Path,
                                                                 kind: str) -> None:
    path = _esp8266_images(tmp_path)[kind]
    theirs = esptool_info(path)
    assert theirs.returncode == 0 and "Detected image type: ESP8266" in theirs.stdout
    ours = run_cli("image", "info", str(path))
    assert ours.returncode == 2 and ours.stdout == ""
    assert "is an ESP8266" in ours.stderr and "supports the ESP32 family only" in ours.stderr
    assert len(ours.stderr.strip().splitlines()) == 1 and "Traceback" not in ours.stderr


def test_unknown_chip_id_is_called_esp8266_as_esptool_detects_it(tmp_path: Path) -> None:
    built = tmp_path / "fw.bin"
    run_cli("image", "build", "-o", str(built), "--version", "1")
    data = bytearray(built.read_bytes())
    data[12:14] = (99).to_bytes(2, "little")  # no esptool target has image chip id 99
    odd = tmp_path / "odd.bin"
    odd.write_bytes(bytes(data))
    assert "Detected image type: ESP8266" in esptool_info(odd).stdout
    ours = run_cli("image", "info", str(odd))
    assert ours.returncode == 2 and "chip id 99 is no ESP32-family chip's" in ours.stderr
