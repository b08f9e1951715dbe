/*
 * otaforge host layer: NVS partition init/erase (nvs_flash.h).
 */
#pragma once

#include "esp_err.h"
#include "esp_partition.h"
#include "nvs.h"

#ifdef __cplusplus
extern "C" {
#endif

esp_err_t nvs_flash_init(void);
esp_err_t nvs_flash_init_partition(const char *partition_label);
esp_err_t nvs_flash_deinit(void);
esp_err_t nvs_flash_deinit_partition(const char *partition_label);
esp_err_t nvs_flash_erase(void);
esp_err_t nvs_flash_erase_partition(const char *part_name);

#ifdef __cplusplus
}
#endif
