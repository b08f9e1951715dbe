/*
 * The otaforge device API over esp_http_client: POST /api/v1/devices/{id}/check-in (200 with a
 * manifest, or 204 when there is no update) and POST /api/v1/devices/{id}/events (201, or 200
 * when the event id was already recorded). Bodies are JSON, built and parsed with cJSON.
 *
 * SPDX-License-Identifier: Apache-2.0
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cJSON.h"
#include "esp_http_client.h"
#include "esp_log.h"
#include "otaforge_internal.h"

static const char *TAG = "otaforge_api";

#define MAX_RESPONSE_LEN 4096
#define AUTH_HEADER_LEN 160

/* esp_https_ota's http_client_init_cb has no context argument: the header lives here */
static char s_authorization[AUTH_HEADER_LEN];

esp_err_t otaforge_api_set_token(const char *token)
{
    if (token == NULL || token[0] == '\0') {
        ESP_LOGE(TAG, "no device token: set CONFIG_OTAFORGE_DEVICE_TOKEN or config.device_token");
        return ESP_ERR_INVALID_ARG;
    }
    int n = snprintf(s_authorization, sizeof(s_authorization), "Bearer %s", token);
    return (n > 0 && (size_t)n < sizeof(s_authorization)) ? ESP_OK : ESP_ERR_INVALID_SIZE;
}

esp_err_t otaforge_api_auth_init_cb(esp_http_client_handle_t client)
{
    return esp_http_client_set_header(client, "Authorization", s_authorization);
}

/* POST body to the device route `what`; the response body (NUL-terminated) into response. */
static esp_err_t post_json(const otaforge_client_config_t *config, const char *what,
                           const char *body, int *status, char *response, size_t size)
{
    char url[OTAFORGE_URL_LEN + 1];
    int n = snprintf(url, sizeof(url), "%s/api/v1/devices/%s/%s", config->server_url,
                     config->device_id, what);
    if (n < 0 || (size_t)n >= sizeof(url)) {
        return ESP_ERR_INVALID_SIZE;
    }
    esp_http_client_config_t http_config = {
        .url = url,
        .cert_pem = config->cert_pem,
        .timeout_ms = config->timeout_ms,
        .method = HTTP_METHOD_POST,
    };
    esp_http_client_handle_t client = esp_http_client_init(&http_config);
    if (client == NULL) {
        return ESP_FAIL;
    }
    esp_http_client_set_header(client, "Content-Type", "application/json");
    esp_http_client_set_header(client, "Authorization", s_authorization);
    int len = (int)strlen(body);
    esp_err_t err = esp_http_client_open(client, len);
    if (err == ESP_OK && esp_http_client_write(client, body, len) != len) {
        err = ESP_ERR_HTTP_WRITE_DATA;
    }
    if (err == ESP_OK && esp_http_client_fetch_headers(client) < 0) {
        err = ESP_ERR_HTTP_FETCH_HEADER;
    }
    size_t got = 0;
    while (err == ESP_OK && got + 1 < size) {
        int r = esp_http_client_read(client, response + got, (int)(size - 1 - got));
        if (r < 0) {
            err = ESP_ERR_HTTP_CONNECTION_CLOSED;
        } else if (r == 0) {
            break;
        } else {
            got += (size_t)r;
        }
    }
    response[got] = '\0';
    *status = esp_http_client_get_status_code(client);
    esp_http_client_close(client);
    esp_http_client_cleanup(client);
    if (err != ESP_OK) {
        ESP_LOGW(TAG, "POST %s: %s", url, esp_err_to_name(err));
    }
    return err;
}

static void add_optional_string(cJSON *object, const char *name, const char *value)
{
    if (value != NULL && value[0] != '\0') {
        cJSON_AddStringToObject(object, name, value);
    }
}

static esp_err_t copy_json_string(const cJSON *object, const char *name, char *out, size_t size)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(object, name);
    if (!cJSON_IsString(item) || strlen(item->valuestring) >= size) {
        ESP_LOGE(TAG, "manifest: '%s' missing or too long", name);
        return ESP_ERR_INVALID_RESPONSE;
    }
    strcpy(out, item->valuestring);
    return ESP_OK;
}

