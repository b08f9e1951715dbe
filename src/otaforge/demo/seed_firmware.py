"""The seed's own C code as an ESP-IDF project, for the demo's seed-firmware step.

``seed/`` holds the seed's snippets exactly as the seed (``../shared/seed/``) writes them:
``ota.c`` (``start_ota()`` and ``start_ota_with_progress()``), ``app_main.c`` (the rollback
check), its ``idf_component_register`` block, ``partitions.csv`` and sdkconfig lines. They ship
in the package because the demo runs anywhere (``pip install otaforge``, a clone without
``../shared`` beside it); ``tests/firmware/test_seed.py`` checks that every shipped file is
byte for byte what the seed file says, so the copy cannot drift.

What the seed leaves to the application (its ``TAG``, ``run_self_test()``, and calling
``start_ota(url)``) is the harness below, around the seed's ``app_main``, which is included
unchanged (renamed by a macro, as a project would wrap it).
"""

from __future__ import annotations

from pathlib import Path

SEED_DIR = Path(__file__).resolve().parent / "seed"
SEED_FILES = ("ota.c", "app_main.c", "CMakeLists.txt", "partitions.csv", "sdkconfig.defaults")

HARNESS_PRELUDE = """\
#include <stdbool.h>
#include "esp_err.h"
#include "esp_log.h"
#include "sdkconfig.h"
static const char *TAG = "seed_app";
esp_err_t start_ota(const char *url);
esp_err_t start_ota_with_progress(const char *url);
static bool run_self_test(void)
{
#if CONFIG_SEED_SELF_TEST_FAIL
    return false;
#elif CONFIG_SEED_SELF_TEST_HANG
    volatile unsigned spins = 0;
    while (spins != 1) {  /* busy: never yields, as a stuck driver call would */
        spins += 2;
    }
    return true;
#else
    return true;
#endif
}
#define app_main seed_app_main
"""
HARNESS_MAIN = """\
#undef app_main
void app_main(void)
{
    seed_app_main();
#ifdef CONFIG_SEED_OTA_URL
#if CONFIG_SEED_WITH_PROGRESS
    start_ota_with_progress(CONFIG_SEED_OTA_URL);
#else
    start_ota(CONFIG_SEED_OTA_URL);
#endif
#endif
}
"""


def seed_text(name: str) -> str:
    """One shipped seed file (``ota.c``, ``app_main.c``, ...)."""
    return (SEED_DIR / name).read_text(encoding="utf-8")


def write_project(root: Path, ca_pem: bytes, *, start_ota: str, app_main: str,
                  component_register: str, partitions_csv: str, sdkconfig: str) -> Path:
    """The seed's project in ``root``: its main/CMakeLists.txt, partitions.csv, sdkconfig
    lines, ``ota.c`` and a ``main.c`` of the harness around its ``app_main``; the server's CA
    as ``main/server_cert.pem`` (the seed's ``EMBED_TXTFILES``)."""
    main = root / "main"
    main.mkdir(parents=True)
    (root / "CMakeLists.txt").write_text(
        "cmake_minimum_required(VERSION 3.16)\n"
        "include($ENV{IDF_PATH}/tools/cmake/project.cmake)\nproject(seed_app)\n")
    (root / "partitions.csv").write_text(partitions_csv)
    (root / "sdkconfig.defaults").write_text("CONFIG_ESPTOOLPY_FLASHSIZE_8MB=y\n" + sdkconfig)
    (main / "CMakeLists.txt").write_text(component_register)
    (main / "ota.c").write_text(start_ota)
    (main / "main.c").write_text(HARNESS_PRELUDE + app_main + HARNESS_MAIN)
    (main / "server_cert.pem").write_bytes(ca_pem)
    return root


def write_shipped_project(root: Path, ca_pem: bytes) -> Path:
    """:func:`write_project` from the snippets shipped with otaforge."""
    return write_project(root, ca_pem, start_ota=seed_text("ota.c"),
                         app_main=seed_text("app_main.c"),
                         component_register=seed_text("CMakeLists.txt"),
                         partitions_csv=seed_text("partitions.csv"),
                         sdkconfig=seed_text("sdkconfig.defaults"))
