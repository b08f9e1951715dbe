/*
 * What the otaforge client keeps in NVS (namespace "otaforge") so that a reset or power cut
 * loses nothing: the download in flight (for ota_resumption), a small queue of reports not yet
 * acknowledged by the server, and the SHA-256 of the image each slot was updated to.
 *
 * SPDX-License-Identifier: Apache-2.0
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "esp_log.h"
#include "nvs.h"
#include "otaforge_internal.h"

static const char *TAG = "otaforge_state";
static const char *NAMESPACE = "otaforge";

#define EVENT_QUEUE_LEN 4
#define EVENT_TEXT_LEN (OTAFORGE_EVENT_ID_LEN + OTAFORGE_REASON_LEN + 64)

static esp_err_t open_ns(nvs_open_mode_t mode, nvs_handle_t *handle)
{
    esp_err_t err = nvs_open(NAMESPACE, mode, handle);
    if (err != ESP_OK && err != ESP_ERR_NVS_NOT_FOUND) {
        ESP_LOGE(TAG, "nvs_open(%s): %s (did app_main call nvs_flash_init?)", NAMESPACE,
                 esp_err_to_name(err));
    }
    return err;
}

static esp_err_t get_str(nvs_handle_t handle, const char *key, char *out, size_t size)
{
    size_t len = size;
    return nvs_get_str(handle, key, out, &len);
}

esp_err_t otaforge_state_load_flight(otaforge_flight_t *flight)
{
    nvs_handle_t handle;
    esp_err_t err = open_ns(NVS_READONLY, &handle);
    if (err != ESP_OK) {
        return err;
    }
    memset(flight, 0, sizeof(*flight));
    err = nvs_get_i32(handle, "fl_dep", &flight->deployment_id);
    if (err == ESP_OK) {
        err = get_str(handle, "fl_sha", flight->sha256, sizeof(flight->sha256));
    }
    if (err == ESP_OK) {
        err = get_str(handle, "fl_ver", flight->version, sizeof(flight->version));
    }
    if (err == ESP_OK) {
        err = get_str(handle, "fl_label", flight->label, sizeof(flight->label));
    }
    if (err == ESP_OK) {
        err = nvs_get_u32(handle, "fl_written", &flight->written);
    }
    if (err == ESP_OK) {
        err = nvs_get_u32(handle, "fl_attempt", &flight->attempt);
    }
    if (err == ESP_OK) {
        err = nvs_get_u8(handle, "fl_inst", &flight->installed);
    }
    nvs_close(handle);
    return err;
}

esp_err_t otaforge_state_save_flight(const otaforge_flight_t *flight)
{
    nvs_handle_t handle;
    esp_err_t err = open_ns(NVS_READWRITE, &handle);
    if (err != ESP_OK) {
        return err;
    }
    /* fl_dep last: a flight record is valid only once its deployment id is written */
    err = nvs_set_str(handle, "fl_sha", flight->sha256);
    if (err == ESP_OK) {
        err = nvs_set_str(handle, "fl_ver", flight->version);
    }
    if (err == ESP_OK) {
        err = nvs_set_str(handle, "fl_label", flight->label);
    }
    if (err == ESP_OK) {
        err = nvs_set_u32(handle, "fl_written", flight->written);
    }
    if (err == ESP_OK) {
        err = nvs_set_u32(handle, "fl_attempt", flight->attempt);
    }
    if (err == ESP_OK) {
        err = nvs_set_u8(handle, "fl_inst", flight->installed);
    }
    if (err == ESP_OK) {
        err = nvs_set_i32(handle, "fl_dep", flight->deployment_id);
    }
    if (err == ESP_OK) {
        err = nvs_commit(handle);
    }
    nvs_close(handle);
    return err;
}

esp_err_t otaforge_state_clear_flight(void)
{
    nvs_handle_t handle;
    esp_err_t err = open_ns(NVS_READWRITE, &handle);
    if (err != ESP_OK) {
        return err;
    }
    err = nvs_erase_key(handle, "fl_dep");
    if (err == ESP_ERR_NVS_NOT_FOUND) {
        err = ESP_OK;
    }
    if (err == ESP_OK) {
        err = nvs_commit(handle);
    }
    nvs_close(handle);
    return err;
}

/* An event is stored as one string "deployment|bytes|state|id|reason" in ring slot "ev<N>". */
static void event_key(uint32_t slot, char key[8])
{
    snprintf(key, 8, "ev%u", (unsigned)(slot % EVENT_QUEUE_LEN));
}

static esp_err_t queue_bounds(nvs_handle_t handle, uint32_t *head, uint32_t *count)
{
    esp_err_t err = nvs_get_u32(handle, "ev_head", head);
    if (err == ESP_ERR_NVS_NOT_FOUND) {
        *head = 0;
        err = ESP_OK;
    }
    if (err == ESP_OK) {
        err = nvs_get_u32(handle, "ev_count", count);
        if (err == ESP_ERR_NVS_NOT_FOUND) {
            *count = 0;
            err = ESP_OK;
        }
    }
    return err;
}

