/*
 * The self-test of a new image. Replace the checks with what your device must do after an
 * update (sensors respond, peripherals work, the cloud connection comes up). It runs under the
 * task watchdog: if it hangs, the watchdog resets the chip and the bootloader rolls back.
 */
#include "esp_heap_caps.h"
#include "esp_log.h"
#include "freertos/FreeRTOS.h"
#include "freertos/task.h"
#include "nvs.h"
#include "self_test.h"
#include "sdkconfig.h"

static const char *TAG = "self_test";

#define MIN_FREE_HEAP (16 * 1024)

static esp_err_t check_nvs(void)
{
    nvs_handle_t handle;
    esp_err_t err = nvs_open("self_test", NVS_READWRITE, &handle);
    if (err != ESP_OK) {
        return err;
    }
    uint32_t runs = 0;
    nvs_get_u32(handle, "runs", &runs);
    err = nvs_set_u32(handle, "runs", runs + 1);
    if (err == ESP_OK) {
        err = nvs_commit(handle);
    }
    nvs_close(handle);
    return err;
}

esp_err_t ota_app_self_test(void *ctx)
{
    (void)ctx;
    size_t free_heap = heap_caps_get_free_size(MALLOC_CAP_DEFAULT);
    if (free_heap < MIN_FREE_HEAP) {
        ESP_LOGE(TAG, "only %u bytes of heap free", (unsigned)free_heap);
        return ESP_ERR_NO_MEM;
    }
    esp_err_t err = check_nvs();
    if (err != ESP_OK) {
        ESP_LOGE(TAG, "NVS read/write failed: %s", esp_err_to_name(err));
        return err;
    }
#if CONFIG_OTA_APP_SELF_TEST_FAIL
    ESP_LOGE(TAG, "self-test set to fail (CONFIG_OTA_APP_SELF_TEST_FAIL)");
    return ESP_FAIL;
#elif CONFIG_OTA_APP_SELF_TEST_HANG
    ESP_LOGW(TAG, "self-test set to hang (CONFIG_OTA_APP_SELF_TEST_HANG)");
    while (1) {
        vTaskDelay(pdMS_TO_TICKS(1000));
    }
#endif
    ESP_LOGI(TAG, "self-test passed (%u bytes of heap free)", (unsigned)free_heap);
    return ESP_OK;
}
