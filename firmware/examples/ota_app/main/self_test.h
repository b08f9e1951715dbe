#pragma once

#include "esp_err.h"

/** The checks a new image must pass before it is confirmed (called under the task watchdog). */
esp_err_t ota_app_self_test(void *ctx);
