/*
 * otaforge host layer: esp_ota_* served by the emulated device's OTA implementation.
 */
#include <string.h>

#include "esp_ota_ops.h"
#include "esp_system.h"
#include "otaforge_host.h"
#include "otaforge_rpc.h"

static esp_err_t call_partition(fw_op_t op, const esp_partition_t *partition, int64_t *out)
{
    fw_msg_t msg;
    fw_reply_t reply;
    fw_msg_begin(&msg, op);
    fw_put_int(&msg, partition != NULL ? (int64_t)partition->address : -1);
    esp_err_t err = fw_call(&msg, &reply);
    if (out != NULL) {
        *out = fw_get_int(&reply);
    }
    fw_reply_free(&reply);
    return err;
}

static const esp_partition_t *partition_result(fw_op_t op, const esp_partition_t *arg)
{
    int64_t address = -1;
    if (call_partition(op, arg, &address) != ESP_OK) {
        return NULL;
    }
    return otaforge_host_partition_at(address);
}

esp_err_t esp_ota_begin(const esp_partition_t *partition, size_t image_size,
                        esp_ota_handle_t *out_handle)
{
    if (partition == NULL || out_handle == NULL) {
        return ESP_ERR_INVALID_ARG;
    }
    fw_msg_t msg;
    fw_reply_t reply;
    fw_msg_begin(&msg, FW_OP_OTA_BEGIN);
    fw_put_int(&msg, (int64_t)partition->address);
    fw_put_int(&msg, (int64_t)image_size);
    esp_err_t err = fw_call(&msg, &reply);
    if (err == ESP_OK) {
        *out_handle = (esp_ota_handle_t)fw_get_int(&reply);
    }
    fw_reply_free(&reply);
    return err;
}

esp_err_t esp_ota_resume(const esp_partition_t *partition, const size_t erase_size,
                         const size_t image_offset, esp_ota_handle_t *out_handle)
{
    if (partition == NULL || out_handle == NULL) {
        return ESP_ERR_INVALID_ARG;
    }
    fw_msg_t msg;
    fw_reply_t reply;
    fw_msg_begin(&msg, FW_OP_OTA_RESUME);
    fw_put_int(&msg, (int64_t)partition->address);
    fw_put_int(&msg, (int64_t)erase_size);
    fw_put_int(&msg, (int64_t)image_offset);
    esp_err_t err = fw_call(&msg, &reply);
    if (err == ESP_OK) {
        *out_handle = (esp_ota_handle_t)fw_get_int(&reply);
    }
    fw_reply_free(&reply);
    return err;
}

esp_err_t esp_ota_write(esp_ota_handle_t handle, const void *data, size_t size)
{
    if (data == NULL) {
        return ESP_ERR_INVALID_ARG;
    }
    fw_msg_t msg;
    fw_reply_t reply;
    fw_msg_begin(&msg, FW_OP_OTA_WRITE);
    fw_put_int(&msg, handle);
    fw_put_bytes(&msg, data, size);
    esp_err_t err = fw_call(&msg, &reply);
    fw_reply_free(&reply);
    return err;
}

esp_err_t esp_ota_write_with_offset(esp_ota_handle_t handle, const void *data, size_t size,
                                    uint32_t offset)
{
    if (data == NULL) {
        return ESP_ERR_INVALID_ARG;
    }
    fw_msg_t msg;
    fw_reply_t reply;
    fw_msg_begin(&msg, FW_OP_OTA_WRITE_OFFSET);
    fw_put_int(&msg, handle);
    fw_put_bytes(&msg, data, size);
    fw_put_int(&msg, offset);
    esp_err_t err = fw_call(&msg, &reply);
    fw_reply_free(&reply);
    return err;
}

esp_err_t esp_ota_end(esp_ota_handle_t handle)
{
    return fw_call_ints(FW_OP_OTA_END, 1, handle, 0);
}

