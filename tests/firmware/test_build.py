"""``firmware build``: embeds as ESP-IDF does, Kconfig/sdkconfig, the image, unsupported APIs."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from otaforge.device.config import DeviceConfig
from otaforge.device.esp_err import CODES
from otaforge.device.flash import MemoryFlash
from otaforge.device.flash_image import compose
from otaforge.errors import InputError
from otaforge.firmware.build import build
from otaforge.firmware.runner import FirmwareDevice
from otaforge.formats.app_desc import read_app_desc
from otaforge.formats.partition_table import PartitionTable
from tests.conftest import tool

TABLE = """\
nvs, data, nvs, 0x9000, 0x6000,
otadata, data, ota, 0xf000, 0x2000,
factory, app, factory, 0x20000, 0x100000,
ota_0, app, ota_0, 0x120000, 0x100000,
ota_1, app, ota_1, 0x220000, 0x100000,
"""


def project(root: Path, main_c: str, register: str = 'SRCS "main.c" INCLUDE_DIRS "."',
            files: dict[str, bytes] | None = None, kconfig: str = "",
            defaults: str = "") -> Path:
    (root / "main").mkdir(parents=True)
    (root / "CMakeLists.txt").write_text("cmake_minimum_required(VERSION 3.16)\n"
                                         "include($ENV{IDF_PATH}/tools/cmake/project.cmake)\n"
                                         "project(buildtest)\n")
    (root / "main" / "CMakeLists.txt").write_text(f"idf_component_register({register})\n")
    (root / "main" / "main.c").write_text(main_c)
    if kconfig:
        (root / "main" / "Kconfig.projbuild").write_text(kconfig)
    if defaults:
        (root / "sdkconfig.defaults").write_text(defaults)
    for name, data in (files or {}).items():
        (root / "main" / name).write_bytes(data)
    return root


def run_once(image: bytes) -> list[str]:
    """Boot ``image`` as the factory app once; its console."""
    flash = compose(PartitionTable.from_csv(TABLE), {"factory": image}, flash_size=4 << 20)
    lines: list[str] = []
    device = FirmwareDevice(MemoryFlash(4 << 20, flash), "esp32", DeviceConfig(max_boots=1),
                            console=lines.append)
    device.power_on()
    return lines


def test_embedded_files_as_esp_idf_embeds_them(tmp_path: Path) -> None:
    main_c = """\
#include <string.h>
#include "esp_log.h"
extern const uint8_t note_start[] asm("_binary_note_txt_start");
extern const uint8_t note_end[] asm("_binary_note_txt_end");
extern const uint32_t note_length asm("note_txt_length");
extern const uint8_t blob_start[] asm("_binary_blob_bin_start");
extern const uint8_t blob_end[] asm("_binary_blob_bin_end");
void app_main(void)
{
    ESP_LOGI("t", "note span %d length %u last %d text %s", (int)(note_end - note_start),
             (unsigned)note_length, note_end[-1], (const char *)note_start);
    ESP_LOGI("t", "blob span %d first %d", (int)(blob_end - blob_start), blob_start[0]);
}
"""
    root = project(tmp_path / "p", main_c, 'SRCS "main.c" INCLUDE_DIRS "." '
                   'EMBED_TXTFILES "note.txt" EMBED_FILES "blob.bin"',
                   files={"note.txt": b"hello", "blob.bin": b"\x00\x01\x02"})
    lines = run_once(build(root).image)
    assert any(line.endswith("t: note span 6 length 5 last 0 text hello") for line in lines)
    assert any(line.endswith("t: blob span 3 first 0") for line in lines)


def test_esp_err_to_name_matches_esp_idf_names(tmp_path: Path) -> None:
    codes = sorted(set(CODES.values()))
    body = "\n".join(f'    ESP_LOGI("n", "%d=%s", {c}, esp_err_to_name({c}));' for c in codes)
    root = project(tmp_path / "p", '#include "esp_err.h"\n#include "esp_log.h"\n'
                   f"void app_main(void)\n{{\n{body}\n}}\n")
    lines = run_once(build(root).image)
    names = dict(line.split("n: ", 1)[1].split("=", 1) for line in lines if " n: " in line)
    by_code: dict[int, set[str]] = {}
    for name, code in CODES.items():
        by_code.setdefault(code, set()).add(name)
    wrong = {code: got for code, got in ((int(k), v) for k, v in names.items())
             if got not in by_code[code]}
    assert len(names) == len(codes) and wrong == {}


def test_image_is_a_real_app_image_naming_the_host_build(tmp_path: Path) -> None:
    root = project(tmp_path / "p", "void app_main(void)\n{\n}\n",
                   defaults="CONFIG_BOOTLOADER_APP_SECURE_VERSION=3\n")
    (root / "version.txt").write_text("4.5.6\n")
    result = build(root)
    desc = read_app_desc(result.image)
    assert (desc.version, desc.project_name, desc.secure_version) == ("4.5.6", "buildtest", 3)
    assert desc.app_elf_sha256 == result.program_sha256
    path = tmp_path / "app.bin"
    path.write_bytes(result.image)
    out = subprocess.run([tool("esptool"), "image-info", str(path)], capture_output=True,
                         text=True, check=True).stdout
    assert "Checksum: " in out and "(valid)" in out
    assert f"ELF file SHA256: {result.program_sha256.hex()}" in out
    assert build(root, version="9.9.9", secure_version=1).project.version == "9.9.9"


def test_kconfig_defaults_sdkconfig_defaults_and_overrides(tmp_path: Path) -> None:
    kconfig = """\
