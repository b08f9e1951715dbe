/*
 * otaforge host layer: app image verification error codes (esp_image_format.h).
 */
#pragma once

#include "esp_app_format.h"
#include "esp_err.h"

#ifdef __cplusplus
extern "C" {
#endif

#define ESP_ERR_IMAGE_BASE       0x2000
#define ESP_ERR_IMAGE_FLASH_FAIL (ESP_ERR_IMAGE_BASE + 1)
#define ESP_ERR_IMAGE_INVALID    (ESP_ERR_IMAGE_BASE + 2)

#ifdef __cplusplus
}
#endif