esp_err_t esp_ota_abort(esp_ota_handle_t handle)
{
    return fw_call_ints(FW_OP_OTA_ABORT, 1, handle, 0);
}

esp_err_t esp_ota_set_boot_partition(const esp_partition_t *partition)
{
    return call_partition(FW_OP_OTA_SET_BOOT, partition, NULL);
}

const esp_partition_t *esp_ota_get_boot_partition(void)
{
    return partition_result(FW_OP_OTA_GET_BOOT, NULL);
}

const esp_partition_t *esp_ota_get_running_partition(void)
{
    return otaforge_host_running_partition();
}

const esp_partition_t *esp_ota_get_next_update_partition(const esp_partition_t *start_from)
{
    return partition_result(FW_OP_OTA_NEXT_UPDATE, start_from);
}

esp_err_t esp_ota_get_partition_description(const esp_partition_t *partition,
                                            esp_app_desc_t *app_desc)
{
    if (partition == NULL || app_desc == NULL) {
        return ESP_ERR_INVALID_ARG;
    }
    fw_msg_t msg;
    fw_reply_t reply;
    fw_msg_begin(&msg, FW_OP_OTA_GET_DESC);
    fw_put_int(&msg, (int64_t)partition->address);
    esp_err_t err = fw_call(&msg, &reply);
    size_t len = 0;
    const uint8_t *desc = fw_get_bytes(&reply, &len);
    if (err == ESP_OK && len == sizeof(*app_desc)) {
        memcpy(app_desc, desc, len);
    } else if (err == ESP_OK) {
        err = ESP_ERR_NOT_FOUND;
    }
    fw_reply_free(&reply);
    return err;
}

esp_err_t esp_ota_invalidate_inactive_ota_data_slot(void)
{
    return fw_call_ints(FW_OP_OTA_INVALIDATE_INACTIVE, 0, 0, 0);
}

uint8_t esp_ota_get_app_partition_count(void)
{
    int64_t count = 0;
    call_partition(FW_OP_OTA_APP_COUNT, NULL, &count);
    return (uint8_t)count;
}

esp_err_t esp_ota_mark_app_valid_cancel_rollback(void)
{
    return fw_call_ints(FW_OP_OTA_MARK_VALID, 0, 0, 0);
}

esp_err_t esp_ota_mark_app_invalid_rollback(void)
{
    return fw_call_ints(FW_OP_OTA_MARK_INVALID, 0, 0, 0);
}

esp_err_t esp_ota_mark_app_invalid_rollback_and_reboot(void)
{
    esp_err_t err = fw_call_ints(FW_OP_OTA_MARK_INVALID, 0, 0, 0);
    if (err == ESP_OK) {
        esp_restart();
    }
    return err;
}

const esp_partition_t *esp_ota_get_last_invalid_partition(void)
{
    return partition_result(FW_OP_OTA_LAST_INVALID, NULL);
}

esp_err_t esp_ota_get_state_partition(const esp_partition_t *partition,
                                      esp_ota_img_states_t *ota_state)
{
    if (partition == NULL || ota_state == NULL) {
        return ESP_ERR_INVALID_ARG;
    }
    int64_t state = 0;
    esp_err_t err = call_partition(FW_OP_OTA_GET_STATE, partition, &state);
    if (err == ESP_OK) {
        *ota_state = (esp_ota_img_states_t)(uint32_t)state;
    }
    return err;
}

esp_err_t esp_ota_erase_last_boot_app_partition(void)
{
    return fw_call_ints(FW_OP_OTA_ERASE_LAST_BOOT, 0, 0, 0);
}

bool esp_ota_check_rollback_is_possible(void)
{
    int64_t possible = 0;
    call_partition(FW_OP_OTA_ROLLBACK_POSSIBLE, NULL, &possible);
    return possible != 0;
}

esp_err_t esp_ota_revoke_secure_boot_public_key(esp_ota_secure_boot_public_key_index_t index)
{
    return fw_call_ints(FW_OP_OTA_REVOKE_KEY, 1, index, 0);
}
