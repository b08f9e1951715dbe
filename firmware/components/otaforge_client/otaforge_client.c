/*
 * otaforge client: boot validation (self-test under the task watchdog, confirm or roll back)
 * and the update flow (check in, check the image header before erasing, download resumably
 * with esp_https_ota, set the boot partition, restart). Every state change is queued in NVS
 * before it is sent, so a reset never loses a report; event ids make a resend harmless.
 *
 * SPDX-License-Identifier: Apache-2.0
 */
#include <stdio.h>
#include <string.h>

#include "esp_app_desc.h"
#include "esp_efuse.h"
#include "esp_https_ota.h"
#include "esp_log.h"
#include "esp_ota_ops.h"
#include "esp_system.h"
#include "esp_task_wdt.h"
#include "freertos/FreeRTOS.h"
#include "freertos/task.h"
#include "otaforge_internal.h"

static const char *TAG = "otaforge";

static const char *ota_state_name(esp_ota_img_states_t state)
{
    switch (state) {
    case ESP_OTA_IMG_NEW: return "new";
    case ESP_OTA_IMG_PENDING_VERIFY: return "pending_verify";
    case ESP_OTA_IMG_VALID: return "valid";
    case ESP_OTA_IMG_INVALID: return "invalid";
    case ESP_OTA_IMG_ABORTED: return "aborted";
    default: return "undefined";
    }
}

/* The id is derived from what the event is about, so a resend after a reset reuses it. */
static void make_event(otaforge_event_t *event, const otaforge_flight_t *flight,
                       const char *state, const char *reason, int32_t bytes)
{
    memset(event, 0, sizeof(*event));
    if (flight != NULL) {
        event->deployment_id = flight->deployment_id;
        snprintf(event->id, sizeof(event->id), "d%ld-a%lu-%s", (long)flight->deployment_id,
                 (unsigned long)flight->attempt, state);
    } else {
        snprintf(event->id, sizeof(event->id), "boot-%s-%lld", state,
                 (long long)esp_log_timestamp());
    }
    snprintf(event->state, sizeof(event->state), "%s", state);
    snprintf(event->reason, sizeof(event->reason), "%s", reason != NULL ? reason : "");
    event->bytes = bytes;
}

/* Send queued reports, oldest first; stop at the first one the network does not take. */
static void flush_reports(const otaforge_client_config_t *config)
{
    otaforge_event_t event;
    while (otaforge_state_peek_event(&event) == ESP_OK) {
        esp_err_t err = otaforge_api_report(config, &event);
        if (err != ESP_OK && err != ESP_ERR_INVALID_STATE) {
            return;  /* kept in NVS: sent at the next check-in */
        }
        otaforge_state_drop_event();
    }
}

static void report(const otaforge_client_config_t *config, const otaforge_flight_t *flight,
                   const char *state, const char *reason, int32_t bytes)
{
    otaforge_event_t event;
    make_event(&event, flight, state, reason, bytes);
    if (otaforge_state_queue_event(&event) != ESP_OK) {
        ESP_LOGW(TAG, "could not queue the %s report in NVS", state);
    }
    flush_reports(config);
}

static esp_err_t check_config(const otaforge_client_config_t *config)
{
    if (config == NULL || config->server_url == NULL || config->fleet == NULL ||
            config->device_id == NULL || config->device_id[0] == '\0') {
        ESP_LOGE(TAG, "otaforge_client_config_t needs server_url, fleet and device_id");
        return ESP_ERR_INVALID_ARG;
    }
    if (strncmp(config->server_url, "https://", 8) != 0) {
        ESP_LOGE(TAG, "server_url must be an https:// URL, not '%s'", config->server_url);
        return ESP_ERR_INVALID_ARG;
    }
    return otaforge_api_set_token(config->device_token);
}

