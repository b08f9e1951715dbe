/*
 * otaforge host layer: SPI flash error codes (esp_flash_err.h).
 */
#pragma once

#include "esp_err.h"

#ifdef __cplusplus
extern "C" {
#endif

#define ESP_ERR_FLASH_NOT_INITIALISED (ESP_ERR_FLASH_BASE + 3)
#define ESP_ERR_FLASH_UNSUPPORTED_HOST (ESP_ERR_FLASH_BASE + 4)
#define ESP_ERR_FLASH_UNSUPPORTED_CHIP (ESP_ERR_FLASH_BASE + 5)
#define ESP_ERR_FLASH_PROTECTED (ESP_ERR_FLASH_BASE + 6)

#ifdef __cplusplus
}
#endif
