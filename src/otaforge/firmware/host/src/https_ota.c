/*
 * otaforge host layer: esp_https_ota over esp_http_client and esp_ota_*, following ESP-IDF's
 * component: a Range request when resuming, HEAD then ranged GETs for partial download, the
 * image header checked (magic, chip id) before esp_ota_begin erases anything, one buffer per
 * esp_https_ota_perform call, esp_ota_end + esp_ota_set_boot_partition in finish.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "esp_app_format.h"
#include "esp_https_ota.h"
#include "esp_log.h"
#include "esp_ota_ops.h"
#include "esp_partition.h"

static const char *TAG = "esp_https_ota";

ESP_EVENT_DEFINE_BASE(ESP_HTTPS_OTA_EVENT);

#define IMAGE_HEADER_SIZE (sizeof(esp_image_header_t) + sizeof(esp_image_segment_header_t) + \
                           sizeof(esp_app_desc_t) + 1)
#define DEFAULT_OTA_BUF_SIZE IMAGE_HEADER_SIZE
#define DEFAULT_REQUEST_SIZE (64 * 1024)

typedef enum {
    OTA_INIT,
    OTA_BEGIN,
    OTA_RESUME,
    OTA_IN_PROGRESS,
    OTA_SUCCESS,
} ota_state_t;

typedef struct {
    esp_http_client_handle_t client;
    esp_ota_handle_t update_handle;
    const esp_partition_t *partition;
    char *buf;
    int buf_size;
    int image_length;
    int binary_file_len;
    int status;
    ota_state_t state;
    bool partial;
    int max_request_size;
    bool resumption;
    bool bulk_erase;
} ota_t;

static esp_err_t handle_status(ota_t *h, int status)
{
    if (status == HttpStatus_NotModified) {
        ESP_LOGI(TAG, "OTA image not modified since last request (status code: %d)", status);
        return ESP_ERR_HTTP_NOT_MODIFIED;
    }
    if (status == HttpStatus_RangeNotSatisfiable) {
        ESP_LOGI(TAG, "Requested range is incorrect (status code: %d)", status);
        return ESP_ERR_HTTP_RANGE_NOT_SATISFIABLE;
    }
    if (status == HttpStatus_NotFound || status == HttpStatus_Forbidden) {
        ESP_LOGE(TAG, "File not found(%d)", status);
        return ESP_FAIL;
    }
    if (status >= HttpStatus_BadRequest && status < HttpStatus_InternalError) {
        ESP_LOGE(TAG, "Client error (%d)", status);
        return ESP_FAIL;
    }
    if (status >= HttpStatus_InternalError) {
        ESP_LOGE(TAG, "Server error (%d)", status);
        return ESP_FAIL;
    }
    if (h->resumption && !h->partial && status != 206) {
        ESP_LOGW(TAG, "Server ignored the requested Range header");
        return ESP_ERR_HTTP_RANGE_NOT_SATISFIABLE;
    }
    return ESP_OK;
}

static esp_err_t http_connect(ota_t *h)
{
    esp_err_t err = esp_http_client_open(h->client, 0);
    if (err != ESP_OK) {
        ESP_LOGE(TAG, "Failed to open HTTP connection: %s", esp_err_to_name(err));
        return err;
    }
    if (esp_http_client_fetch_headers(h->client) < 0) {
        return ESP_ERR_HTTP_CONNECT;
    }
    h->status = esp_http_client_get_status_code(h->client);
    return handle_status(h, h->status);
}

static void set_range(ota_t *h, int start, int end)
{
    char value[48];
    if (end >= 0) {
        snprintf(value, sizeof(value), "bytes=%d-%d", start, end);
    } else {
        snprintf(value, sizeof(value), "bytes=%d-", start);
    }
    esp_http_client_set_header(h->client, "Range", value);
}

static esp_err_t partial_head(ota_t *h)
{
    esp_http_client_set_method(h->client, HTTP_METHOD_HEAD);
    esp_err_t err = esp_http_client_perform(h->client);
    if (err != ESP_OK) {
        ESP_LOGE(TAG, "ESP HTTP client perform failed: %d", err);
        return err;
    }
    int status = esp_http_client_get_status_code(h->client);
    if (status == HttpStatus_NotModified) {
        return ESP_ERR_HTTP_NOT_MODIFIED;
    }
    if (status != HttpStatus_Ok) {
        return handle_status(h, status) != ESP_OK ? ESP_FAIL : ESP_FAIL;
    }
    h->image_length = (int)esp_http_client_get_content_length(h->client);
    if (h->image_length <= 0) {
        ESP_LOGE(TAG, "Failed to get image length from http response");
        return ESP_FAIL;
    }
    int start = h->binary_file_len;
    if (h->image_length > start + h->max_request_size) {
        set_range(h, start, start + h->max_request_size - 1);
    } else if (start > 0) {
        set_range(h, start, -1);
    }
    esp_http_client_set_method(h->client, HTTP_METHOD_GET);
    return ESP_OK;
}

static void cleanup(ota_t *h)
{
    if (h->client != NULL) {
        esp_http_client_close(h->client);
        esp_http_client_cleanup(h->client);
    }
    free(h->buf);
    free(h);
}

static bool verification_configured(const esp_http_client_config_t *config)
{
    if (config->cert_pem != NULL || config->crt_bundle_attach != NULL) {
        return true;
    }
#if CONFIG_ESP_HTTPS_OTA_ALLOW_HTTP
    return true;
#else
    return false;
#endif
}

static esp_err_t connect_first(ota_t *h)
{
    esp_err_t err = ESP_OK;
    if (h->resumption && !h->partial) {
        set_range(h, h->binary_file_len, -1);
    }
    if (h->partial) {
        err = partial_head(h);
    }
    if (err == ESP_OK) {
        err = http_connect(h);
    }
    if (err == ESP_ERR_HTTP_RANGE_NOT_SATISFIABLE && h->resumption) {
        ESP_LOGE(TAG, "OTA resumption failed with err: %d.", err);
        ESP_LOGI(TAG, "Falling back to OTA without resumption and restarting download from beginning");
        h->resumption = false;
        h->binary_file_len = 0;
        esp_http_client_delete_header(h->client, "Range");
        if (h->partial && h->image_length > h->max_request_size) {
            set_range(h, 0, h->max_request_size - 1);
        }
        err = http_connect(h);
    }
    return err;
}

esp_err_t esp_https_ota_begin(const esp_https_ota_config_t *ota_config,
                              esp_https_ota_handle_t *handle)
{
    if (handle == NULL || ota_config == NULL || ota_config->http_config == NULL) {
        ESP_LOGE(TAG, "esp_https_ota_begin: Invalid argument");
        if (handle != NULL) {
            *handle = NULL;
        }
        return ESP_ERR_INVALID_ARG;
    }
    *handle = NULL;
    if (!verification_configured(ota_config->http_config)) {
        ESP_LOGE(TAG, "No option for server verification is enabled in esp_http_client config.");
        return ESP_ERR_INVALID_ARG;
    }
    ota_t *h = calloc(1, sizeof(*h));
    if (h == NULL) {
        return ESP_ERR_NO_MEM;
    }
    h->partial = ota_config->partial_http_download;
    h->max_request_size = ota_config->max_http_request_size > 0 ?
                          ota_config->max_http_request_size : DEFAULT_REQUEST_SIZE;
    h->bulk_erase = ota_config->bulk_flash_erase;
    h->resumption = ota_config->ota_resumption;
    h->partition = ota_config->partition.staging != NULL ? ota_config->partition.staging
                                                         : esp_ota_get_next_update_partition(NULL);
    if (h->partition == NULL) {
        ESP_LOGE(TAG, "Given staging partition or another suitable Passive OTA partition could not be found");
        free(h);
        return ESP_FAIL;
    }
    if (h->resumption && ota_config->ota_image_bytes_written >= DEFAULT_OTA_BUF_SIZE) {
        h->binary_file_len = (int)ota_config->ota_image_bytes_written;
    }
    h->client = esp_http_client_init(ota_config->http_config);
    if (h->client == NULL) {
        ESP_LOGE(TAG, "Failed to initialise HTTP connection");
        free(h);
        return ESP_FAIL;
    }
    esp_err_t err = ESP_OK;
    if (ota_config->http_client_init_cb != NULL) {
        err = ota_config->http_client_init_cb(h->client);
        if (err != ESP_OK) {
            ESP_LOGE(TAG, "http_client_init_cb returned 0x%x", err);
            cleanup(h);
            return err;
        }
    }
    err = connect_first(h);
    if (err != ESP_OK) {
        if (err != ESP_ERR_HTTP_NOT_MODIFIED) {
            ESP_LOGE(TAG, "Failed to establish HTTP connection");
        }
        cleanup(h);
        return err;
    }
    if (!h->partial) {
        int64_t length = esp_http_client_get_content_length(h->client);
        h->image_length = length >= 0 ? (int)length + h->binary_file_len : -1;
        int64_t total = esp_http_client_get_content_range(h->client);
        if (total > 0) {
            h->image_length = (int)total;
        }
    }
    int alloc = ota_config->http_config->buffer_size > (int)DEFAULT_OTA_BUF_SIZE ?
                ota_config->http_config->buffer_size : DEFAULT_HTTP_BUF_SIZE;
    h->buf_size = alloc > (int)DEFAULT_OTA_BUF_SIZE ? alloc : (int)DEFAULT_OTA_BUF_SIZE;
    h->buf = malloc((size_t)h->buf_size);
    if (h->buf == NULL) {
        cleanup(h);
        return ESP_ERR_NO_MEM;
    }
    ESP_LOGI(TAG, "Starting OTA...");
    ESP_LOGI(TAG, "Writing to <%s> partition at offset 0x%lx", h->partition->label,
             (unsigned long)h->partition->address);
    h->state = h->binary_file_len > 0 ? OTA_RESUME : OTA_BEGIN;
    *handle = h;
    return ESP_OK;
}

static esp_err_t read_header(ota_t *h)
{
    int need = (int)IMAGE_HEADER_SIZE;
    int got = 0;
    while (need > 0 && !esp_http_client_is_complete_data_received(h->client)) {
        int r = esp_http_client_read(h->client, h->buf + got, need);
        if (r <= 0) {
            break;
        }
        need -= r;
        got += r;
    }
    if (need > 0) {
        ESP_LOGE(TAG, "Complete headers were not received");
        return ESP_FAIL;
    }
    h->binary_file_len = got;
    return ESP_OK;
}

esp_err_t esp_https_ota_get_img_desc(esp_https_ota_handle_t https_ota_handle,
                                     esp_app_desc_t *new_app_info)
{
    ota_t *h = https_ota_handle;
    if (h == NULL || new_app_info == NULL) {
        ESP_LOGE(TAG, "esp_https_ota_get_img_desc: Invalid argument");
        return ESP_ERR_INVALID_ARG;
    }
    if (h->state == OTA_RESUME) {
        return esp_ota_get_partition_description(h->partition, new_app_info);
    }
    if (h->state != OTA_BEGIN) {
        ESP_LOGE(TAG, "esp_https_ota_get_img_desc: Invalid state");
        return ESP_ERR_INVALID_STATE;
    }
    if (h->binary_file_len == 0 && read_header(h) != ESP_OK) {
        return ESP_FAIL;
    }
    const size_t offset = sizeof(esp_image_header_t) + sizeof(esp_image_segment_header_t);
    memcpy(new_app_info, h->buf + offset, sizeof(esp_app_desc_t));
    if (new_app_info->magic_word != ESP_APP_DESC_MAGIC_WORD) {
        ESP_LOGE(TAG, "Incorrect app descriptor magic");
        return ESP_FAIL;
    }
    return ESP_OK;
}

static esp_err_t verify_header(const char *buf)
{
    esp_image_header_t header;
    memcpy(&header, buf, sizeof(header));
    if (header.magic != ESP_IMAGE_HEADER_MAGIC) {
        ESP_LOGE(TAG, "Incorrect image header magic 0x%02x", header.magic);
        return ESP_ERR_OTA_VALIDATE_FAILED;
    }
    if (header.chip_id != CONFIG_IDF_FIRMWARE_CHIP_ID) {
        ESP_LOGE(TAG, "Mismatch chip id, expected %d, found %d", CONFIG_IDF_FIRMWARE_CHIP_ID,
                 header.chip_id);
        return ESP_ERR_INVALID_VERSION;
    }
    return ESP_OK;
}

static esp_err_t ota_write(ota_t *h, const char *data, int len)
{
    esp_err_t err = esp_ota_write(h->update_handle, data, (size_t)len);
    if (err != ESP_OK) {
        ESP_LOGE(TAG, "Error: esp_ota_write failed! err=0x%x", err);
        return err;
    }
    h->binary_file_len += len;
    ESP_LOGD(TAG, "Written image length %d", h->binary_file_len);
    return ESP_ERR_HTTPS_OTA_IN_PROGRESS;
}

static esp_err_t next_range(ota_t *h)
{
    esp_http_client_close(h->client);
    int start = h->binary_file_len;
    if (h->image_length - start > h->max_request_size) {
        set_range(h, start, start + h->max_request_size - 1);
    } else {
        set_range(h, start, -1);
    }
    if (http_connect(h) != ESP_OK) {
        ESP_LOGE(TAG, "Failed to establish HTTP connection");
        return ESP_FAIL;
    }
    return ESP_ERR_HTTPS_OTA_IN_PROGRESS;
}

static esp_err_t perform_begin(ota_t *h)
{
    size_t erase = h->bulk_erase ? (h->image_length > 0 ? (size_t)h->image_length : OTA_SIZE_UNKNOWN)
                                 : OTA_WITH_SEQUENTIAL_WRITES;
    int header_len = h->binary_file_len;
    if (header_len == 0) {
        if (read_header(h) != ESP_OK) {
            return ESP_FAIL;
        }
        header_len = h->binary_file_len;
    }
    esp_err_t err = verify_header(h->buf);
    if (err != ESP_OK) {
        return err;
    }
    err = esp_ota_begin(h->partition, erase, &h->update_handle);
    if (err != ESP_OK) {
        ESP_LOGE(TAG, "esp_ota_begin failed (%s)", esp_err_to_name(err));
        return err;
    }
    h->state = OTA_IN_PROGRESS;
    h->binary_file_len = 0;
    return ota_write(h, h->buf, header_len);
}

esp_err_t esp_https_ota_perform(esp_https_ota_handle_t https_ota_handle)
{
    ota_t *h = https_ota_handle;
    if (h == NULL) {
        ESP_LOGE(TAG, "esp_https_ota_perform: Invalid argument");
        return ESP_ERR_INVALID_ARG;
    }
    if (h->state < OTA_BEGIN) {
        ESP_LOGE(TAG, "esp_https_ota_perform: Invalid state");
        return ESP_FAIL;
    }
    if (h->state == OTA_BEGIN) {
        return perform_begin(h);
    }
    if (h->state == OTA_RESUME) {
        size_t erase = h->bulk_erase ? OTA_SIZE_UNKNOWN : OTA_WITH_SEQUENTIAL_WRITES;
        esp_err_t err = esp_ota_resume(h->partition, erase, (size_t)h->binary_file_len,
                                       &h->update_handle);
        if (err != ESP_OK) {
            ESP_LOGE(TAG, "esp_ota_resume failed (%s)", esp_err_to_name(err));
            return err;
        }
        h->state = OTA_IN_PROGRESS;
    }
    if (h->state != OTA_IN_PROGRESS) {
        ESP_LOGE(TAG, "Invalid ESP HTTPS OTA State");
        return ESP_FAIL;
    }
    int r = esp_http_client_read(h->client, h->buf, h->buf_size);
    if (r > 0) {
        return ota_write(h, h->buf, r);
    }
    if (r < 0) {
        ESP_LOGE(TAG, "data read %d, errno %d", r, 0);
        return ESP_FAIL;
    }
    if (!esp_http_client_is_complete_data_received(h->client)) {
        ESP_LOGE(TAG, "Connection closed before complete data was received!");
        return ESP_FAIL;
    }
    if (h->partial && h->image_length > h->binary_file_len) {
        return next_range(h);
    }
    h->state = OTA_SUCCESS;
    return ESP_OK;
}

bool esp_https_ota_is_complete_data_received(esp_https_ota_handle_t https_ota_handle)
{
    ota_t *h = https_ota_handle;
    if (h == NULL) {
        return false;
    }
    if (h->partial) {
        return h->image_length == h->binary_file_len;
    }
    return esp_http_client_is_complete_data_received(h->client);
}

esp_err_t esp_https_ota_finish(esp_https_ota_handle_t https_ota_handle)
{
    ota_t *h = https_ota_handle;
    if (h == NULL) {
        return ESP_ERR_INVALID_ARG;
    }
    if (h->state < OTA_BEGIN) {
        return ESP_FAIL;
    }
    esp_err_t err = ESP_OK;
    if (h->state == OTA_SUCCESS || h->state == OTA_IN_PROGRESS) {
        err = esp_ota_end(h->update_handle);
        if (err == ESP_ERR_OTA_VALIDATE_FAILED) {
            ESP_LOGE(TAG, "Image validation failed, image is corrupted");
        }
    }
    if (err == ESP_OK && h->state == OTA_SUCCESS &&
            h->partition->subtype >= ESP_PARTITION_SUBTYPE_APP_OTA_0 &&
            h->partition->subtype < ESP_PARTITION_SUBTYPE_APP_OTA_MAX) {
        err = esp_ota_set_boot_partition(h->partition);
        if (err != ESP_OK) {
            ESP_LOGE(TAG, "esp_ota_set_boot_partition failed! err=0x%x", err);
        }
    }
    cleanup(h);
    return err;
}

esp_err_t esp_https_ota_abort(esp_https_ota_handle_t https_ota_handle)
{
    ota_t *h = https_ota_handle;
    if (h == NULL) {
        return ESP_ERR_INVALID_ARG;
    }
    if (h->state < OTA_BEGIN) {
        return ESP_FAIL;
    }
    esp_err_t err = ESP_OK;
    if (h->state == OTA_SUCCESS || h->state == OTA_IN_PROGRESS) {
        err = esp_ota_abort(h->update_handle);
    }
    cleanup(h);
    return err;
}

int esp_https_ota_get_image_len_read(esp_https_ota_handle_t https_ota_handle)
{
    ota_t *h = https_ota_handle;
    return h != NULL ? h->binary_file_len : -1;
}

int esp_https_ota_get_status_code(esp_https_ota_handle_t https_ota_handle)
{
    ota_t *h = https_ota_handle;
    return h != NULL ? h->status : -1;
}

int esp_https_ota_get_image_size(esp_https_ota_handle_t https_ota_handle)
{
    ota_t *h = https_ota_handle;
    return h != NULL ? h->image_length : -1;
}

esp_err_t esp_https_ota(const esp_https_ota_config_t *ota_config)
{
    if (ota_config == NULL || ota_config->http_config == NULL) {
        ESP_LOGE(TAG, "esp_https_ota: Invalid argument");
        return ESP_ERR_INVALID_ARG;
    }
    esp_https_ota_handle_t handle = NULL;
    esp_err_t err = esp_https_ota_begin(ota_config, &handle);
    if (handle == NULL) {
        return err != ESP_OK ? err : ESP_FAIL;
    }
    while (1) {
        err = esp_https_ota_perform(handle);
        if (err != ESP_ERR_HTTPS_OTA_IN_PROGRESS) {
            break;
        }
    }
    if (!esp_https_ota_is_complete_data_received(handle)) {
        ESP_LOGE(TAG, "Complete data was not received.");
    }
    if (err != ESP_OK) {
        esp_https_ota_abort(handle);
        return err;
    }
    return esp_https_ota_finish(handle);
}