/* The self-test, with the task watchdog armed: a hang panics, and the bootloader rolls back. */
static esp_err_t guarded_self_test(const otaforge_client_config_t *config)
{
    if (config->self_test == NULL) {
        ESP_LOGW(TAG, "no self-test callback: the new image is confirmed as it is");
        return ESP_OK;
    }
    esp_task_wdt_config_t twdt = {
        .timeout_ms = config->self_test_timeout_ms,
        .idle_core_mask = 0,
        .trigger_panic = true,
    };
    esp_err_t err = esp_task_wdt_reconfigure(&twdt);
    if (err == ESP_ERR_INVALID_STATE) {  /* the TWDT was not initialised at startup */
        err = esp_task_wdt_init(&twdt);
    }
    if (err == ESP_OK) {
        err = esp_task_wdt_add(NULL);
    }
    if (err != ESP_OK) {
        ESP_LOGE(TAG, "cannot arm the task watchdog: %s", esp_err_to_name(err));
        return err;
    }
    ESP_LOGI(TAG, "self-test of the new image (watchdog %lu ms)",
             (unsigned long)config->self_test_timeout_ms);
    esp_err_t result = config->self_test(config->self_test_ctx);
    esp_task_wdt_delete(NULL);
    return result;
}

static esp_err_t validate_pending(const otaforge_client_config_t *config,
                                  const esp_partition_t *running, otaforge_flight_t *flight)
{
    report(config, flight, "pending_verify", NULL, -1);
    esp_err_t result = guarded_self_test(config);
    if (result != ESP_OK) {
        char reason[OTAFORGE_REASON_LEN];
        snprintf(reason, sizeof(reason), "self_test_failed: self-test returned %s",
                 esp_err_to_name(result));
        ESP_LOGE(TAG, "%s: rolling back", reason);
        otaforge_event_t event;
        make_event(&event, flight, "rolled_back", reason, -1);
        otaforge_state_queue_event(&event);   /* sent by the previous image after the reboot */
        otaforge_state_clear_flight();
        esp_err_t err = esp_ota_mark_app_invalid_rollback_and_reboot();
        /* Only returns on failure: ESP_ERR_OTA_ROLLBACK_FAILED when esp_ota_ops sees no other
         * app to go back to (with CONFIG_BOOTLOADER_APP_ANTI_ROLLBACK the factory app does not
         * count). Restart anyway: the image is still ESP_OTA_IMG_PENDING_VERIFY, so the
         * bootloader marks it aborted and boots the app it can verify. */
        ESP_LOGE(TAG, "esp_ota_mark_app_invalid_rollback_and_reboot: %s; restarting so the "
                 "bootloader rolls back", esp_err_to_name(err));
        esp_restart();
    }
    esp_err_t err = esp_ota_mark_app_valid_cancel_rollback();
    if (err != ESP_OK) {
        ESP_LOGE(TAG, "esp_ota_mark_app_valid_cancel_rollback: %s", esp_err_to_name(err));
        return err;
    }
    ESP_LOGI(TAG, "new image on %s confirmed", running->label);
    if (flight != NULL) {
        otaforge_state_set_sha(running->label, flight->sha256);
    }
    report(config, flight, "confirmed", NULL, -1);
    return flight != NULL ? otaforge_state_clear_flight() : ESP_OK;
}

esp_err_t otaforge_client_validate_boot(const otaforge_client_config_t *config)
{
    esp_err_t err = check_config(config);
    if (err != ESP_OK) {
        return err;
    }
    const esp_partition_t *running = esp_ota_get_running_partition();
    esp_ota_img_states_t state = ESP_OTA_IMG_UNDEFINED;
    esp_err_t state_err = esp_ota_get_state_partition(running, &state);
    otaforge_flight_t stored;
    otaforge_flight_t *flight = otaforge_state_load_flight(&stored) == ESP_OK ? &stored : NULL;
    bool flight_here = flight != NULL && flight->installed &&
                       strcmp(flight->label, running->label) == 0;
    if (state_err == ESP_OK && state == ESP_OTA_IMG_PENDING_VERIFY) {
        return validate_pending(config, running, flight_here ? flight : NULL);
    }
    if (flight != NULL && flight->installed && !flight_here) {
        char reason[OTAFORGE_REASON_LEN];
        snprintf(reason, sizeof(reason), "boot_failed: %s did not stay running (watchdog, "
                 "panic or invalid image); the bootloader went back to %s", flight->label,
                 running->label);
        ESP_LOGW(TAG, "%s", reason);
        report(config, flight, "rolled_back", reason, -1);
        return otaforge_state_clear_flight();
    }
    if (flight_here && state_err == ESP_OK && state == ESP_OTA_IMG_VALID) {
        otaforge_state_set_sha(running->label, flight->sha256);  /* confirmed before a reset */
        report(config, flight, "confirmed", NULL, -1);
        return otaforge_state_clear_flight();
    }
    flush_reports(config);
    return ESP_OK;
}

