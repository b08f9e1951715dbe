"""ESP-IDF ``esp_err_t`` codes the emulated device returns, with their exact names.

Sources: components/esp_common/include/esp_err.h, components/app_update/include/esp_ota_ops.h
(``ESP_ERR_OTA_BASE`` 0x1500), components/bootloader_support/include/esp_image_format.h
(0x2000), components/spi_flash/include/esp_flash_err.h / esp_spi_flash.h (0x6000),
components/efuse/include/esp_efuse.h (0x1600), components/nvs_flash/include/nvs.h (0x1100),
components/esp_http_client/include/esp_http_client.h (0x7000),
components/esp_https_ota/include/esp_https_ota.h (0x9000).
"""

from __future__ import annotations

from typing import NoReturn

from otaforge.errors import EspError, RefusableError

ESP_OK = 0
ESP_FAIL = -1

CODES: dict[str, int] = {
    "ESP_OK": ESP_OK,
    "ESP_FAIL": ESP_FAIL,
    "ESP_ERR_NO_MEM": 0x101,
    "ESP_ERR_INVALID_ARG": 0x102,
    "ESP_ERR_INVALID_STATE": 0x103,
    "ESP_ERR_INVALID_SIZE": 0x104,
    "ESP_ERR_NOT_FOUND": 0x105,
    "ESP_ERR_NOT_SUPPORTED": 0x106,
    "ESP_ERR_TIMEOUT": 0x107,
    "ESP_ERR_INVALID_RESPONSE": 0x108,
    "ESP_ERR_INVALID_CRC": 0x109,
    "ESP_ERR_INVALID_VERSION": 0x10A,
    "ESP_ERR_INVALID_MAC": 0x10B,
    "ESP_ERR_NOT_FINISHED": 0x10C,
    "ESP_ERR_NOT_ALLOWED": 0x10D,
    "ESP_ERR_OTA_BASE": 0x1500,
    "ESP_ERR_OTA_PARTITION_CONFLICT": 0x1501,
    "ESP_ERR_OTA_SELECT_INFO_INVALID": 0x1502,
    "ESP_ERR_OTA_VALIDATE_FAILED": 0x1503,
    "ESP_ERR_OTA_SMALL_SEC_VER": 0x1504,
    "ESP_ERR_OTA_ROLLBACK_FAILED": 0x1505,
    "ESP_ERR_OTA_ROLLBACK_INVALID_STATE": 0x1506,
    "ESP_ERR_OTA_ALREADY_IN_PROGRESS": 0x1507,
    "ESP_ERR_OTA_SPI_MODE_MISMATCH": 0x1508,
    "ESP_ERR_EFUSE": 0x1600,
    "ESP_OK_EFUSE_CNT": 0x1601,
    "ESP_ERR_EFUSE_CNT_IS_FULL": 0x1602,
    "ESP_ERR_EFUSE_REPEATED_PROG": 0x1603,
    "ESP_ERR_CODING": 0x1604,
    "ESP_ERR_NOT_ENOUGH_UNUSED_KEY_BLOCKS": 0x1605,
    "ESP_ERR_DAMAGED_READING": 0x1606,
    "ESP_ERR_IMAGE_BASE": 0x2000,
    "ESP_ERR_IMAGE_FLASH_FAIL": 0x2001,
    "ESP_ERR_IMAGE_INVALID": 0x2002,
    "ESP_ERR_FLASH_BASE": 0x6000,
    "ESP_ERR_FLASH_OP_FAIL": 0x6001,
    "ESP_ERR_FLASH_OP_TIMEOUT": 0x6002,
    "ESP_ERR_NVS_BASE": 0x1100,
    "ESP_ERR_NVS_NOT_INITIALIZED": 0x1101,
    "ESP_ERR_NVS_NOT_FOUND": 0x1102,
    "ESP_ERR_NVS_TYPE_MISMATCH": 0x1103,
    "ESP_ERR_NVS_READ_ONLY": 0x1104,
    "ESP_ERR_NVS_NOT_ENOUGH_SPACE": 0x1105,
    "ESP_ERR_NVS_INVALID_NAME": 0x1106,
    "ESP_ERR_NVS_INVALID_HANDLE": 0x1107,
    "ESP_ERR_NVS_REMOVE_FAILED": 0x1108,
    "ESP_ERR_NVS_KEY_TOO_LONG": 0x1109,
    "ESP_ERR_NVS_PAGE_FULL": 0x110A,
    "ESP_ERR_NVS_INVALID_STATE": 0x110B,
    "ESP_ERR_NVS_INVALID_LENGTH": 0x110C,
    "ESP_ERR_NVS_NO_FREE_PAGES": 0x110D,
    "ESP_ERR_NVS_VALUE_TOO_LONG": 0x110E,
    "ESP_ERR_NVS_PART_NOT_FOUND": 0x110F,
    "ESP_ERR_NVS_NEW_VERSION_FOUND": 0x1110,
    "ESP_ERR_HTTP_BASE": 0x7000,
    "ESP_ERR_HTTP_MAX_REDIRECT": 0x7001,
    "ESP_ERR_HTTP_CONNECT": 0x7002,
    "ESP_ERR_HTTP_WRITE_DATA": 0x7003,
    "ESP_ERR_HTTP_FETCH_HEADER": 0x7004,
    "ESP_ERR_HTTP_INVALID_TRANSPORT": 0x7005,
    "ESP_ERR_HTTP_CONNECTING": 0x7006,
    "ESP_ERR_HTTP_EAGAIN": 0x7007,
    "ESP_ERR_HTTP_CONNECTION_CLOSED": 0x7008,
    "ESP_ERR_HTTP_NOT_MODIFIED": 0x7009,
    "ESP_ERR_HTTP_RANGE_NOT_SATISFIABLE": 0x700A,
    "ESP_ERR_HTTP_READ_TIMEOUT": 0x700B,
    "ESP_ERR_HTTP_INCOMPLETE_DATA": 0x700C,
    "ESP_ERR_HTTPS_OTA_BASE": 0x9000,
    "ESP_ERR_HTTPS_OTA_IN_PROGRESS": 0x9001,
}

NAMES: dict[int, str] = {code: name for name, code in CODES.items()}

# OTA_SIZE_UNKNOWN / OTA_WITH_SEQUENTIAL_WRITES (esp_ota_ops.h)
OTA_SIZE_UNKNOWN = 0xFFFFFFFF
OTA_WITH_SEQUENTIAL_WRITES = 0xFFFFFFFE


def esp_err_to_name(code: int) -> str:
    """``esp_err_to_name``: the constant's name, or ``"UNKNOWN ERROR"`` as ESP-IDF prints."""
    return NAMES.get(code, "UNKNOWN ERROR")


def esp_error(name: str, detail: str = "", cause: RefusableError | None = None) -> EspError:
    """Build the :class:`~otaforge.errors.EspError` for constant ``name``.

    Args:
        name: the ESP-IDF constant.
        detail: what happened, for people.
        cause: the refusal behind it (its ``code`` is what the agent reports).

    Raises:
        KeyError: ``name`` is not an ESP-IDF error constant known here (a programming error).
    """
    return EspError(CODES[name], name, detail, cause)


def raise_esp(name: str, detail: str = "", cause: RefusableError | None = None) -> NoReturn:
    """Raise the :class:`~otaforge.errors.EspError` for constant ``name``."""
    raise esp_error(name, detail, cause)
