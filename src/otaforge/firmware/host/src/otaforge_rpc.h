/*
 * otaforge host layer internals: the framed pipe to the emulator (the Python parent).
 *
 * Every frame is a little-endian u32 payload length, then the payload. A request payload is a
 * u16 operation then fields; a reply payload is an i32 esp_err_t, an i64 virtual time (us since
 * boot), then fields. A field is 'i' + i64, or 'b' + u32 length + bytes. The layout is the one
 * otaforge/formats/fw_frame.py defines; the operation numbers below must equal its FwOp.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "esp_err.h"

typedef enum {
    FW_OP_HELLO = 1,
    FW_OP_EXIT = 2,
    FW_OP_RESTART = 3,
    FW_OP_PANIC = 4,
    FW_OP_DELAY = 5,
    FW_OP_TIME = 6,
    FW_OP_FLASH_READ = 10,
    FW_OP_FLASH_WRITE = 11,
    FW_OP_FLASH_ERASE = 12,
    FW_OP_OTA_BEGIN = 20,
    FW_OP_OTA_RESUME = 21,
    FW_OP_OTA_WRITE = 22,
    FW_OP_OTA_WRITE_OFFSET = 23,
    FW_OP_OTA_END = 24,
    FW_OP_OTA_ABORT = 25,
    FW_OP_OTA_SET_BOOT = 26,
    FW_OP_OTA_GET_BOOT = 27,
    FW_OP_OTA_NEXT_UPDATE = 28,
    FW_OP_OTA_GET_STATE = 29,
    FW_OP_OTA_GET_DESC = 30,
    FW_OP_OTA_MARK_VALID = 31,
    FW_OP_OTA_MARK_INVALID = 32,
    FW_OP_OTA_MARK_INVALID_REBOOT = 33,
    FW_OP_OTA_ROLLBACK_POSSIBLE = 34,
    FW_OP_OTA_LAST_INVALID = 35,
    FW_OP_OTA_ERASE_LAST_BOOT = 36,
    FW_OP_OTA_INVALIDATE_INACTIVE = 37,
    FW_OP_OTA_APP_COUNT = 38,
    FW_OP_OTA_REVOKE_KEY = 39,
    FW_OP_EFUSE_SECURE_VERSION = 40,
    FW_OP_EFUSE_CHECK_SECURE_VERSION = 41,
    FW_OP_EFUSE_UPDATE_SECURE_VERSION = 42,
    FW_OP_NVS_INIT = 50,
    FW_OP_NVS_ERASE_PARTITION = 51,
    FW_OP_NVS_SET = 52,
    FW_OP_NVS_GET = 53,
    FW_OP_NVS_ERASE_KEY = 54,
    FW_OP_NVS_ERASE_NAMESPACE = 55,
    FW_OP_NVS_OPEN = 56,
    FW_OP_HTTP_REQUEST = 60,
    FW_OP_HTTP_READ = 61,
    FW_OP_HTTP_CLOSE = 62,
    FW_OP_WDT_INIT = 70,
    FW_OP_WDT_RECONFIGURE = 71,
    FW_OP_WDT_DEINIT = 72,
    FW_OP_WDT_ADD = 73,
    FW_OP_WDT_RESET = 74,
    FW_OP_WDT_DELETE = 75,
    FW_OP_WDT_STATUS = 76,
} fw_op_t;

typedef struct {
    uint8_t *buf;
    size_t len;
    size_t cap;
} fw_msg_t;

typedef struct {
    uint8_t *buf;
    size_t len;
    size_t pos;
    esp_err_t err;
} fw_reply_t;

void fw_msg_begin(fw_msg_t *msg, fw_op_t op);
void fw_put_int(fw_msg_t *msg, int64_t value);
void fw_put_bytes(fw_msg_t *msg, const void *data, size_t len);
void fw_put_str(fw_msg_t *msg, const char *text);

/** Send the request, wait for the reply; returns the reply's esp_err_t (msg is freed). */
esp_err_t fw_call(fw_msg_t *msg, fw_reply_t *reply);
/** Send a request that gets no reply (msg is freed). */
void fw_send(fw_msg_t *msg);
int64_t fw_get_int(fw_reply_t *reply);
/** The next bytes field (not NUL-terminated; valid until fw_reply_free). */
const uint8_t *fw_get_bytes(fw_reply_t *reply, size_t *len);
/** Copy the next bytes field into out as a NUL-terminated string (truncated to size). */
void fw_get_str(fw_reply_t *reply, char *out, size_t size);
void fw_reply_free(fw_reply_t *reply);

/** Shorthand: a request with up to two ints, no result fields. */
esp_err_t fw_call_ints(fw_op_t op, int nargs, int64_t a, int64_t b);

/** Virtual microseconds since boot, as of the last reply. */
int64_t fw_last_time_us(void);

/** Set up the pipe (from OTAFORGE_FW_FDS); false when the program was not started by otaforge. */
int fw_rpc_init(void);

/** The emulated device's partitions, loaded at HELLO. */
const void *fw_partition_table(size_t *count);
