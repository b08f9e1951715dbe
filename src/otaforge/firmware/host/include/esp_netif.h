/*
 * otaforge host layer: esp_netif (always connected on the emulator).
 */
#pragma once

#include "esp_err.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct esp_netif_obj esp_netif_t;

esp_err_t esp_netif_init(void);
esp_err_t esp_netif_deinit(void);
esp_netif_t *esp_netif_create_default_wifi_sta(void);

#ifdef __cplusplus
}
#endif
