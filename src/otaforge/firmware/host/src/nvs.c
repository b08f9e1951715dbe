/*
 * otaforge host layer: NVS, stored by the emulator in the device's nvs partition (so it
 * survives reboots and power cuts like the real thing). Handles live here; every read and
 * write goes to the emulator.
 */
#include <stdio.h>
#include <string.h>

#include "nvs.h"
#include "nvs_flash.h"
#include "otaforge_rpc.h"

#define MAX_HANDLES 32

typedef struct {
    bool used;
    nvs_open_mode_t mode;
    char part[NVS_PART_NAME_MAX_SIZE + 1];
    char ns[NVS_NS_NAME_MAX_SIZE];
} handle_slot_t;

static handle_slot_t s_handles[MAX_HANDLES];

static esp_err_t call_part(fw_op_t op, const char *part)
{
    fw_msg_t msg;
    fw_reply_t reply;
    fw_msg_begin(&msg, op);
    fw_put_str(&msg, part);
    esp_err_t err = fw_call(&msg, &reply);
    fw_reply_free(&reply);
    return err;
}

esp_err_t nvs_flash_init_partition(const char *partition_label)
{
    return call_part(FW_OP_NVS_INIT, partition_label);
}

esp_err_t nvs_flash_init(void)
{
    return nvs_flash_init_partition(NVS_DEFAULT_PART_NAME);
}

esp_err_t nvs_flash_deinit_partition(const char *partition_label)
{
    (void)partition_label;
    return ESP_OK;
}

esp_err_t nvs_flash_deinit(void)
{
    return ESP_OK;
}

esp_err_t nvs_flash_erase_partition(const char *part_name)
{
    return call_part(FW_OP_NVS_ERASE_PARTITION, part_name);
}

esp_err_t nvs_flash_erase(void)
{
    return nvs_flash_erase_partition(NVS_DEFAULT_PART_NAME);
}

esp_err_t nvs_open_from_partition(const char *part_name, const char *namespace_name,
                                  nvs_open_mode_t open_mode, nvs_handle_t *out_handle)
{
    if (part_name == NULL || namespace_name == NULL || out_handle == NULL) {
        return ESP_ERR_INVALID_ARG;
    }
    if (strlen(namespace_name) >= NVS_NS_NAME_MAX_SIZE) {
        return ESP_ERR_NVS_INVALID_NAME;
    }
    fw_msg_t msg;
    fw_reply_t reply;
    fw_msg_begin(&msg, FW_OP_NVS_OPEN);
    fw_put_str(&msg, part_name);
    fw_put_str(&msg, namespace_name);
    fw_put_int(&msg, open_mode);
    esp_err_t err = fw_call(&msg, &reply);
    fw_reply_free(&reply);
    if (err != ESP_OK) {
        return err;
    }
    for (nvs_handle_t i = 0; i < MAX_HANDLES; i++) {
        if (!s_handles[i].used) {
            s_handles[i].used = true;
            s_handles[i].mode = open_mode;
            snprintf(s_handles[i].part, sizeof(s_handles[i].part), "%s", part_name);
            snprintf(s_handles[i].ns, sizeof(s_handles[i].ns), "%s", namespace_name);
            *out_handle = i + 1;
            return ESP_OK;
        }
    }
    return ESP_ERR_NVS_NOT_ENOUGH_SPACE;
}

esp_err_t nvs_open(const char *namespace_name, nvs_open_mode_t open_mode,
                   nvs_handle_t *out_handle)
{
    return nvs_open_from_partition(NVS_DEFAULT_PART_NAME, namespace_name, open_mode, out_handle);
}

static handle_slot_t *slot_of(nvs_handle_t handle)
{
    if (handle == 0 || handle > MAX_HANDLES || !s_handles[handle - 1].used) {
        return NULL;
    }
    return &s_handles[handle - 1];
}

