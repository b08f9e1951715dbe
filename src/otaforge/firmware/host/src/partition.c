/*
 * otaforge host layer: esp_partition_* over the emulated flash (reads, writes and erases are
 * done by the emulator, so power cuts can hit any of them).
 */
#include <stdlib.h>
#include <string.h>

#include "esp_log.h"
#include "esp_partition.h"
#include "otaforge_host.h"
#include "otaforge_rpc.h"

#define SECTOR_SIZE 0x1000
#define READ_CHUNK 0x10000

struct esp_partition_iterator_opaque_ {
    esp_partition_type_t type;
    esp_partition_subtype_t subtype;
    char label[17];
    size_t next;
    const esp_partition_t *current;
};

static bool matches(const esp_partition_t *p, esp_partition_type_t type,
                    esp_partition_subtype_t subtype, const char *label)
{
    if (type != ESP_PARTITION_TYPE_ANY && p->type != type) {
        return false;
    }
    if (subtype != ESP_PARTITION_SUBTYPE_ANY && p->subtype != subtype) {
        return false;
    }
    return label == NULL || label[0] == '\0' || strcmp(p->label, label) == 0;
}

static esp_partition_iterator_t advance(esp_partition_iterator_t it)
{
    size_t count = 0;
    const esp_partition_t *table = fw_partition_table(&count);
    for (; it->next < count; it->next++) {
        if (matches(&table[it->next], it->type, it->subtype, it->label)) {
            it->current = &table[it->next++];
            return it;
        }
    }
    free(it);
    return NULL;
}

esp_partition_iterator_t esp_partition_find(esp_partition_type_t type,
                                            esp_partition_subtype_t subtype, const char *label)
{
    if (type == ESP_PARTITION_TYPE_ANY && subtype != ESP_PARTITION_SUBTYPE_ANY) {
        return NULL;
    }
    esp_partition_iterator_t it = calloc(1, sizeof(*it));
    if (it == NULL) {
        return NULL;
    }
    it->type = type;
    it->subtype = subtype;
    if (label != NULL) {
        strncpy(it->label, label, sizeof(it->label) - 1);
    }
    return advance(it);
}

const esp_partition_t *esp_partition_find_first(esp_partition_type_t type,
                                                esp_partition_subtype_t subtype,
                                                const char *label)
{
    esp_partition_iterator_t it = esp_partition_find(type, subtype, label);
    if (it == NULL) {
        return NULL;
    }
    const esp_partition_t *p = it->current;
    free(it);
    return p;
}

const esp_partition_t *esp_partition_get(esp_partition_iterator_t iterator)
{
    return iterator != NULL ? iterator->current : NULL;
}

esp_partition_iterator_t esp_partition_next(esp_partition_iterator_t iterator)
{
    return iterator != NULL ? advance(iterator) : NULL;
}

void esp_partition_iterator_release(esp_partition_iterator_t iterator)
{
    free(iterator);
}

const esp_partition_t *esp_partition_verify(const esp_partition_t *partition)
{
    if (partition == NULL) {
        return NULL;
    }
    size_t count = 0;
    const esp_partition_t *table = fw_partition_table(&count);
    for (size_t i = 0; i < count; i++) {
        if (table[i].address == partition->address && table[i].size == partition->size &&
                table[i].type == partition->type && table[i].subtype == partition->subtype &&
                (partition->label[0] == '\0' || strcmp(table[i].label, partition->label) == 0)) {
            return &table[i];
        }
    }
    return NULL;
}

static esp_err_t check_range(const esp_partition_t *partition, size_t offset, size_t size)
{
    if (partition == NULL) {
        return ESP_ERR_INVALID_ARG;
    }
    if (offset > partition->size || size > partition->size - offset) {
        return ESP_ERR_INVALID_SIZE;
    }
    return ESP_OK;
}

