/*
 * otaforge host layer: the anti-rollback secure_version eFuse (esp_efuse.h).
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "esp_err.h"

#ifdef __cplusplus
extern "C" {
#endif

#define ESP_ERR_EFUSE                              0x1600
#define ESP_OK_EFUSE_CNT                          (ESP_ERR_EFUSE + 0x01)
#define ESP_ERR_EFUSE_CNT_IS_FULL                 (ESP_ERR_EFUSE + 0x02)
#define ESP_ERR_EFUSE_REPEATED_PROG               (ESP_ERR_EFUSE + 0x03)
#define ESP_ERR_CODING                            (ESP_ERR_EFUSE + 0x04)
#define ESP_ERR_NOT_ENOUGH_UNUSED_KEY_BLOCKS      (ESP_ERR_EFUSE + 0x05)
#define ESP_ERR_DAMAGED_READING                   (ESP_ERR_EFUSE + 0x06)

uint32_t esp_efuse_read_secure_version(void);
bool esp_efuse_check_secure_version(uint32_t secure_version);
esp_err_t esp_efuse_update_secure_version(uint32_t secure_version);

#ifdef __cplusplus
}
#endif
