/*
 * otaforge host layer: FreeRTOS basics (ticks, types) for ESP-IDF apps on the emulator.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "esp_system.h" /* as ESP-IDF's portmacro.h includes it */
#include "sdkconfig.h"

#ifdef __cplusplus
extern "C" {
#endif

#ifndef CONFIG_FREERTOS_HZ
#define CONFIG_FREERTOS_HZ 100
#endif

typedef uint32_t TickType_t;
typedef int BaseType_t;
typedef unsigned int UBaseType_t;
typedef uint32_t StackType_t;

#define configTICK_RATE_HZ ((TickType_t)CONFIG_FREERTOS_HZ)
#define portTICK_PERIOD_MS ((TickType_t)1000 / configTICK_RATE_HZ)
#define portMAX_DELAY ((TickType_t)0xffffffffUL)
#define pdMS_TO_TICKS(xTimeInMs) \
    ((TickType_t)(((uint64_t)(xTimeInMs) * (uint64_t)configTICK_RATE_HZ) / (uint64_t)1000U))
#define pdTICKS_TO_MS(xTicks) \
    ((TickType_t)(((uint64_t)(xTicks) * (uint64_t)1000U) / (uint64_t)configTICK_RATE_HZ))

#define pdFALSE ((BaseType_t)0)
#define pdTRUE ((BaseType_t)1)
#define pdPASS (pdTRUE)
#define pdFAIL (pdFALSE)
#define tskNO_AFFINITY ((BaseType_t)0x7FFFFFFF)
#define configMAX_PRIORITIES 25

#ifdef __cplusplus
}
#endif
