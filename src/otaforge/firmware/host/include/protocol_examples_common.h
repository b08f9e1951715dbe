/*
 * otaforge host layer: ESP-IDF's examples/common_components/protocol_examples_common
 * (example_connect), connected at once on the emulator.
 */
#pragma once

#include "esp_err.h"

#ifdef __cplusplus
extern "C" {
#endif

esp_err_t example_connect(void);
esp_err_t example_disconnect(void);

#ifdef __cplusplus
}
#endif
