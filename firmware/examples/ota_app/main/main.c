/*
 * ota_app: an ESP-IDF application that keeps itself up to date from an otaforge server.
 *
 * At boot it validates a new image (self-test under the task watchdog, then confirm or roll
 * back), then checks in with the server at the interval the server asks for and installs what
 * it is offered: downloaded into the passive OTA slot, resumable across resets, every state
 * reported to the server.
 */
#include "esp_app_desc.h"
#include "esp_event.h"
#include "esp_log.h"
#include "esp_netif.h"
#include "nvs_flash.h"
#include "otaforge_client.h"
#include "protocol_examples_common.h"
#include "self_test.h"

static const char *TAG = "ota_app";

/* main/server_cert.pem: the CA of your otaforge server (EMBED_TXTFILES, NUL-terminated) */
extern const uint8_t server_cert_pem_start[] asm("_binary_server_cert_pem_start");
extern const uint8_t server_cert_pem_end[] asm("_binary_server_cert_pem_end");

static void on_progress(int written, int total, void *ctx)
{
    (void)ctx;
    if (total > 0) {
        ESP_LOGI(TAG, "OTA progress: %d/%d bytes (%d%%)", written, total,
                 (int)((written * 100LL) / total));
    }
}

static esp_err_t init_nvs(void)
{
    esp_err_t err = nvs_flash_init();
    if (err == ESP_ERR_NVS_NO_FREE_PAGES || err == ESP_ERR_NVS_NEW_VERSION_FOUND) {
        ESP_ERROR_CHECK(nvs_flash_erase());
        err = nvs_flash_init();
    }
    return err;
}

void app_main(void)
{
    ESP_LOGI(TAG, "ota_app %s", esp_app_get_description()->version);
    ESP_ERROR_CHECK(init_nvs());
    ESP_ERROR_CHECK(esp_netif_init());
    ESP_ERROR_CHECK(esp_event_loop_create_default());
    ESP_ERROR_CHECK(example_connect());

    otaforge_client_config_t config = OTAFORGE_CLIENT_CONFIG_DEFAULT();
    config.cert_pem = (const char *)server_cert_pem_start;
    config.self_test = ota_app_self_test;
    config.progress = on_progress;
    otaforge_client_run(&config);
}
