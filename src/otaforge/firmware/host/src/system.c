/*
 * otaforge host layer: time, FreeRTOS tasks and delays, the task watchdog, heap figures,
 * eFuses, and the network/event calls that are always up on the emulator.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "esp_efuse.h"
#include "esp_event.h"
#include "esp_heap_caps.h"
#include "esp_idf_version.h"
#include "esp_log.h"
#include "esp_netif.h"
#include "esp_system.h"
#include "esp_task_wdt.h"
#include "esp_timer.h"
#include "esp_wifi.h"
#include "freertos/FreeRTOS.h"
#include "freertos/task.h"
#include "otaforge_host.h"
#include "otaforge_rpc.h"
#include "protocol_examples_common.h"

#define HOST_HEAP_FREE (200 * 1024)  /* what a fresh ESP32 app typically has free */

struct tskTaskControlBlock {
    int64_t id;
    char name[16];
    TaskFunction_t code;
    void *arg;
};

static pthread_mutex_t s_tasks_lock = PTHREAD_MUTEX_INITIALIZER;
static int s_live_tasks = 1;
static int64_t s_next_task_id = 2;
static struct tskTaskControlBlock s_main_task = {.id = 1, .name = "main"};
static __thread struct tskTaskControlBlock *t_self;

ESP_EVENT_DEFINE_BASE(WIFI_EVENT);
ESP_EVENT_DEFINE_BASE(IP_EVENT);

/* --- time ------------------------------------------------------------------------------- */

int64_t esp_timer_get_time(void)
{
    fw_call_ints(FW_OP_TIME, 0, 0, 0);
    return fw_last_time_us();
}

const char *esp_get_idf_version(void)
{
    return "v5.5-otaforge-host";
}

/* --- tasks ------------------------------------------------------------------------------ */

void otaforge_host_tasks_init(void)
{
    t_self = &s_main_task;
}

int64_t otaforge_host_task_id(void *task_handle)
{
    if (task_handle != NULL) {
        return ((struct tskTaskControlBlock *)task_handle)->id;
    }
    return t_self != NULL ? t_self->id : 1;
}

static void task_ended(void)
{
    pthread_mutex_lock(&s_tasks_lock);
    int left = --s_live_tasks;
    pthread_mutex_unlock(&s_tasks_lock);
    if (left == 0) {
        otaforge_host_exit_idle();
    }
}

void otaforge_host_main_task_done(void)
{
    task_ended();
    pthread_exit(NULL);
}

static void *task_main(void *arg)
{
    struct tskTaskControlBlock *task = arg;
    t_self = task;
    task->code(task->arg);
    /* a FreeRTOS task must not return; ESP-IDF aborts. Treat it as vTaskDelete(NULL). */
    task_ended();
    return NULL;
}

BaseType_t xTaskCreatePinnedToCore(TaskFunction_t pxTaskCode, const char *const pcName,
                                   const uint32_t ulStackDepth, void *const pvParameters,
                                   UBaseType_t uxPriority, TaskHandle_t *const pxCreatedTask,
                                   const BaseType_t xCoreID)
{
    (void)ulStackDepth;
    (void)uxPriority;
    (void)xCoreID;
    struct tskTaskControlBlock *task = calloc(1, sizeof(*task));
    if (task == NULL) {
        return pdFAIL;
    }
    pthread_mutex_lock(&s_tasks_lock);
    task->id = s_next_task_id++;
    s_live_tasks++;
    pthread_mutex_unlock(&s_tasks_lock);
    snprintf(task->name, sizeof(task->name), "%s", pcName != NULL ? pcName : "task");
    task->code = pxTaskCode;
    task->arg = pvParameters;
    pthread_t thread;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&thread, &attr, task_main, task) != 0) {
        pthread_attr_destroy(&attr);
        task_ended();
        free(task);
        return pdFAIL;
    }
    pthread_attr_destroy(&attr);
    if (pxCreatedTask != NULL) {
        *pxCreatedTask = task;
    }
    return pdPASS;
}

BaseType_t xTaskCreate(TaskFunction_t pxTaskCode, const char *const pcName,
                       const uint32_t usStackDepth, void *const pvParameters,
                       UBaseType_t uxPriority, TaskHandle_t *const pxCreatedTask)
{
    return xTaskCreatePinnedToCore(pxTaskCode, pcName, usStackDepth, pvParameters, uxPriority,
                                   pxCreatedTask, tskNO_AFFINITY);
}

void vTaskDelete(TaskHandle_t xTaskToDelete)
{
    if (xTaskToDelete == NULL || xTaskToDelete == t_self) {
        task_ended();
        pthread_exit(NULL);
    }
    ESP_LOGE("otaforge_host", "vTaskDelete of another task is not supported on the emulator");
}

void vTaskDelay(const TickType_t xTicksToDelay)
{
    int64_t ms = (int64_t)xTicksToDelay * 1000 / configTICK_RATE_HZ;
    fw_call_ints(FW_OP_DELAY, 2, ms, otaforge_host_task_id(NULL));
}