esp_err_t esp_partition_read(const esp_partition_t *partition, size_t src_offset, void *dst,
                             size_t size)
{
    esp_err_t err = check_range(partition, src_offset, size);
    uint8_t *out = dst;
    while (err == ESP_OK && size > 0) {
        size_t n = size < READ_CHUNK ? size : READ_CHUNK;
        fw_msg_t msg;
        fw_reply_t reply;
        fw_msg_begin(&msg, FW_OP_FLASH_READ);
        fw_put_int(&msg, (int64_t)(partition->address + src_offset));
        fw_put_int(&msg, (int64_t)n);
        err = fw_call(&msg, &reply);
        size_t got = 0;
        const uint8_t *data = fw_get_bytes(&reply, &got);
        if (err == ESP_OK && got == n) {
            memcpy(out, data, n);
        } else if (err == ESP_OK) {
            err = ESP_FAIL;
        }
        fw_reply_free(&reply);
        out += n;
        src_offset += n;
        size -= n;
    }
    return err;
}

esp_err_t esp_partition_write(const esp_partition_t *partition, size_t dst_offset,
                              const void *src, size_t size)
{
    esp_err_t err = check_range(partition, dst_offset, size);
    if (err != ESP_OK) {
        return err;
    }
    if (partition->readonly) {
        return ESP_ERR_NOT_ALLOWED;
    }
    fw_msg_t msg;
    fw_reply_t reply;
    fw_msg_begin(&msg, FW_OP_FLASH_WRITE);
    fw_put_int(&msg, (int64_t)(partition->address + dst_offset));
    fw_put_bytes(&msg, src, size);
    err = fw_call(&msg, &reply);
    fw_reply_free(&reply);
    return err;
}

esp_err_t esp_partition_read_raw(const esp_partition_t *partition, size_t src_offset,
                                 void *dst, size_t size)
{
    return esp_partition_read(partition, src_offset, dst, size);
}

esp_err_t esp_partition_write_raw(const esp_partition_t *partition, size_t dst_offset,
                                  const void *src, size_t size)
{
    return esp_partition_write(partition, dst_offset, src, size);
}

esp_err_t esp_partition_erase_range(const esp_partition_t *partition, size_t offset,
                                    size_t size)
{
    esp_err_t err = check_range(partition, offset, size);
    if (err != ESP_OK) {
        return err;
    }
    if (partition->readonly) {
        return ESP_ERR_NOT_ALLOWED;
    }
    if (offset % SECTOR_SIZE != 0 || size % SECTOR_SIZE != 0) {
        return ESP_ERR_INVALID_SIZE;
    }
    return fw_call_ints(FW_OP_FLASH_ERASE, 2, (int64_t)(partition->address + offset),
                        (int64_t)size);
}

esp_err_t esp_partition_get_sha256(const esp_partition_t *partition, uint8_t *sha_256)
{
    if (partition == NULL || sha_256 == NULL) {
        return ESP_ERR_INVALID_ARG;
    }
    fw_msg_t msg;
    fw_reply_t reply;
    fw_msg_begin(&msg, FW_OP_FLASH_READ);
    fw_put_int(&msg, (int64_t)partition->address);
    fw_put_int(&msg, -1);  /* -1: the SHA-256 as the bootloader computes it for this partition */
    esp_err_t err = fw_call(&msg, &reply);
    size_t got = 0;
    const uint8_t *digest = fw_get_bytes(&reply, &got);
    if (err == ESP_OK && got == 32) {
        memcpy(sha_256, digest, 32);
    } else if (err == ESP_OK) {
        err = ESP_FAIL;
    }
    fw_reply_free(&reply);
    return err;
}

bool esp_partition_check_identity(const esp_partition_t *partition_1,
                                  const esp_partition_t *partition_2)
{
    uint8_t a[32];
    uint8_t b[32];
    return esp_partition_get_sha256(partition_1, a) == ESP_OK &&
           esp_partition_get_sha256(partition_2, b) == ESP_OK && memcmp(a, b, 32) == 0;
}

uint32_t esp_partition_get_main_flash_sector_size(void)
{
    return SECTOR_SIZE;
}
