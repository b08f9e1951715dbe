/*
 * otaforge host layer: app image header layouts (esp_app_format.h).
 */
#pragma once

#include <stdint.h>

#include "esp_app_desc.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    ESP_CHIP_ID_ESP32 = 0x0000,
    ESP_CHIP_ID_ESP32S2 = 0x0002,
    ESP_CHIP_ID_ESP32C3 = 0x0005,
    ESP_CHIP_ID_ESP32S3 = 0x0009,
    ESP_CHIP_ID_ESP32C2 = 0x000C,
    ESP_CHIP_ID_ESP32C6 = 0x000D,
    ESP_CHIP_ID_ESP32H2 = 0x0010,
    ESP_CHIP_ID_ESP32P4 = 0x0012,
    ESP_CHIP_ID_ESP32C5 = 0x0017,
    ESP_CHIP_ID_ESP32C61 = 0x0014,
    ESP_CHIP_ID_INVALID = 0xFFFF,
} __attribute__((packed)) esp_chip_id_t;

_Static_assert(sizeof(esp_chip_id_t) == 2, "esp_chip_id_t is 2 bytes");

typedef enum {
    ESP_IMAGE_SPI_MODE_QIO,
    ESP_IMAGE_SPI_MODE_QOUT,
    ESP_IMAGE_SPI_MODE_DIO,
    ESP_IMAGE_SPI_MODE_DOUT,
    ESP_IMAGE_SPI_MODE_FAST_READ,
    ESP_IMAGE_SPI_MODE_SLOW_READ,
} esp_image_spi_mode_t;

#define ESP_IMAGE_HEADER_MAGIC 0xE9
#define ESP_IMAGE_MAX_SEGMENTS 16

typedef struct {
    uint8_t magic;
    uint8_t segment_count;
    uint8_t spi_mode;
    uint8_t spi_speed: 4;
    uint8_t spi_size: 4;
    uint32_t entry_addr;
    uint8_t wp_pin;
    uint8_t spi_pin_drv[3];
    esp_chip_id_t chip_id;
    uint8_t min_chip_rev;
    uint16_t min_chip_rev_full;
    uint16_t max_chip_rev_full;
    uint8_t reserved[4];
    uint8_t hash_appended;
} __attribute__((packed)) esp_image_header_t;

_Static_assert(sizeof(esp_image_header_t) == 24, "esp_image_header_t is 24 bytes");

typedef struct {
    uint32_t load_addr;
    uint32_t data_len;
} esp_image_segment_header_t;

#ifdef __cplusplus
}
#endif
