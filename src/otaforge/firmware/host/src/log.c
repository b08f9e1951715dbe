/*
 * otaforge host layer: ESP_LOGx output as ESP-IDF prints it ("I (1234) tag: message").
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "esp_log.h"
#include "esp_timer.h"
#include "otaforge_rpc.h"

#define MAX_TAG_LEVELS 16

typedef struct {
    char tag[32];
    esp_log_level_t level;
} tag_level_t;

static tag_level_t s_levels[MAX_TAG_LEVELS];
static size_t s_level_count;
static esp_log_level_t s_default_level = (esp_log_level_t)CONFIG_LOG_MAXIMUM_LEVEL;

static const char LETTERS[] = "NEWIDV";

uint32_t esp_log_timestamp(void)
{
    return (uint32_t)(fw_last_time_us() / 1000);
}

uint32_t esp_log_early_timestamp(void)
{
    return esp_log_timestamp();
}

void esp_log_level_set(const char *tag, esp_log_level_t level)
{
    if (strcmp(tag, "*") == 0) {
        s_default_level = level;
        s_level_count = 0;
        return;
    }
    for (size_t i = 0; i < s_level_count; i++) {
        if (strcmp(s_levels[i].tag, tag) == 0) {
            s_levels[i].level = level;
            return;
        }
    }
    if (s_level_count < MAX_TAG_LEVELS) {
        snprintf(s_levels[s_level_count].tag, sizeof(s_levels[0].tag), "%s", tag);
        s_levels[s_level_count++].level = level;
    }
}

esp_log_level_t esp_log_level_get(const char *tag)
{
    for (size_t i = 0; i < s_level_count; i++) {
        if (strcmp(s_levels[i].tag, tag) == 0) {
            return s_levels[i].level;
        }
    }
    return s_default_level;
}

void esp_log_writev(esp_log_level_t level, const char *tag, const char *format, va_list args)
{
    if (level > esp_log_level_get(tag) || level == ESP_LOG_NONE) {
        return;
    }
    vprintf(format, args);
}

void esp_log_write(esp_log_level_t level, const char *tag, const char *format, ...)
{
    va_list args;
    va_start(args, format);
    esp_log_writev(level, tag, format, args);
    va_end(args);
}

void otaforge_host_log(esp_log_level_t level, const char *tag, const char *format, ...)
{
    if (level > esp_log_level_get(tag) || level == ESP_LOG_NONE || level > ESP_LOG_VERBOSE) {
        return;
    }
    char line[1024];
    va_list args;
    va_start(args, format);
    vsnprintf(line, sizeof(line), format, args);
    va_end(args);
    printf("%c (%lu) %s: %s\n", LETTERS[level], (unsigned long)esp_log_timestamp(), tag, line);
}

void esp_log_buffer_hex_internal(const char *tag, const void *buffer, uint16_t buff_len,
                                 esp_log_level_t level)
{
    const uint8_t *p = buffer;
    char line[16 * 3 + 1];
    for (uint16_t off = 0; off < buff_len; off += 16) {
        size_t n = 0;
        for (uint16_t i = off; i < buff_len && i < off + 16; i++) {
            n += (size_t)snprintf(line + n, sizeof(line) - n, "%02x ", p[i]);
        }
        if (n > 0) {
            line[n - 1] = '\0';
        }
        otaforge_host_log(level, tag, "%s", line);
    }
}
