/*
 * otaforge client internals: the device API calls (otaforge_api.c) and what survives a reset
 * in NVS (otaforge_state.c).
 *
 * SPDX-License-Identifier: Apache-2.0
 */
#pragma once

#include <stdint.h>

#include "esp_err.h"
#include "esp_http_client.h"
#include "otaforge_client.h"

#define OTAFORGE_SHA256_HEX_LEN 64
#define OTAFORGE_LABEL_LEN 16
#define OTAFORGE_VERSION_LEN 32
#define OTAFORGE_URL_LEN 256
#define OTAFORGE_REASON_LEN 160
#define OTAFORGE_EVENT_ID_LEN 64

/** What the device reports at check-in. */
typedef struct {
    const char *chip;
    const char *version;
    const char *image_sha256;      /*!< NULL when unknown (e.g. factory image) */
    const char *running_partition;
    const char *otadata_state;     /*!< "valid", "pending_verify", ... or NULL */
    int64_t secure_version;        /*!< eFuse secure_version (anti-rollback), -1: unknown */
} otaforge_facts_t;

/** The server's offer (its manifest). */
typedef struct {
    int32_t deployment_id;
    char version[OTAFORGE_VERSION_LEN + 1];
    uint32_t secure_version;
    int32_t size;
    char sha256[OTAFORGE_SHA256_HEX_LEN + 1];
    char url[OTAFORGE_URL_LEN + 1];
    int next_check_in_s;
} otaforge_offer_t;

/** One report; its id makes a replay harmless (the server answers 200 "duplicate"). */
typedef struct {
    char id[OTAFORGE_EVENT_ID_LEN + 1];
    int32_t deployment_id;         /*!< 0: none */
    char state[16];                /*!< downloading, downloaded, rebooting, pending_verify, ... */
    char reason[OTAFORGE_REASON_LEN + 1];
    int32_t bytes;                 /*!< -1: none */
} otaforge_event_t;

/** A download in progress or an image installed but not yet confirmed: survives resets. */
typedef struct {
    int32_t deployment_id;
    char sha256[OTAFORGE_SHA256_HEX_LEN + 1];
    char version[OTAFORGE_VERSION_LEN + 1];
    char label[OTAFORGE_LABEL_LEN + 1];   /*!< the slot written */
    uint32_t written;                      /*!< bytes in the slot (for ota_resumption) */
    uint32_t attempt;                      /*!< download attempts of this deployment */
    uint8_t installed;                     /*!< set as boot partition, reboot pending */
} otaforge_flight_t;

/* otaforge_api.c */
esp_err_t otaforge_api_check_in(const otaforge_client_config_t *config,
                                const otaforge_facts_t *facts, otaforge_offer_t *offer,
                                int *next_check_in_s);
esp_err_t otaforge_api_report(const otaforge_client_config_t *config,
                              const otaforge_event_t *event);
esp_err_t otaforge_api_set_token(const char *token);
esp_err_t otaforge_api_auth_init_cb(esp_http_client_handle_t client);

/* otaforge_state.c */
esp_err_t otaforge_state_load_flight(otaforge_flight_t *flight);
esp_err_t otaforge_state_save_flight(const otaforge_flight_t *flight);
esp_err_t otaforge_state_clear_flight(void);
esp_err_t otaforge_state_queue_event(const otaforge_event_t *event);
esp_err_t otaforge_state_peek_event(otaforge_event_t *event);
esp_err_t otaforge_state_drop_event(void);
esp_err_t otaforge_state_get_sha(const char *label, char sha256[OTAFORGE_SHA256_HEX_LEN + 1]);
esp_err_t otaforge_state_set_sha(const char *label, const char *sha256);
