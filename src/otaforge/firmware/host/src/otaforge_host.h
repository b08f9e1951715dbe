/*
 * otaforge host layer internals shared by the implementation files.
 */
#pragma once

#include <stdint.h>

#include "esp_partition.h"

/** The partition whose flash address is address (NULL: none). */
const esp_partition_t *otaforge_host_partition_at(int64_t address);
const esp_partition_t *otaforge_host_running_partition(void);
/** Tell the emulator the firmware has nothing left to do, and end. */
void otaforge_host_exit_idle(void) __attribute__((__noreturn__));
void otaforge_host_tasks_init(void);
/** app_main returned: end when no other task runs. */
void otaforge_host_main_task_done(void);
/** Small id of the calling task (the main task is 1). */
int64_t otaforge_host_task_id(void *task_handle);