static esp_err_t parse_offer(const char *text, otaforge_offer_t *offer)
{
    cJSON *root = cJSON_Parse(text);
    if (root == NULL) {
        ESP_LOGE(TAG, "check-in: the server's manifest is not JSON");
        return ESP_ERR_INVALID_RESPONSE;
    }
    memset(offer, 0, sizeof(*offer));
    esp_err_t err = copy_json_string(root, "version", offer->version, sizeof(offer->version));
    if (err == ESP_OK) {
        err = copy_json_string(root, "sha256", offer->sha256, sizeof(offer->sha256));
    }
    if (err == ESP_OK) {
        err = copy_json_string(root, "url", offer->url, sizeof(offer->url));
    }
    const cJSON *dep = cJSON_GetObjectItemCaseSensitive(root, "deployment_id");
    const cJSON *size = cJSON_GetObjectItemCaseSensitive(root, "size");
    const cJSON *secver = cJSON_GetObjectItemCaseSensitive(root, "secure_version");
    const cJSON *next = cJSON_GetObjectItemCaseSensitive(root, "next_check_in_s");
    if (err == ESP_OK && !(cJSON_IsNumber(dep) && cJSON_IsNumber(size) && cJSON_IsNumber(secver))) {
        ESP_LOGE(TAG, "manifest: deployment_id, size or secure_version missing");
        err = ESP_ERR_INVALID_RESPONSE;
    }
    if (err == ESP_OK) {
        offer->deployment_id = (int32_t)dep->valuedouble;
        offer->size = (int32_t)size->valuedouble;
        offer->secure_version = (uint32_t)secver->valuedouble;
        offer->next_check_in_s = cJSON_IsNumber(next) ? (int)next->valuedouble : 0;
    }
    cJSON_Delete(root);
    return err;
}

esp_err_t otaforge_api_check_in(const otaforge_client_config_t *config,
                                const otaforge_facts_t *facts, otaforge_offer_t *offer,
                                int *next_check_in_s)
{
    cJSON *body = cJSON_CreateObject();
    if (body == NULL) {
        return ESP_ERR_NO_MEM;
    }
    cJSON_AddStringToObject(body, "fleet", config->fleet);
    cJSON_AddStringToObject(body, "chip", facts->chip);
    add_optional_string(body, "version", facts->version);
    add_optional_string(body, "image_sha256", facts->image_sha256);
    add_optional_string(body, "running_partition", facts->running_partition);
    add_optional_string(body, "otadata_state", facts->otadata_state);
    if (facts->secure_version >= 0) {
        cJSON_AddNumberToObject(body, "secure_version", (double)facts->secure_version);
    }
    char *text = cJSON_PrintUnformatted(body);
    cJSON_Delete(body);
    if (text == NULL) {
        return ESP_ERR_NO_MEM;
    }
    char *response = malloc(MAX_RESPONSE_LEN);
    if (response == NULL) {
        cJSON_free(text);
        return ESP_ERR_NO_MEM;
    }
    int status = 0;
    esp_err_t err = post_json(config, "check-in", text, &status, response, MAX_RESPONSE_LEN);
    cJSON_free(text);
    if (err == ESP_OK && status == 200) {
        err = parse_offer(response, offer);
        if (err == ESP_OK && next_check_in_s != NULL && offer->next_check_in_s > 0) {
            *next_check_in_s = offer->next_check_in_s;
        }
    } else if (err == ESP_OK && status == 204) {
        err = ESP_ERR_NOT_FOUND;
    } else if (err == ESP_OK) {
        ESP_LOGE(TAG, "check-in refused: HTTP %d %s", status, response);
        err = ESP_FAIL;
    }
    free(response);
    return err;
}

esp_err_t otaforge_api_report(const otaforge_client_config_t *config,
                              const otaforge_event_t *event)
{
    cJSON *body = cJSON_CreateObject();
    if (body == NULL) {
        return ESP_ERR_NO_MEM;
    }
    cJSON_AddStringToObject(body, "event_id", event->id);
    if (event->deployment_id > 0) {
        cJSON_AddNumberToObject(body, "deployment_id", event->deployment_id);
    }
    cJSON_AddStringToObject(body, "state", event->state);
    add_optional_string(body, "reason", event->reason);
    if (event->bytes >= 0) {
        cJSON_AddNumberToObject(body, "bytes", event->bytes);
    }
    char *text = cJSON_PrintUnformatted(body);
    cJSON_Delete(body);
    if (text == NULL) {
        return ESP_ERR_NO_MEM;
    }
    char response[512];
    int status = 0;
    esp_err_t err = post_json(config, "events", text, &status, response, sizeof(response));
    cJSON_free(text);
    if (err != ESP_OK) {
        return err;
    }
    if (status == 200 || status == 201) {
        ESP_LOGI(TAG, "reported %s (event %s)", event->state, event->id);
        return ESP_OK;
    }
    if (status == 409) {  /* the deployment was aborted on the server: final, do not retry */
        ESP_LOGW(TAG, "report %s refused (deployment aborted): %s", event->state, response);
        return ESP_ERR_INVALID_STATE;
    }
    ESP_LOGE(TAG, "report %s refused: HTTP %d %s", event->state, status, response);
    return ESP_FAIL;
}
