"""What the agent remembers across reboots and power cuts, kept in the device's own flash.

A real agent keeps ``esp_https_ota_get_image_len_read()`` and "which update am I verifying"
in NVS. The emulated device has no NVS library, so :class:`FlashStateStore` keeps a small
append-only log in one 4 KiB sector (by default the last sector of the ``nvs`` partition):
512-byte records ``magic | length | crc32 | JSON`` (the layout is
:mod:`otaforge.formats.agent_record`); loading takes the last record whose CRC
is good, so a record torn by a power cut is ignored and the previous one wins; when the
sector is full it is erased and the log restarts. A cut during that erase loses the state,
which is safe: the download restarts from 0 and an unconfirmed app is judged from otadata.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from otaforge.device.flash import SECTOR_SIZE, Flash
from otaforge.formats.agent_record import FREE_SLOT, RECORD_SIZE, decode_record, encode_record


@dataclass(frozen=True)
class Partial:
    """A download that stopped part-way (what to resume).

    Attributes:
        sha256: the release's SHA-256 (identifies the artifact).
        etag: the server's ETag for it (sent as If-Range).
        size: total image size.
        written: bytes already in the slot (a multiple of 4 KiB).
        slot: name of the partition being written.
    """

    sha256: str
    etag: str | None
    size: int
    written: int
    slot: str


@dataclass(frozen=True)
class Pending:
    """An installed update the agent has not yet seen confirmed or rolled back.

    Attributes:
        sha256: the installed image.
        version: its version.
        deployment: the server's deployment id.
        slot: the partition it was written to.
        from_version: the version that was running before.
        failure: why the agent rolled it back, once its self-test failed.
    """

    sha256: str
    version: str
    deployment: str | None
    slot: str
    from_version: str
    failure: str | None = None


@dataclass(frozen=True)
class AgentState:
    """Everything persisted: an optional partial download and an optional pending update."""

    partial: Partial | None = None
    pending: Pending | None = None

    def to_json(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> AgentState:
        """Inverse of :meth:`to_json`."""
        partial = raw.get("partial")
        pending = raw.get("pending")
        return cls(Partial(**partial) if partial else None,
                   Pending(**pending) if pending else None)


class StateStore(Protocol):
    """Loads and saves :class:`AgentState`."""

    def load(self) -> AgentState: ...
    def save(self, state: AgentState) -> None: ...


class MemoryStateStore:
    """A store that forgets everything at power-off (for tests of the pure flow)."""

    def __init__(self) -> None:
        self.state = AgentState()

    def load(self) -> AgentState:
        """The state kept in memory."""
        return self.state

    def save(self, state: AgentState) -> None:
        """Keep ``state`` in memory."""
        self.state = state


class FlashStateStore:
    """An append-only record log in one flash sector.

    Args:
        flash: the device flash.
        sector_addr: absolute address of the (4 KiB aligned) sector to use.
    """

    def __init__(self, flash: Flash, sector_addr: int) -> None:
        if sector_addr % SECTOR_SIZE:
            raise ValueError(f"state sector 0x{sector_addr:x} is not 4 KiB aligned")
        self.flash = flash
        self.addr = sector_addr

    def _slots(self) -> tuple[list[AgentState], int | None]:
        raw = self.flash.read(self.addr, SECTOR_SIZE)
        states: list[AgentState] = []
        free: int | None = None
        for index in range(SECTOR_SIZE // RECORD_SIZE):
            record = raw[index * RECORD_SIZE:(index + 1) * RECORD_SIZE]
            if record == FREE_SLOT:
                free = index
                break
            state = _decode(record)
            if state is not None:
                states.append(state)
        return states, free

    def load(self) -> AgentState:
        """The last intact record, or a fresh state."""
        states, _ = self._slots()
        return states[-1] if states else AgentState()

    def save(self, state: AgentState) -> None:
        """Append ``state`` (erasing the sector first when it is full).

        Raises:
            ValueError: the state does not fit in one record.
            PowerCut: injected by the flash.
        """
        record = _encode(state)
        _, free = self._slots()
        if free is None:
            self.flash.erase_sector(self.addr)
            free = 0
        self.flash.program(self.addr + free * RECORD_SIZE, record)


def _encode(state: AgentState) -> bytes:
    return encode_record(json.dumps(state.to_json(), separators=(",", ":")).encode())


def _decode(record: bytes) -> AgentState | None:
    payload = decode_record(record)
    if payload is None:
        return None
    try:
        return AgentState.from_json(json.loads(payload))
    except (ValueError, TypeError, KeyError):
        return None
