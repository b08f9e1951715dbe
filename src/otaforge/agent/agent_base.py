"""Shared plumbing of the update agent: its timeline events and result values, and
:class:`AgentBase`, which holds the device, the server client, the persisted state and the
reporting helpers that the boot-time check (:mod:`.boot`) and the updater (:mod:`.updater`)
both use.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from otaforge.agent.config import AgentConfig
from otaforge.agent.decision import DeviceFacts
from otaforge.agent.fetcher import Fetcher
from otaforge.agent.server_api import Event, ServerClient
from otaforge.agent.state import FlashStateStore, StateStore
from otaforge.device.emulator import Device
from otaforge.device.flash import SECTOR_SIZE
from otaforge.device.ota_ops import OtaOps
from otaforge.errors import (
    DeviceError,
    EspError,
    FormatError,
    HTTPStatusError,
    InputError,
    TransportError,
)
from otaforge.formats.app_image import AppImage
from otaforge.formats.otadata import OtaImgState
from otaforge.formats.signature_block import has_signature_sector, signature_sector_offset


@dataclass(frozen=True)
class AgentEvent:
    """One line of the device's timeline.

    Attributes:
        kind: short machine name (``check_in``, ``offer``, ``refused``, ``resumed``, ...).
        message: human-readable text.
        data: details (version, bytes, reason, ...).
    """

    kind: str
    message: str
    data: dict[str, Any] = field(default_factory=dict)


class Outcome(StrEnum):
    """How one check-for-update ended."""

    NO_UPDATE = "no_update"
    INSTALLED = "installed"  # written and selected: reboot to run it
    REFUSED = "refused"
    SKIPPED = "skipped"
    INTERRUPTED = "interrupted"  # connection lost; resumes at the next check-in
    FAILED = "failed"
    BUSY = "busy"  # running app not yet confirmed


@dataclass(frozen=True)
class UpdateResult:
    """Result of :meth:`Updater.check_for_update`."""

    outcome: Outcome
    version: str | None = None
    reason: str = ""
    code: str | None = None


class BootOutcome(StrEnum):
    """What :meth:`Updater.on_boot` found and did."""

    NOTHING = "nothing"
    CONFIRMED = "confirmed"
    ROLLED_BACK = "rolled_back"
    UNCONFIRMED = "unconfirmed"  # firmware never confirms: left PENDING_VERIFY
    UNVERIFIABLE = "unverifiable"  # bootloader without rollback support


EventSink = Callable[[AgentEvent], None]
ProgressSink = Callable[[int, int], None]


def _ignore_event(_event: AgentEvent) -> None:
    return None


def _ignore_progress(_done: int, _total: int) -> None:
    return None


def image_file_length(slot_bytes: bytes) -> int:
    """Length of the image file in a slot: image_len, plus the Secure Boot v2 sector if any.

    Raises:
        FormatError: the slot holds no parseable app image.
    """
    image = AppImage.from_bytes(slot_bytes, check=False)
    if has_signature_sector(slot_bytes, image.image_len):
        return signature_sector_offset(image.image_len) + SECTOR_SIZE
    return image.image_len


def state_store_for(device: Device, partition: str = "nvs") -> FlashStateStore:
    """The agent's state sector: the last 4 KiB of ``partition`` on the device.

    Raises:
        InputError: the partition table has no such partition.
    """
    part = device.partition_table().find(partition)
    if part is None or part.size < SECTOR_SIZE:
        raise InputError(f"partition table has no {partition!r} partition for the agent state")
    return FlashStateStore(device.flash, part.offset + part.size - SECTOR_SIZE)


class AgentBase:
    """The I/O an agent needs: device, server, fetcher, persisted state, event sinks.

    Args:
        device: the emulated device (powered on).
        client: the server's device API.
        fetcher: the network seam used for downloads.
        config: settings and limits.
        store: persistent agent state (default: a sector of the ``nvs`` partition).
        on_event: receives every timeline event.
        on_progress: receives (bytes written, image size) while downloading.
    """

    def __init__(self, device: Device, client: ServerClient, fetcher: Fetcher,
                 config: AgentConfig, store: StateStore | None = None,
                 on_event: EventSink | None = None,
                 on_progress: ProgressSink | None = None) -> None:
        self.device = device
        self.client = client
        self.fetcher = fetcher
        self.config = config
        self.store = store or state_store_for(device, config.state_partition)
        self.on_event = on_event or _ignore_event
        self.on_progress = on_progress or _ignore_progress

    # --- small helpers --------------------------------------------------------------------

    def _emit(self, kind: str, message: str, **data: Any) -> None:
        self.on_event(AgentEvent(kind, message, data))

    @property
    def ota(self) -> OtaOps:
        """The running app's ``esp_ota_*`` API."""
        return self.device.ota

    def _report(self, state: str, deployment: str | None, reason: str | None = None,
                nbytes: int | None = None, nonce: str = "") -> bool:
        """Best-effort report; False when the server could not be told (retried later)."""
        dep = int(deployment) if deployment and deployment.isdigit() else None
        event = Event(state, dep, reason, nbytes, nonce)
        try:
            new = self.client.report(event)
        except HTTPStatusError as err:
            self._emit("report_refused", f"server refused the {state} report: "
                       f"HTTP {err.status_code}", state=state, status=err.status_code)
            return err.status_code in (409, 410, 422)  # terminal: never retry these
        except TransportError as err:
            self._emit("report_failed", f"could not report {state}: {err}", state=state)
            return False
        self._emit("report", f"reported {state}" + (f" ({reason})" if reason else ""),
                   state=state, reason=reason, bytes=nbytes, event_id=event.event_id,
                   duplicate=not new)
        return True

    def _running_sha256(self) -> str | None:
        part = self.device.running_partition
        if part is None:
            return None
        data = self.device.flash.read(part.offset, part.size)
        try:
            return hashlib.sha256(data[:image_file_length(data)]).hexdigest()
        except FormatError:
            return None

    def _running_state(self) -> OtaImgState | None:
        part = self.device.running_partition
        if part is None or not part.is_ota_slot:
            return None
        try:
            return OtaImgState(self.ota.esp_ota_get_state_partition(part))
        except (EspError, ValueError):
            return None

    def facts(self) -> DeviceFacts:
        """The device as the decision core needs it.

        Raises:
            DeviceError: no OTA slot to update into.
        """
        ota = self.ota
        slot = ota.esp_ota_get_next_update_partition(None)
        if slot is None:
            raise DeviceError("the partition table has no OTA app slot to update into")
        desc = self.device.running_desc
        invalid = ota.esp_ota_get_last_invalid_partition()
        invalid_desc = ota.esp_ota_get_partition_description(invalid) if invalid else None
        cfg = self.device.config
        fuses = self.device.efuses
        return DeviceFacts(
            chip=self.device.chip, chip_rev=cfg.chip_rev,
            running_version=desc.version if desc else "", slot_size=slot.size,
            efuse_secure_version=fuses.secure_version, anti_rollback=cfg.anti_rollback,
            # slot-indexed (b"" for an empty slot): ``revoked`` counts by slot index
            key_digests=tuple(d or b"" for d in fuses.key_digest_slots),
            revoked=frozenset(fuses.revoked),
            require_signature=cfg.secure_boot_v2,
            last_invalid_version=invalid_desc.version if invalid_desc else None)