static void running_facts(const esp_partition_t *running, otaforge_facts_t *facts,
                          char sha256[OTAFORGE_SHA256_HEX_LEN + 1])
{
    const esp_app_desc_t *desc = esp_app_get_description();
    esp_ota_img_states_t state;
    memset(facts, 0, sizeof(*facts));
    facts->chip = CONFIG_IDF_TARGET;
    facts->version = desc->version;
    facts->running_partition = running->label;
    facts->image_sha256 = otaforge_state_get_sha(running->label, sha256) == ESP_OK ? sha256 : NULL;
    facts->otadata_state = esp_ota_get_state_partition(running, &state) == ESP_OK ?
                           ota_state_name(state) : NULL;
    facts->secure_version = (int64_t)esp_efuse_read_secure_version();
}

/* First bytes, before esp_https_ota_perform erases anything: is this the offered image? */
static esp_err_t check_header(esp_https_ota_handle_t handle, const otaforge_offer_t *offer,
                              char *reason, size_t size)
{
    esp_app_desc_t desc;
    esp_err_t err = esp_https_ota_get_img_desc(handle, &desc);
    if (err != ESP_OK) {
        snprintf(reason, size, "bad_image: no app description in the first bytes (%s)",
                 esp_err_to_name(err));
        return ESP_ERR_OTA_VALIDATE_FAILED;
    }
    if (strncmp(desc.version, offer->version, sizeof(desc.version)) != 0) {
        snprintf(reason, size, "version_mismatch: image says %.32s, the server offered %s",
                 desc.version, offer->version);
        return ESP_ERR_OTA_VALIDATE_FAILED;
    }
#if CONFIG_BOOTLOADER_APP_ANTI_ROLLBACK
    if (!esp_efuse_check_secure_version(desc.secure_version)) {
        snprintf(reason, size, "secure_version: image has %lu, below the eFuse's %lu",
                 (unsigned long)desc.secure_version,
                 (unsigned long)esp_efuse_read_secure_version());
        return ESP_ERR_OTA_SMALL_SEC_VER;
    }
#endif
    return ESP_OK;
}

static void save_progress(otaforge_flight_t *flight, int written)
{
    if (written > 0 && (uint32_t)written >= flight->written + CONFIG_OTAFORGE_PROGRESS_SAVE_BYTES) {
        flight->written = (uint32_t)written;
        otaforge_state_save_flight(flight);
    }
}

static esp_err_t download(const otaforge_client_config_t *config, const otaforge_offer_t *offer,
                          otaforge_flight_t *flight, char *reason, size_t size)
{
    esp_http_client_config_t http_config = {
        .url = offer->url,
        .cert_pem = config->cert_pem,
        .timeout_ms = config->timeout_ms,
        .keep_alive_enable = true,
    };
    esp_https_ota_config_t ota_config = {
        .http_config = &http_config,
        .http_client_init_cb = otaforge_api_auth_init_cb,
        .ota_resumption = true,
        .ota_image_bytes_written = flight->written,
    };
    esp_https_ota_handle_t handle = NULL;
    esp_err_t err = esp_https_ota_begin(&ota_config, &handle);
    if (err != ESP_OK) {
        snprintf(reason, size, "download_failed: esp_https_ota_begin: %s", esp_err_to_name(err));
        return err;
    }
    err = check_header(handle, offer, reason, size);
    while (err == ESP_OK) {
        err = esp_https_ota_perform(handle);
        int written = esp_https_ota_get_image_len_read(handle);
        if (config->progress != NULL) {
            config->progress(written, esp_https_ota_get_image_size(handle), config->progress_ctx);
        }
        save_progress(flight, written);
        if (err == ESP_ERR_HTTPS_OTA_IN_PROGRESS) {
            err = ESP_OK;
        } else {
            break;
        }
    }
    if (err == ESP_OK && !esp_https_ota_is_complete_data_received(handle)) {
        err = ESP_ERR_HTTPS_OTA_IN_PROGRESS;
        snprintf(reason, size, "download_failed: the connection ended before the whole image");
    } else if (err != ESP_OK && reason[0] == '\0') {
        snprintf(reason, size, "download_failed: esp_https_ota_perform: %s",
                 esp_err_to_name(err));
    }
    if (err != ESP_OK) {
        esp_https_ota_abort(handle);
        return err;
    }
    err = esp_https_ota_finish(handle);  /* esp_ota_end (verifies) + esp_ota_set_boot_partition */
    if (err != ESP_OK) {
        snprintf(reason, size, "bad_image: esp_https_ota_finish: %s", esp_err_to_name(err));
    }
    return err;
}