static esp_err_t set_value(nvs_handle_t handle, const char *key, nvs_type_t type,
                           const void *data, size_t len)
{
    handle_slot_t *slot = slot_of(handle);
    if (slot == NULL) {
        return ESP_ERR_NVS_INVALID_HANDLE;
    }
    if (slot->mode == NVS_READONLY) {
        return ESP_ERR_NVS_READ_ONLY;
    }
    if (key == NULL) {
        return ESP_ERR_INVALID_ARG;
    }
    fw_msg_t msg;
    fw_reply_t reply;
    fw_msg_begin(&msg, FW_OP_NVS_SET);
    fw_put_str(&msg, slot->part);
    fw_put_str(&msg, slot->ns);
    fw_put_str(&msg, key);
    fw_put_int(&msg, type);
    fw_put_bytes(&msg, data, len);
    esp_err_t err = fw_call(&msg, &reply);
    fw_reply_free(&reply);
    return err;
}

/* get a value of `type`; *len in: capacity of out (may be NULL to ask), out: stored size */
static esp_err_t get_value(nvs_handle_t handle, const char *key, nvs_type_t type, void *out,
                           size_t *len)
{
    handle_slot_t *slot = slot_of(handle);
    if (slot == NULL) {
        return ESP_ERR_NVS_INVALID_HANDLE;
    }
    if (key == NULL) {
        return ESP_ERR_INVALID_ARG;
    }
    fw_msg_t msg;
    fw_reply_t reply;
    fw_msg_begin(&msg, FW_OP_NVS_GET);
    fw_put_str(&msg, slot->part);
    fw_put_str(&msg, slot->ns);
    fw_put_str(&msg, key);
    fw_put_int(&msg, type);
    esp_err_t err = fw_call(&msg, &reply);
    size_t got = 0;
    const uint8_t *data = fw_get_bytes(&reply, &got);
    if (err == ESP_OK) {
        if (out == NULL) {
            *len = got;
        } else if (*len < got) {
            err = ESP_ERR_NVS_INVALID_LENGTH;
        } else {
            memcpy(out, data, got);
            *len = got;
        }
    }
    fw_reply_free(&reply);
    return err;
}

#define NVS_INT_ACCESSORS(suffix, ctype, nvstype)                                        \
    esp_err_t nvs_set_##suffix(nvs_handle_t handle, const char *key, ctype value)        \
    {                                                                                    \
        return set_value(handle, key, nvstype, &value, sizeof(value));                   \
    }                                                                                    \
    esp_err_t nvs_get_##suffix(nvs_handle_t handle, const char *key, ctype *out_value)   \
    {                                                                                    \
        if (out_value == NULL) {                                                         \
            return ESP_ERR_INVALID_ARG;                                                  \
        }                                                                                \
        ctype value;                                                                     \
        size_t len = sizeof(value);                                                      \
        esp_err_t err = get_value(handle, key, nvstype, &value, &len);                   \
        if (err == ESP_OK && len == sizeof(value)) {                                     \
            *out_value = value;                                                          \
        }                                                                                \
        return err;                                                                      \
    }

NVS_INT_ACCESSORS(i8, int8_t, NVS_TYPE_I8)
NVS_INT_ACCESSORS(u8, uint8_t, NVS_TYPE_U8)
NVS_INT_ACCESSORS(i16, int16_t, NVS_TYPE_I16)
NVS_INT_ACCESSORS(u16, uint16_t, NVS_TYPE_U16)
NVS_INT_ACCESSORS(i32, int32_t, NVS_TYPE_I32)
NVS_INT_ACCESSORS(u32, uint32_t, NVS_TYPE_U32)
NVS_INT_ACCESSORS(i64, int64_t, NVS_TYPE_I64)
NVS_INT_ACCESSORS(u64, uint64_t, NVS_TYPE_U64)

