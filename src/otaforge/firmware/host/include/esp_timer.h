/*
 * otaforge host layer: esp_timer_get_time on the emulated device's clock (esp_timer.h).
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "esp_err.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Microseconds since the chip booted (the emulator's virtual clock). */
int64_t esp_timer_get_time(void);

#ifdef __cplusplus
}
#endif
