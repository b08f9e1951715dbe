/*
 * otaforge host layer: esp_err_to_name and ESP_ERROR_CHECK's failure path.
 */
#include <stdio.h>
#include <stdlib.h>

#include "esp_efuse.h"
#include "esp_err.h"
#include "esp_flash_err.h"
#include "spi_flash_mmap.h"
#include "esp_http_client.h"
#include "esp_https_ota.h"
#include "esp_image_format.h"
#include "esp_ota_ops.h"
#include "nvs.h"

#define ERR_NAME(code) {code, #code}

typedef struct {
    esp_err_t code;
    const char *name;
} esp_err_msg_t;

static const esp_err_msg_t s_names[] = {
    ERR_NAME(ESP_FAIL),
    ERR_NAME(ESP_OK),
    ERR_NAME(ESP_ERR_NO_MEM),
    ERR_NAME(ESP_ERR_INVALID_ARG),
    ERR_NAME(ESP_ERR_INVALID_STATE),
    ERR_NAME(ESP_ERR_INVALID_SIZE),
    ERR_NAME(ESP_ERR_NOT_FOUND),
    ERR_NAME(ESP_ERR_NOT_SUPPORTED),
    ERR_NAME(ESP_ERR_TIMEOUT),
    ERR_NAME(ESP_ERR_INVALID_RESPONSE),
    ERR_NAME(ESP_ERR_INVALID_CRC),
    ERR_NAME(ESP_ERR_INVALID_VERSION),
    ERR_NAME(ESP_ERR_INVALID_MAC),
    ERR_NAME(ESP_ERR_NOT_FINISHED),
    ERR_NAME(ESP_ERR_NOT_ALLOWED),
    ERR_NAME(ESP_ERR_NVS_BASE),
    ERR_NAME(ESP_ERR_NVS_NOT_INITIALIZED),
    ERR_NAME(ESP_ERR_NVS_NOT_FOUND),
    ERR_NAME(ESP_ERR_NVS_TYPE_MISMATCH),
    ERR_NAME(ESP_ERR_NVS_READ_ONLY),
    ERR_NAME(ESP_ERR_NVS_NOT_ENOUGH_SPACE),
    ERR_NAME(ESP_ERR_NVS_INVALID_NAME),
    ERR_NAME(ESP_ERR_NVS_INVALID_HANDLE),
    ERR_NAME(ESP_ERR_NVS_REMOVE_FAILED),
    ERR_NAME(ESP_ERR_NVS_KEY_TOO_LONG),
    ERR_NAME(ESP_ERR_NVS_PAGE_FULL),
    ERR_NAME(ESP_ERR_NVS_INVALID_STATE),
    ERR_NAME(ESP_ERR_NVS_INVALID_LENGTH),
    ERR_NAME(ESP_ERR_NVS_NO_FREE_PAGES),
    ERR_NAME(ESP_ERR_NVS_VALUE_TOO_LONG),
    ERR_NAME(ESP_ERR_NVS_PART_NOT_FOUND),
    ERR_NAME(ESP_ERR_NVS_NEW_VERSION_FOUND),
    ERR_NAME(ESP_ERR_OTA_BASE),
    ERR_NAME(ESP_ERR_OTA_PARTITION_CONFLICT),
    ERR_NAME(ESP_ERR_OTA_SELECT_INFO_INVALID),
    ERR_NAME(ESP_ERR_OTA_VALIDATE_FAILED),
    ERR_NAME(ESP_ERR_OTA_SMALL_SEC_VER),
    ERR_NAME(ESP_ERR_OTA_ROLLBACK_FAILED),
    ERR_NAME(ESP_ERR_OTA_ROLLBACK_INVALID_STATE),
    ERR_NAME(ESP_ERR_OTA_ALREADY_IN_PROGRESS),
    ERR_NAME(ESP_ERR_OTA_SPI_MODE_MISMATCH),
    ERR_NAME(ESP_ERR_EFUSE),
    ERR_NAME(ESP_OK_EFUSE_CNT),
    ERR_NAME(ESP_ERR_EFUSE_CNT_IS_FULL),
    ERR_NAME(ESP_ERR_EFUSE_REPEATED_PROG),
    ERR_NAME(ESP_ERR_CODING),
    ERR_NAME(ESP_ERR_NOT_ENOUGH_UNUSED_KEY_BLOCKS),
    ERR_NAME(ESP_ERR_DAMAGED_READING),
    ERR_NAME(ESP_ERR_IMAGE_BASE),
    ERR_NAME(ESP_ERR_IMAGE_FLASH_FAIL),
    ERR_NAME(ESP_ERR_IMAGE_INVALID),
    ERR_NAME(ESP_ERR_FLASH_BASE),
    ERR_NAME(ESP_ERR_FLASH_OP_FAIL),
    ERR_NAME(ESP_ERR_FLASH_OP_TIMEOUT),
    ERR_NAME(ESP_ERR_FLASH_NOT_INITIALISED),
    ERR_NAME(ESP_ERR_FLASH_UNSUPPORTED_HOST),
    ERR_NAME(ESP_ERR_FLASH_UNSUPPORTED_CHIP),
    ERR_NAME(ESP_ERR_FLASH_PROTECTED),
    ERR_NAME(ESP_ERR_HTTP_BASE),
    ERR_NAME(ESP_ERR_HTTP_MAX_REDIRECT),
    ERR_NAME(ESP_ERR_HTTP_CONNECT),
    ERR_NAME(ESP_ERR_HTTP_WRITE_DATA),
    ERR_NAME(ESP_ERR_HTTP_FETCH_HEADER),
    ERR_NAME(ESP_ERR_HTTP_INVALID_TRANSPORT),
    ERR_NAME(ESP_ERR_HTTP_CONNECTING),
    ERR_NAME(ESP_ERR_HTTP_EAGAIN),
    ERR_NAME(ESP_ERR_HTTP_CONNECTION_CLOSED),
    ERR_NAME(ESP_ERR_HTTP_NOT_MODIFIED),
    ERR_NAME(ESP_ERR_HTTP_RANGE_NOT_SATISFIABLE),
    ERR_NAME(ESP_ERR_HTTP_READ_TIMEOUT),
    ERR_NAME(ESP_ERR_HTTP_INCOMPLETE_DATA),
    ERR_NAME(ESP_ERR_HTTPS_OTA_BASE),
    ERR_NAME(ESP_ERR_HTTPS_OTA_IN_PROGRESS),
};

