"""The task watchdog of the emulated chip, on the device's virtual clock.

``esp_task_wdt_*`` calls of the firmware land here. A subscribed task or user that does not
call ``esp_task_wdt_reset`` within the timeout (virtual seconds, which pass in ``vTaskDelay``)
triggers it: with ``trigger_panic`` the chip resets (reason TASK_WDT), otherwise ESP-IDF only
prints the warning and the timer starts again. A firmware that stops talking to the emulator
altogether (a busy loop) is caught by the wall-clock ``--wdt-timeout`` of the runner instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from otaforge.device.esp_err import raise_esp


@dataclass
class TaskWatchdog:
    """TWDT state: initialised at start-up from CONFIG_ESP_TASK_WDT_* as ESP-IDF does."""

    initialized: bool = True
    timeout_s: float = 5.0
    panic: bool = False
    subscribers: dict[int, float] = field(default_factory=dict)

    def init(self, timeout_ms: int, panic: bool, now: float) -> None:
        """``esp_task_wdt_init``. Raises EspError INVALID_STATE when already initialised."""
        if self.initialized:
            raise_esp("ESP_ERR_INVALID_STATE", "TWDT already initialized")
        self.initialized, self.timeout_s, self.panic = True, timeout_ms / 1000, panic

    def reconfigure(self, timeout_ms: int, panic: bool, now: float) -> None:
        """``esp_task_wdt_reconfigure``. Raises EspError INVALID_STATE when not initialised."""
        if not self.initialized:
            raise_esp("ESP_ERR_INVALID_STATE", "TWDT not initialized")
        self.timeout_s, self.panic = timeout_ms / 1000, panic
        for key in self.subscribers:
            self.subscribers[key] = now

    def deinit(self) -> None:
        """``esp_task_wdt_deinit``. Raises EspError INVALID_STATE while tasks are subscribed."""
        if not self.initialized or self.subscribers:
            raise_esp("ESP_ERR_INVALID_STATE", "TWDT not initialized or tasks subscribed")
        self.initialized = False

    def add(self, who: int, now: float) -> None:
        """``esp_task_wdt_add`` / ``_add_user``."""
        if not self.initialized:
            raise_esp("ESP_ERR_INVALID_STATE", "TWDT not initialized")
        if who in self.subscribers:
            raise_esp("ESP_ERR_INVALID_ARG", "task is already subscribed")
        self.subscribers[who] = now

    def reset(self, who: int, now: float) -> None:
        """``esp_task_wdt_reset``. Raises EspError NOT_FOUND when ``who`` is not subscribed."""
        if not self.initialized:
            raise_esp("ESP_ERR_INVALID_STATE", "TWDT not initialized")
        if who not in self.subscribers:
            raise_esp("ESP_ERR_NOT_FOUND", "task not subscribed to the TWDT")
        self.subscribers[who] = now

    def delete(self, who: int) -> None:
        """``esp_task_wdt_delete``."""
        if not self.initialized:
            raise_esp("ESP_ERR_INVALID_STATE", "TWDT not initialized")
        if self.subscribers.pop(who, None) is None:
            raise_esp("ESP_ERR_INVALID_ARG", "task not subscribed")

    def status(self, who: int) -> None:
        """``esp_task_wdt_status``: NOT_FOUND when not subscribed."""
        if not self.initialized:
            raise_esp("ESP_ERR_INVALID_STATE", "TWDT not initialized")
        if who not in self.subscribers:
            raise_esp("ESP_ERR_NOT_FOUND", "task not subscribed")

    def deadline(self) -> float | None:
        """When the first subscriber's timeout expires (None: nobody subscribed)."""
        if not self.subscribers:
            return None
        return min(self.subscribers.values()) + self.timeout_s

    def restart_timers(self, now: float) -> None:
        """After a warning-only trigger: every subscriber starts a new period."""
        for key in self.subscribers:
            self.subscribers[key] = now