menu "t"
    config T_NUMBER
        int "n"
        default 7
    config T_NAME
        string "name"
        default "kconfig"
    choice T_MODE
        prompt "mode"
        default T_MODE_A
        config T_MODE_A
            bool "a"
        config T_MODE_B
            bool "b"
    endchoice
endmenu
"""
    main_c = """\
#include "esp_log.h"
#include "sdkconfig.h"
void app_main(void)
{
#if CONFIG_T_MODE_A
    const char *mode = "A";
#elif CONFIG_T_MODE_B
    const char *mode = "B";
#endif
    ESP_LOGI("k", "%d %s %s", CONFIG_T_NUMBER, CONFIG_T_NAME, mode);
}
"""
    root = project(tmp_path / "p", main_c, kconfig=kconfig,
                   defaults='CONFIG_T_NAME="defaults"\n')
    assert any(line.endswith("k: 7 defaults A") for line in run_once(build(root).image))
    overridden = build(root, defines={"CONFIG_T_MODE_B": "y", "T_NUMBER": "9"})
    assert any(line.endswith("k: 9 defaults B") for line in run_once(overridden.image))
    # what `idf.py menuconfig` saved (sdkconfig) wins over sdkconfig.defaults, -D over both
    (root / "sdkconfig").write_text("CONFIG_T_NUMBER=5\n# CONFIG_T_MODE_A is not set\n"
                                    "CONFIG_T_MODE_B=y\n")
    assert any(line.endswith("k: 5 defaults B") for line in run_once(build(root).image))
    assert any(line.endswith("k: 6 defaults B")
               for line in run_once(build(root, defines={"T_NUMBER": "6"}).image))


@pytest.mark.parametrize(("code", "named"), [
    ('#include "driver/gpio.h"\nvoid app_main(void) { gpio_set_level(2, 1); }\n',
     "driver/gpio.h"),
    ('#include "esp_err.h"\nesp_err_t esp_sntp_start(void);\n'
     "void app_main(void) { esp_sntp_start(); }\n", "esp_sntp_start"),
], ids=["header", "function"])
def test_unsupported_api_fails_the_build_naming_it(tmp_path: Path, code: str,
                                                   named: str) -> None:
    root = project(tmp_path / "p", code)
    with pytest.raises(InputError, match=re.escape(named)) as err:
        build(root)
    assert "host layer" in str(err.value)


def test_not_a_project_is_bad_input(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"no CMakeLists\.txt"):
        build(tmp_path)
    root = project(tmp_path / "p", "void app_main(void) {}\n",
                   register='SRCS "main.c" EMBED_TXTFILES "server_cert.pem"')
    with pytest.raises(InputError, match=r"server_cert\.pem"):
        build(root)
