"""Agent settings and safety limits in one plain dataclass (as python-tuf's UpdaterConfig)."""

from __future__ import annotations

from dataclasses import dataclass

from otaforge.device.flash import SECTOR_SIZE


@dataclass(frozen=True)
class AgentConfig:
    """How the agent talks to the server and writes the update.

    Attributes:
        server_url: ``https://host:port`` of the update server.
        fleet: the fleet this device belongs to.
        device_id: this device's id on the server.
        token: bearer token (device token or fleet enrollment token).
        timeout_s: connect/read/write timeout (esp_http_client ``timeout_ms`` = 10000).
        buffer_size: bytes per esp_https_ota read/write (a divisor of 4 KiB).
        checkpoint_bytes: persist the resume offset every this many bytes (multiple of 4 KiB).
        max_attempts: download attempts per check-in (resuming after each drop).
        bulk_flash_erase: erase the whole image area at begin instead of sector by sector.
        partial_http_download: download in Range requests of ``max_http_request_size``.
        max_http_request_size: bytes per request in partial-download mode.
        state_partition: partition whose last sector keeps the agent's state.
        self_test_timeout_s: watchdog budget for the self-test (emulated time).
    """

    server_url: str
    fleet: str
    device_id: str
    token: str
    timeout_s: float = 10.0
    buffer_size: int = 4096
    checkpoint_bytes: int = 16 * SECTOR_SIZE
    max_attempts: int = 3
    bulk_flash_erase: bool = False
    partial_http_download: bool = False
    max_http_request_size: int = 64 * 1024
    state_partition: str = "nvs"
    self_test_timeout_s: float = 30.0

    def __post_init__(self) -> None:
        if self.checkpoint_bytes % SECTOR_SIZE or self.checkpoint_bytes <= 0:
            raise ValueError("checkpoint_bytes must be a positive multiple of 4 KiB")
        if SECTOR_SIZE % self.buffer_size:
            raise ValueError("buffer_size must divide 4096")
        if self.max_http_request_size < SECTOR_SIZE:
            raise ValueError("max_http_request_size must be at least 4096")
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