esp_err_t nvs_set_str(nvs_handle_t handle, const char *key, const char *value)
{
    if (value == NULL) {
        return ESP_ERR_INVALID_ARG;
    }
    return set_value(handle, key, NVS_TYPE_STR, value, strlen(value) + 1);
}

esp_err_t nvs_set_blob(nvs_handle_t handle, const char *key, const void *value, size_t length)
{
    if (value == NULL && length > 0) {
        return ESP_ERR_INVALID_ARG;
    }
    return set_value(handle, key, NVS_TYPE_BLOB, value, length);
}

esp_err_t nvs_get_str(nvs_handle_t handle, const char *key, char *out_value, size_t *length)
{
    if (length == NULL) {
        return ESP_ERR_INVALID_ARG;
    }
    return get_value(handle, key, NVS_TYPE_STR, out_value, length);
}

esp_err_t nvs_get_blob(nvs_handle_t handle, const char *key, void *out_value, size_t *length)
{
    if (length == NULL) {
        return ESP_ERR_INVALID_ARG;
    }
    return get_value(handle, key, NVS_TYPE_BLOB, out_value, length);
}

esp_err_t nvs_find_key(nvs_handle_t handle, const char *key, nvs_type_t *out_type)
{
    size_t len = 0;
    handle_slot_t *slot = slot_of(handle);
    if (slot == NULL) {
        return ESP_ERR_NVS_INVALID_HANDLE;
    }
    fw_msg_t msg;
    fw_reply_t reply;
    fw_msg_begin(&msg, FW_OP_NVS_GET);
    fw_put_str(&msg, slot->part);
    fw_put_str(&msg, slot->ns);
    fw_put_str(&msg, key);
    fw_put_int(&msg, NVS_TYPE_ANY);
    esp_err_t err = fw_call(&msg, &reply);
    (void)fw_get_bytes(&reply, &len);
    int64_t type = fw_get_int(&reply);
    fw_reply_free(&reply);
    if (err == ESP_OK && out_type != NULL) {
        *out_type = (nvs_type_t)type;
    }
    return err;
}

esp_err_t nvs_erase_key(nvs_handle_t handle, const char *key)
{
    handle_slot_t *slot = slot_of(handle);
    if (slot == NULL) {
        return ESP_ERR_NVS_INVALID_HANDLE;
    }
    if (slot->mode == NVS_READONLY) {
        return ESP_ERR_NVS_READ_ONLY;
    }
    fw_msg_t msg;
    fw_reply_t reply;
    fw_msg_begin(&msg, FW_OP_NVS_ERASE_KEY);
    fw_put_str(&msg, slot->part);
    fw_put_str(&msg, slot->ns);
    fw_put_str(&msg, key);
    esp_err_t err = fw_call(&msg, &reply);
    fw_reply_free(&reply);
    return err;
}

esp_err_t nvs_erase_all(nvs_handle_t handle)
{
    handle_slot_t *slot = slot_of(handle);
    if (slot == NULL) {
        return ESP_ERR_NVS_INVALID_HANDLE;
    }
    if (slot->mode == NVS_READONLY) {
        return ESP_ERR_NVS_READ_ONLY;
    }
    fw_msg_t msg;
    fw_reply_t reply;
    fw_msg_begin(&msg, FW_OP_NVS_ERASE_NAMESPACE);
    fw_put_str(&msg, slot->part);
    fw_put_str(&msg, slot->ns);
    esp_err_t err = fw_call(&msg, &reply);
    fw_reply_free(&reply);
    return err;
}

esp_err_t nvs_commit(nvs_handle_t handle)
{
    /* every set is already on flash, as in ESP-IDF's NVS */
    return slot_of(handle) != NULL ? ESP_OK : ESP_ERR_NVS_INVALID_HANDLE;
}

void nvs_close(nvs_handle_t handle)
{
    handle_slot_t *slot = slot_of(handle);
    if (slot != NULL) {
        memset(slot, 0, sizeof(*slot));
    }
}
