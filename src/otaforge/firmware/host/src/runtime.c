/*
 * otaforge host layer: the chip's start-up and resets. main() says hello to the emulator (which
 * gives the partition table, the running partition and its app description), then runs
 * app_main() as ESP-IDF's main task does. esp_restart() and crashes end the process: the
 * emulator resets the device and boots again in a fresh process, so RAM never survives.
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "esp_app_desc.h"
#include "esp_log.h"
#include "esp_ota_ops.h"
#include "esp_partition.h"
#include "esp_system.h"
#include "otaforge_host.h"
#include "otaforge_rpc.h"

#define MAX_PARTITIONS 95

static const char *TAG = "main_task";

static esp_partition_t s_partitions[MAX_PARTITIONS];
static size_t s_partition_count;
static const esp_partition_t *s_running;
static esp_app_desc_t s_app_desc;
static esp_reset_reason_t s_reset_reason = ESP_RST_POWERON;

void app_main(void);

const void *fw_partition_table(size_t *count)
{
    *count = s_partition_count;
    return s_partitions;
}

const esp_partition_t *otaforge_host_partition_at(int64_t address)
{
    for (size_t i = 0; i < s_partition_count; i++) {
        if ((int64_t)s_partitions[i].address == address) {
            return &s_partitions[i];
        }
    }
    return NULL;
}

const esp_partition_t *otaforge_host_running_partition(void)
{
    return s_running;
}

const esp_app_desc_t *esp_app_get_description(void)
{
    return &s_app_desc;
}

int esp_app_get_elf_sha256(char *dst, size_t size)
{
    static const char hex[] = "0123456789abcdef";
    if (dst == NULL || size < 2) {
        return 0;
    }
    size_t n = 0;
    for (size_t i = 0; i < sizeof(s_app_desc.app_elf_sha256) && n + 2 < size; i++) {
        dst[n++] = hex[s_app_desc.app_elf_sha256[i] >> 4];
        dst[n++] = hex[s_app_desc.app_elf_sha256[i] & 0xf];
    }
    dst[n] = '\0';
    return (int)n + 1;
}

esp_reset_reason_t esp_reset_reason(void)
{
    return s_reset_reason;
}

static void hello(void)
{
    fw_msg_t msg;
    fw_reply_t reply;
    fw_msg_begin(&msg, FW_OP_HELLO);
    fw_put_int(&msg, (int64_t)sizeof(esp_app_desc_t));
    if (fw_call(&msg, &reply) != ESP_OK) {
        fprintf(stderr, "otaforge: the emulator refused the firmware's hello\n");
        _exit(2);
    }
    int64_t running = fw_get_int(&reply);
    size_t len = 0;
    const uint8_t *desc = fw_get_bytes(&reply, &len);
    if (len == sizeof(s_app_desc)) {
        memcpy(&s_app_desc, desc, len);
    }
    s_reset_reason = (esp_reset_reason_t)fw_get_int(&reply);
    size_t count = (size_t)fw_get_int(&reply);
    for (size_t i = 0; i < count && i < MAX_PARTITIONS; i++) {
        esp_partition_t *p = &s_partitions[i];
        p->flash_chip = NULL;
        p->type = (esp_partition_type_t)fw_get_int(&reply);
        p->subtype = (esp_partition_subtype_t)fw_get_int(&reply);
        p->address = (uint32_t)fw_get_int(&reply);
        p->size = (uint32_t)fw_get_int(&reply);
        p->erase_size = 0x1000;
        fw_get_str(&reply, p->label, sizeof(p->label));
        p->encrypted = fw_get_int(&reply) != 0;
        p->readonly = fw_get_int(&reply) != 0;
        s_partition_count = i + 1;
    }
    fw_reply_free(&reply);
    s_running = otaforge_host_partition_at(running);
}

static const char *signal_cause(int sig)
{
    switch (sig) {
    case SIGSEGV: return "LoadProhibited";
    case SIGBUS: return "LoadStoreAlignment";
    case SIGFPE: return "IntegerDivideByZero";
    case SIGILL: return "IllegalInstruction";
    default: return "abort";
    }
}

static void on_fatal_signal(int sig)
{
    char line[160];
    int n;
    if (sig == SIGABRT) {
        n = snprintf(line, sizeof(line), "\nabort() was called at PC 0x400d0000 on core 0\n");
    } else {
        n = snprintf(line, sizeof(line),
                     "Guru Meditation Error: Core  0 panic'ed (%s). Exception was unhandled.\n",
                     signal_cause(sig));
    }
    if (n > 0) {
        ssize_t ignored = write(STDOUT_FILENO, line, (size_t)n);
        (void)ignored;
    }
    fw_msg_t msg;
    /* async-signal-safe enough: the process ends right after */
    fw_msg_begin(&msg, FW_OP_PANIC);
    fw_put_int(&msg, sig);
    fw_send(&msg);
    _exit(128 + sig);
}

static void install_panic_handlers(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_fatal_signal;
    sigemptyset(&sa.sa_mask);
    int sigs[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT};
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
        sigaction(sigs[i], &sa, NULL);
    }
}

void esp_restart(void)
{
    fw_msg_t msg;
    fflush(stdout);
    fw_msg_begin(&msg, FW_OP_RESTART);
    fw_send(&msg);
    _exit(0);
}

void esp_system_abort(const char *details)
{
    printf("\n%s\n", details != NULL ? details : "abort");
    abort();
}

esp_err_t esp_register_shutdown_handler(shutdown_handler_t handle)
{
    (void)handle;
    return ESP_OK;
}

esp_err_t esp_unregister_shutdown_handler(shutdown_handler_t handle)
{
    (void)handle;
    return ESP_OK;
}

void otaforge_host_exit_idle(void)
{
    fw_msg_t msg;
    fflush(stdout);
    fw_msg_begin(&msg, FW_OP_EXIT);
    fw_send(&msg);
    _exit(0);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (!fw_rpc_init()) {
        fprintf(stderr, "this program is an otaforge firmware build for the emulated ESP32; run "
                "it with 'otaforge firmware run --flash FLASH.bin'\n");
        return 2;
    }
    install_panic_handlers();
    hello();
    otaforge_host_tasks_init();
    ESP_LOGI(TAG, "Calling app_main()");
    app_main();
    ESP_LOGI(TAG, "Returned from app_main()");
    otaforge_host_main_task_done();
    return 0;
}