static void start_flight(otaforge_flight_t *flight, const otaforge_offer_t *offer,
                         const esp_partition_t *slot)
{
    otaforge_flight_t previous;
    bool resume = otaforge_state_load_flight(&previous) == ESP_OK && !previous.installed &&
                  previous.deployment_id == offer->deployment_id &&
                  strcmp(previous.sha256, offer->sha256) == 0 &&
                  strcmp(previous.label, slot->label) == 0;
    memset(flight, 0, sizeof(*flight));
    flight->deployment_id = offer->deployment_id;
    snprintf(flight->sha256, sizeof(flight->sha256), "%s", offer->sha256);
    snprintf(flight->version, sizeof(flight->version), "%s", offer->version);
    snprintf(flight->label, sizeof(flight->label), "%s", slot->label);
    flight->written = resume ? previous.written : 0;
    flight->attempt = resume ? previous.attempt + 1 : 1;
    if (resume) {
        ESP_LOGI(TAG, "resuming %s at byte %lu", offer->version, (unsigned long)flight->written);
    }
    otaforge_state_save_flight(flight);
}

static bool is_image_refusal(esp_err_t err)
{
    return err == ESP_ERR_OTA_VALIDATE_FAILED || err == ESP_ERR_OTA_SMALL_SEC_VER ||
           err == ESP_ERR_INVALID_VERSION || err == ESP_ERR_INVALID_SIZE;
}

esp_err_t otaforge_client_update(const otaforge_client_config_t *config, int *next_check_in_s)
{
    esp_err_t err = check_config(config);
    if (err != ESP_OK) {
        return err;
    }
    flush_reports(config);
    const esp_partition_t *running = esp_ota_get_running_partition();
    char sha256[OTAFORGE_SHA256_HEX_LEN + 1];
    otaforge_facts_t facts;
    running_facts(running, &facts, sha256);
    otaforge_offer_t offer;
    err = otaforge_api_check_in(config, &facts, &offer, next_check_in_s);
    if (err != ESP_OK) {
        return err;
    }
    ESP_LOGI(TAG, "server offers %s (%ld bytes)", offer.version, (long)offer.size);
    const esp_partition_t *slot = esp_ota_get_next_update_partition(NULL);
    otaforge_flight_t flight;
    start_flight(&flight, &offer, slot);
    char reason[OTAFORGE_REASON_LEN + 1] = "";
    if (slot == NULL || offer.size <= 0 || (uint32_t)offer.size > slot->size) {
        snprintf(reason, sizeof(reason), "too_large: %ld bytes do not fit the OTA slot",
                 (long)offer.size);
        err = ESP_ERR_INVALID_SIZE;
    } else {
        report(config, &flight, "downloading", NULL, (int32_t)flight.written);
        err = download(config, &offer, &flight, reason, sizeof(reason));
    }
    if (err != ESP_OK) {
        ESP_LOGE(TAG, "update to %s failed: %s", offer.version, reason);
        report(config, &flight, "failed", reason, -1);
        if (is_image_refusal(err)) {
            otaforge_state_clear_flight();  /* never resume into an image that was refused */
        }
        return err;
    }
    flight.installed = 1;
    flight.written = (uint32_t)offer.size;
    otaforge_state_save_flight(&flight);
    report(config, &flight, "downloaded", NULL, offer.size);
    report(config, &flight, "rebooting", NULL, -1);
    ESP_LOGI(TAG, "%s written to %s: restarting into it", offer.version, slot->label);
    esp_restart();
    return ESP_OK;
}

void otaforge_client_run(const otaforge_client_config_t *config)
{
    esp_err_t err = otaforge_client_validate_boot(config);
    if (err != ESP_OK) {
        ESP_LOGE(TAG, "boot validation: %s", esp_err_to_name(err));
    }
    while (true) {
        int next_s = CONFIG_OTAFORGE_CHECK_IN_INTERVAL_S;
        err = otaforge_client_update(config, &next_s);
        if (err != ESP_OK && err != ESP_ERR_NOT_FOUND) {
            ESP_LOGW(TAG, "check-in/update: %s; next try in %d s", esp_err_to_name(err), next_s);
        }
        vTaskDelay(pdMS_TO_TICKS((uint32_t)next_s * 1000U));
    }
}