TickType_t xTaskGetTickCount(void)
{
    return (TickType_t)(esp_timer_get_time() * configTICK_RATE_HZ / 1000000);
}

TaskHandle_t xTaskGetCurrentTaskHandle(void)
{
    return t_self;
}

char *pcTaskGetName(TaskHandle_t xTaskToQuery)
{
    struct tskTaskControlBlock *task = xTaskToQuery != NULL ? xTaskToQuery : t_self;
    return task != NULL ? task->name : NULL;
}

/* --- task watchdog (timed by the emulator on the device clock) -------------------------- */

esp_err_t esp_task_wdt_init(const esp_task_wdt_config_t *config)
{
    if (config == NULL) {
        return ESP_ERR_INVALID_ARG;
    }
    fw_msg_t msg;
    fw_reply_t reply;
    fw_msg_begin(&msg, FW_OP_WDT_INIT);
    fw_put_int(&msg, config->timeout_ms);
    fw_put_int(&msg, config->trigger_panic);
    fw_put_int(&msg, config->idle_core_mask);
    esp_err_t err = fw_call(&msg, &reply);
    fw_reply_free(&reply);
    return err;
}

esp_err_t esp_task_wdt_reconfigure(const esp_task_wdt_config_t *config)
{
    if (config == NULL) {
        return ESP_ERR_INVALID_ARG;
    }
    fw_msg_t msg;
    fw_reply_t reply;
    fw_msg_begin(&msg, FW_OP_WDT_RECONFIGURE);
    fw_put_int(&msg, config->timeout_ms);
    fw_put_int(&msg, config->trigger_panic);
    fw_put_int(&msg, config->idle_core_mask);
    esp_err_t err = fw_call(&msg, &reply);
    fw_reply_free(&reply);
    return err;
}

esp_err_t esp_task_wdt_deinit(void)
{
    return fw_call_ints(FW_OP_WDT_DEINIT, 0, 0, 0);
}

esp_err_t esp_task_wdt_add(TaskHandle_t task_handle)
{
    return fw_call_ints(FW_OP_WDT_ADD, 1, otaforge_host_task_id(task_handle), 0);
}

esp_err_t esp_task_wdt_reset(void)
{
    return fw_call_ints(FW_OP_WDT_RESET, 1, otaforge_host_task_id(NULL), 0);
}

esp_err_t esp_task_wdt_delete(TaskHandle_t task_handle)
{
    return fw_call_ints(FW_OP_WDT_DELETE, 1, otaforge_host_task_id(task_handle), 0);
}

esp_err_t esp_task_wdt_status(TaskHandle_t task_handle)
{
    return fw_call_ints(FW_OP_WDT_STATUS, 1, otaforge_host_task_id(task_handle), 0);
}

/* users are ids from 1000 up, hashed from the handle the caller gets back */
struct esp_task_wdt_user_handle_s {
    int64_t id;
};

static int64_t s_next_user = 1000;

esp_err_t esp_task_wdt_add_user(const char *user_name, esp_task_wdt_user_handle_t *user_handle_ret)
{
    if (user_name == NULL || user_handle_ret == NULL) {
        return ESP_ERR_INVALID_ARG;
    }
    struct esp_task_wdt_user_handle_s *user = calloc(1, sizeof(*user));
    if (user == NULL) {
        return ESP_ERR_NO_MEM;
    }
    user->id = s_next_user++;
    esp_err_t err = fw_call_ints(FW_OP_WDT_ADD, 1, user->id, 0);
    if (err != ESP_OK) {
        free(user);
        return err;
    }
    *user_handle_ret = user;
    return ESP_OK;
}

esp_err_t esp_task_wdt_reset_user(esp_task_wdt_user_handle_t user_handle)
{
    if (user_handle == NULL) {
        return ESP_ERR_INVALID_ARG;
    }
    return fw_call_ints(FW_OP_WDT_RESET, 1, user_handle->id, 0);
}

esp_err_t esp_task_wdt_delete_user(esp_task_wdt_user_handle_t user_handle)
{
    if (user_handle == NULL) {
        return ESP_ERR_INVALID_ARG;
    }
    esp_err_t err = fw_call_ints(FW_OP_WDT_DELETE, 1, user_handle->id, 0);
    free(user_handle);
    return err;
}

/* --- heap ------------------------------------------------------------------------------- */

void *heap_caps_malloc(size_t size, uint32_t caps)
{
    (void)caps;
    return malloc(size);
}

void *heap_caps_calloc(size_t n, size_t size, uint32_t caps)
{
    (void)caps;
    return calloc(n, size);
}

void heap_caps_free(void *ptr)
{
    free(ptr);
}

size_t heap_caps_get_free_size(uint32_t caps)
{
    (void)caps;
    return HOST_HEAP_FREE;
}

size_t heap_caps_get_minimum_free_size(uint32_t caps)
{
    (void)caps;
    return HOST_HEAP_FREE;
}

