#include "esp_https_ota.h"
#include "esp_log.h"
static const char *TAG = "ota";
// Embed server certificate (convert PEM to C array, or use menuconfig)
extern const uint8_t server_cert_pem_start[] asm("_binary_server_cert_pem_start");
extern const uint8_t server_cert_pem_end[] asm("_binary_server_cert_pem_end");
esp_err_t start_ota(const char *url)
{
esp_http_client_config_t http_config = {
.url = url,
.cert_pem = (const char *)server_cert_pem_start,
.timeout_ms = 10000,
.keep_alive_enable = true,
};
esp_https_ota_config_t ota_config = {
.http_config = &http_config,
};
esp_err_t ret = esp_https_ota(&ota_config); // Blocks until done
if (ret == ESP_OK) {
ESP_LOGI(TAG, "OTA succeeded, rebooting...");
esp_restart();
} else {
ESP_LOGE(TAG, "OTA failed: %s", esp_err_to_name(ret));
}
return ret;
}
esp_err_t start_ota_with_progress(const char *url)
{
esp_http_client_config_t http_config = {
.url = url,
.cert_pem = (const char *)server_cert_pem_start,
.timeout_ms = 10000,
};
esp_https_ota_config_t ota_config = {
.http_config = &http_config,
};
esp_https_ota_handle_t handle = NULL;
esp_err_t err = esp_https_ota_begin(&ota_config, &handle);
if (err != ESP_OK) return err;
while (1) {
err = esp_https_ota_perform(handle);
if (err != ESP_ERR_HTTPS_OTA_IN_PROGRESS) break;
int total = esp_https_ota_get_image_size(handle);
int read = esp_https_ota_get_image_len_read(handle);
ESP_LOGI(TAG, "OTA progress: %d/%d bytes (%d%%)",
read, total, (read * 100) / total);
}
if (err != ESP_OK) {
esp_https_ota_abort(handle);
return err;
}
err = esp_https_ota_finish(handle);
if (err == ESP_OK) {
ESP_LOGI(TAG, "OTA complete, rebooting...");
esp_restart();
}
return err;
}