const char *esp_err_to_name(esp_err_t code)
{
    for (size_t i = 0; i < sizeof(s_names) / sizeof(s_names[0]); i++) {
        if (s_names[i].code == code) {
            return s_names[i].name;
        }
    }
    return "UNKNOWN ERROR";
}

const char *esp_err_to_name_r(esp_err_t code, char *buf, size_t buflen)
{
    for (size_t i = 0; i < sizeof(s_names) / sizeof(s_names[0]); i++) {
        if (s_names[i].code == code) {
            snprintf(buf, buflen, "%s", s_names[i].name);
            return buf;
        }
    }
    snprintf(buf, buflen, "Unknown error 0x%x", (unsigned)code);
    return buf;
}

static void print_check_failed(esp_err_t rc, const char *file, int line, const char *function,
                               const char *expression, const char *what)
{
    printf("%s failed: esp_err_t 0x%x (%s) at 0x400d0000\n", what, (unsigned)rc,
           esp_err_to_name(rc));
    printf("file: \"%s\" line %d\nfunc: %s\nexpression: %s\n", file, line, function, expression);
    fflush(stdout);
}

void _esp_error_check_failed(esp_err_t rc, const char *file, int line, const char *function,
                             const char *expression)
{
    print_check_failed(rc, file, line, function, expression, "ESP_ERROR_CHECK");
    abort();
}

void _esp_error_check_failed_without_abort(esp_err_t rc, const char *file, int line,
                                           const char *function, const char *expression)
{
    print_check_failed(rc, file, line, function, expression, "ESP_ERROR_CHECK_WITHOUT_ABORT");
}
