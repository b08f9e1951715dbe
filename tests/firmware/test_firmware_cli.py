"""``otaforge firmware build`` / ``run`` / ``sweep`` as a user runs them (subprocesses)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.firmware.test_build import TABLE, project

MAIN_C = """\
#include "esp_log.h"
#include "esp_ota_ops.h"
#include "nvs_flash.h"
void app_main(void)
{
    ESP_ERROR_CHECK(nvs_flash_init());
    nvs_handle_t h;
    ESP_ERROR_CHECK(nvs_open("cli", NVS_READWRITE, &h));
    uint32_t runs = 0;
    nvs_get_u32(h, "runs", &runs);
    ESP_ERROR_CHECK(nvs_set_u32(h, "runs", runs + 1));
    nvs_close(h);
    ESP_LOGI("cli", "run %lu on %s", (unsigned long)(runs + 1),
             esp_ota_get_running_partition()->label);
#if CONFIG_CLI_CRASH
    ESP_ERROR_CHECK(ESP_ERR_INVALID_STATE);
#endif
}
"""


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fwcli")
    project(root / "proj", MAIN_C)
    (root / "parts.csv").write_text(TABLE)
    return root


def _flash(work: Path, name: str, *define: str) -> Path:
    app = work / f"{name}.bin"
    args = [f"-D{d}" for d in define]
    built = run_cli("firmware", "build", str(work / "proj"), "-o", str(app), *args)
    assert built.returncode == 0, built.stderr
    flash = work / f"{name}.flash.bin"
    composed = run_cli("flash", "compose", "--partitions", str(work / "parts.csv"),
                       "--factory", str(app), "-o", str(flash), "--flash-size", "4MB")
    assert composed.returncode == 0, composed.stderr
    return flash


def test_build_then_run_prints_the_console_and_keeps_nvs(work: Path) -> None:
    flash = _flash(work, "ok")
    first = run_cli("firmware", "run", "--flash", str(flash))
    assert first.returncode == 0, first.stderr
    assert "I (300) cli: run 1 on factory" in first.stdout
    assert "boot 1: factory 1 -> idle" in first.stdout
    second = run_cli("firmware", "run", "--flash", str(flash), "--json")
    report = json.loads(second.stdout)
    assert report["status"] == "running"
    assert report["boots"][0]["reset_reason"] == "idle"
    assert report["bootloader"]["from"].startswith("factory: buildtest")
    third = run_cli("firmware", "run", "--flash", str(flash))
    assert "cli: run 3 on factory" in third.stdout  # NVS is in FLASH.bin


def test_a_panicking_firmware_reboots_until_the_boot_limit(work: Path) -> None:
    flash = _flash(work, "crash", "CONFIG_CLI_CRASH=y")
    done = run_cli("firmware", "run", "--flash", str(flash), "--boots", "3", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert [b["reset_reason"] for b in report["boots"]] == ["panic"] * 3
    assert report["status"] == "stopped"


@pytest.mark.parametrize("args", [
    ("firmware", "build", "{work}/nowhere", "-o", "{work}/x.bin"),
    ("firmware", "build", "{work}/proj", "-o", "{work}/x.bin", "-D", "NOEQUALS"),
    ("firmware", "run", "--flash", "{work}/missing.bin"),
    ("firmware", "sweep", "--flash", "{work}/missing.bin"),
    ("firmware", "sweep", "--flash", "{work}/missing.bin", "--modes", "sideways"),
    ("firmware", "sweep", "--flash", "{work}/missing.bin", "--ops", "9-3"),
], ids=["no project", "bad -D", "no flash", "sweep: no flash", "sweep: bad mode",
        "sweep: backwards op range"])
def test_bad_input_exits_2_with_one_line(work: Path, args: tuple[str, ...]) -> None:
    done = run_cli(*(a.format(work=work) for a in args))
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.startswith("error: ") and done.stderr.count("\n") == 1
    assert "Traceback" not in done.stderr
    assert not (work / "x.bin").exists()