esp_err_t otaforge_state_queue_event(const otaforge_event_t *event)
{
    nvs_handle_t handle;
    esp_err_t err = open_ns(NVS_READWRITE, &handle);
    if (err != ESP_OK) {
        return err;
    }
    uint32_t head = 0;
    uint32_t count = 0;
    err = queue_bounds(handle, &head, &count);
    if (err == ESP_OK && count == EVENT_QUEUE_LEN) {
        ESP_LOGW(TAG, "report queue full: dropping the oldest report");
        head++;
        count--;
    }
    char text[EVENT_TEXT_LEN];
    char key[8];
    snprintf(text, sizeof(text), "%ld|%ld|%s|%s|%s", (long)event->deployment_id,
             (long)event->bytes, event->state, event->id, event->reason);
    event_key(head + count, key);
    if (err == ESP_OK) {
        err = nvs_set_str(handle, key, text);
    }
    if (err == ESP_OK) {
        err = nvs_set_u32(handle, "ev_head", head % EVENT_QUEUE_LEN);
    }
    if (err == ESP_OK) {
        err = nvs_set_u32(handle, "ev_count", count + 1);
    }
    if (err == ESP_OK) {
        err = nvs_commit(handle);
    }
    nvs_close(handle);
    return err;
}

static void copy_field(char *dst, size_t size, const char *start, const char *end)
{
    size_t len = (size_t)(end - start);
    if (len >= size) {
        len = size - 1;
    }
    memcpy(dst, start, len);
    dst[len] = '\0';
}

static esp_err_t parse_event(const char *text, otaforge_event_t *event)
{
    const char *fields[5];
    const char *p = text;
    fields[0] = p;
    for (int i = 1; i < 5; i++) {
        p = strchr(p, '|');
        if (p == NULL) {
            return ESP_ERR_INVALID_STATE;
        }
        fields[i] = ++p;
    }
    memset(event, 0, sizeof(*event));
    event->deployment_id = (int32_t)strtol(fields[0], NULL, 10);
    event->bytes = (int32_t)strtol(fields[1], NULL, 10);
    copy_field(event->state, sizeof(event->state), fields[2], fields[3] - 1);
    copy_field(event->id, sizeof(event->id), fields[3], fields[4] - 1);
    copy_field(event->reason, sizeof(event->reason), fields[4], fields[4] + strlen(fields[4]));
    return ESP_OK;
}

esp_err_t otaforge_state_peek_event(otaforge_event_t *event)
{
    nvs_handle_t handle;
    esp_err_t err = open_ns(NVS_READONLY, &handle);
    if (err != ESP_OK) {
        return err;
    }
    uint32_t head = 0;
    uint32_t count = 0;
    err = queue_bounds(handle, &head, &count);
    if (err == ESP_OK && count == 0) {
        err = ESP_ERR_NVS_NOT_FOUND;
    }
    char text[EVENT_TEXT_LEN];
    char key[8];
    event_key(head, key);
    if (err == ESP_OK) {
        err = get_str(handle, key, text, sizeof(text));
    }
    nvs_close(handle);
    return err == ESP_OK ? parse_event(text, event) : err;
}

esp_err_t otaforge_state_drop_event(void)
{
    nvs_handle_t handle;
    esp_err_t err = open_ns(NVS_READWRITE, &handle);
    if (err != ESP_OK) {
        return err;
    }
    uint32_t head = 0;
    uint32_t count = 0;
    err = queue_bounds(handle, &head, &count);
    if (err == ESP_OK && count > 0) {
        err = nvs_set_u32(handle, "ev_head", (head + 1) % EVENT_QUEUE_LEN);
        if (err == ESP_OK) {
            err = nvs_set_u32(handle, "ev_count", count - 1);
        }
        if (err == ESP_OK) {
            err = nvs_commit(handle);
        }
    }
    nvs_close(handle);
    return err;
}

esp_err_t otaforge_state_get_sha(const char *label, char sha256[OTAFORGE_SHA256_HEX_LEN + 1])
{
    nvs_handle_t handle;
    esp_err_t err = open_ns(NVS_READONLY, &handle);
    if (err != ESP_OK) {
        return err;
    }
    char key[NVS_KEY_NAME_MAX_SIZE];
    snprintf(key, sizeof(key), "sha_%.10s", label);
    err = get_str(handle, key, sha256, OTAFORGE_SHA256_HEX_LEN + 1);
    nvs_close(handle);
    return err;
}

esp_err_t otaforge_state_set_sha(const char *label, const char *sha256)
{
    nvs_handle_t handle;
    esp_err_t err = open_ns(NVS_READWRITE, &handle);
    if (err != ESP_OK) {
        return err;
    }
    char key[NVS_KEY_NAME_MAX_SIZE];
    snprintf(key, sizeof(key), "sha_%.10s", label);
    err = nvs_set_str(handle, key, sha256);
    if (err == ESP_OK) {
        err = nvs_commit(handle);
    }
    nvs_close(handle);
    return err;
}