size_t heap_caps_get_largest_free_block(uint32_t caps)
{
    (void)caps;
    return HOST_HEAP_FREE / 2;
}

uint32_t esp_get_free_heap_size(void)
{
    return HOST_HEAP_FREE;
}

uint32_t esp_get_free_internal_heap_size(void)
{
    return HOST_HEAP_FREE;
}

uint32_t esp_get_minimum_free_heap_size(void)
{
    return HOST_HEAP_FREE;
}

/* --- eFuses (the emulator's) ------------------------------------------------------------ */

uint32_t esp_efuse_read_secure_version(void)
{
    fw_msg_t msg;
    fw_reply_t reply;
    fw_msg_begin(&msg, FW_OP_EFUSE_SECURE_VERSION);
    fw_call(&msg, &reply);
    uint32_t version = (uint32_t)fw_get_int(&reply);
    fw_reply_free(&reply);
    return version;
}

bool esp_efuse_check_secure_version(uint32_t secure_version)
{
    fw_msg_t msg;
    fw_reply_t reply;
    fw_msg_begin(&msg, FW_OP_EFUSE_CHECK_SECURE_VERSION);
    fw_put_int(&msg, secure_version);
    fw_call(&msg, &reply);
    bool ok = fw_get_int(&reply) != 0;
    fw_reply_free(&reply);
    return ok;
}

esp_err_t esp_efuse_update_secure_version(uint32_t secure_version)
{
    return fw_call_ints(FW_OP_EFUSE_UPDATE_SECURE_VERSION, 1, secure_version, 0);
}

/* --- network and events: always connected on the emulator ------------------------------- */

static const char *NET_TAG = "example_connect";

esp_err_t esp_netif_init(void)
{
    return ESP_OK;
}

esp_err_t esp_netif_deinit(void)
{
    return ESP_OK;
}

esp_netif_t *esp_netif_create_default_wifi_sta(void)
{
    static int s_netif;
    return (esp_netif_t *)&s_netif;
}

esp_err_t esp_event_loop_create_default(void)
{
    return ESP_OK;
}

esp_err_t esp_event_loop_delete_default(void)
{
    return ESP_OK;
}

esp_err_t esp_event_handler_register(esp_event_base_t event_base, int32_t event_id,
                                     esp_event_handler_t event_handler, void *event_handler_arg)
{
    (void)event_base;
    (void)event_id;
    (void)event_handler;
    (void)event_handler_arg;
    return ESP_OK;
}

esp_err_t esp_event_handler_unregister(esp_event_base_t event_base, int32_t event_id,
                                       esp_event_handler_t event_handler)
{
    (void)event_base;
    (void)event_id;
    (void)event_handler;
    return ESP_OK;
}

esp_err_t esp_event_handler_instance_register(esp_event_base_t event_base, int32_t event_id,
                                              esp_event_handler_t event_handler,
                                              void *event_handler_arg,
                                              esp_event_handler_instance_t *instance)
{
    (void)event_base;
    (void)event_id;
    (void)event_handler;
    (void)event_handler_arg;
    if (instance != NULL) {
        *instance = NULL;
    }
    return ESP_OK;
}

esp_err_t esp_event_handler_instance_unregister(esp_event_base_t event_base, int32_t event_id,
                                                esp_event_handler_instance_t instance)
{
    (void)event_base;
    (void)event_id;
    (void)instance;
    return ESP_OK;
}

esp_err_t esp_event_post(esp_event_base_t event_base, int32_t event_id, const void *event_data,
                         size_t event_data_size, TickType_t ticks_to_wait)
{
    (void)event_base;
    (void)event_id;
    (void)event_data;
    (void)event_data_size;
    (void)ticks_to_wait;
    return ESP_OK;
}

esp_err_t esp_wifi_init(const wifi_init_config_t *config)
{
    return config != NULL ? ESP_OK : ESP_ERR_INVALID_ARG;
}

esp_err_t esp_wifi_deinit(void)
{
    return ESP_OK;
}

esp_err_t esp_wifi_set_mode(wifi_mode_t mode)
{
    (void)mode;
    return ESP_OK;
}

esp_err_t esp_wifi_set_config(wifi_interface_t interface, wifi_config_t *conf)
{
    (void)interface;
    return conf != NULL ? ESP_OK : ESP_ERR_INVALID_ARG;
}

esp_err_t esp_wifi_start(void)
{
    return ESP_OK;
}

esp_err_t esp_wifi_stop(void)
{
    return ESP_OK;
}

esp_err_t esp_wifi_connect(void)
{
    return ESP_OK;
}

esp_err_t esp_wifi_disconnect(void)
{
    return ESP_OK;
}

esp_err_t example_connect(void)
{
    ESP_LOGI(NET_TAG, "Connected (the emulated network is always up)");
    return ESP_OK;
}

esp_err_t example_disconnect(void)
{
    return ESP_OK;
}
