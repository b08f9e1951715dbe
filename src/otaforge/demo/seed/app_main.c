#include "esp_ota_ops.h"
void app_main(void)
{
const esp_partition_t *running = esp_ota_get_running_partition();
esp_ota_img_states_t state;
if (esp_ota_get_state_partition(running, &state) == ESP_OK
&& state == ESP_OTA_IMG_PENDING_VERIFY) {
// New OTA firmware -- run self-diagnostics
if (run_self_test()) {
esp_ota_mark_app_valid_cancel_rollback();
ESP_LOGI(TAG, "OTA firmware validated");
} else {
ESP_LOGE(TAG, "Self-test failed, rolling back!");
esp_ota_mark_app_invalid_rollback_and_reboot();
}
}
// ... normal app startup
}
