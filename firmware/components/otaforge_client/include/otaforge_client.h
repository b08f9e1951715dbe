/*
 * otaforge client for ESP-IDF: check in with an otaforge update server, download the offered
 * release into the passive OTA slot with esp_https_ota (resumable across resets), validate a
 * new image with the application's self-test under the task watchdog, confirm it or roll back,
 * and report every state change to the server with idempotent event ids.
 *
 * SPDX-License-Identifier: Apache-2.0
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "esp_err.h"
#include "sdkconfig.h"

#ifdef __cplusplus
extern "C" {
#endif

/** The application's self-test of a new image: return ESP_OK when the device is healthy. */
typedef esp_err_t (*otaforge_self_test_cb_t)(void *ctx);

/** Download progress: bytes of the image written so far (resumed bytes included), and total. */
typedef void (*otaforge_progress_cb_t)(int written, int total, void *ctx);

typedef struct {
    const char *server_url;        /*!< e.g. "https://ota.example.com:8443" (https only) */
    const char *fleet;             /*!< fleet name on the server */
    const char *device_id;         /*!< device id on the server */
    const char *device_token;      /*!< device token (or fleet enrollment token) */
    const char *cert_pem;          /*!< the server's CA (server_cert.pem, EMBED_TXTFILES) */
    int timeout_ms;                /*!< HTTP timeout */
    otaforge_self_test_cb_t self_test;   /*!< run on the first boot of a new image */
    void *self_test_ctx;
    uint32_t self_test_timeout_ms; /*!< task watchdog timeout around the self-test */
    otaforge_progress_cb_t progress;     /*!< optional */
    void *progress_ctx;
} otaforge_client_config_t;

/** Defaults from Kconfig (menu "otaforge client"); set cert_pem and self_test yourself. */
#define OTAFORGE_CLIENT_CONFIG_DEFAULT() {                       \
    .server_url = CONFIG_OTAFORGE_SERVER_URL,                    \
    .fleet = CONFIG_OTAFORGE_FLEET,                              \
    .device_id = CONFIG_OTAFORGE_DEVICE_ID,                      \
    .device_token = CONFIG_OTAFORGE_DEVICE_TOKEN,                \
    .cert_pem = NULL,                                            \
    .timeout_ms = CONFIG_OTAFORGE_HTTP_TIMEOUT_MS,               \
    .self_test = NULL,                                           \
    .self_test_ctx = NULL,                                       \
    .self_test_timeout_ms = CONFIG_OTAFORGE_SELF_TEST_TIMEOUT_MS, \
    .progress = NULL,                                            \
    .progress_ctx = NULL,                                        \
}

/**
 * @brief Validate the running image; call early in app_main (after nvs_flash_init).
 *
 * On the first boot of a new image (ESP_OTA_IMG_PENDING_VERIFY) the task watchdog is armed with
 * self_test_timeout_ms and the self-test runs: ESP_OK marks the image valid
 * (esp_ota_mark_app_valid_cancel_rollback) and reports "confirmed"; a failure queues a
 * "rolled_back" report and calls esp_ota_mark_app_invalid_rollback_and_reboot (no return).
 * When the bootloader already rolled back (watchdog, panic, or the new image never booted),
 * "rolled_back" is reported for that deployment. Queued reports are sent at the next check-in.
 *
 * @return ESP_OK, ESP_ERR_INVALID_ARG, or an NVS/OTA error code.
 */
esp_err_t otaforge_client_validate_boot(const otaforge_client_config_t *config);

/**
 * @brief Check in once and install the offered release, if any.
 *
 * Checks the image header (chip, version, secure_version, size) before the slot is erased,
 * resumes a download interrupted by a reset (esp_https_ota ota_resumption), and restarts into
 * the new image when it is written and set as the boot partition (no return then).
 *
 * @param[out] next_check_in_s  seconds until the next check-in (server hint); may be NULL
 * @return ESP_ERR_NOT_FOUND when there is no update, an error code when the update failed
 *         (already reported to the server when it could be).
 */
esp_err_t otaforge_client_update(const otaforge_client_config_t *config, int *next_check_in_s);

/** @brief otaforge_client_validate_boot, then otaforge_client_update at the server's interval,
 *  forever (run it in its own task). */
void otaforge_client_run(const otaforge_client_config_t *config);

#ifdef __cplusplus
}
#endif
