"""End-to-end rig: the real update server (uvicorn, HTTPS, private CA) on loopback, an
optional fault-injecting HTTPS proxy in front of it, and emulated ESP32s running the agent.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import pytest

from otaforge.agent.config import AgentConfig
from otaforge.agent.httpx_fetcher import HttpxFetcher
from otaforge.agent.results import AgentEvent
from otaforge.agent.selftest import AgentFirmware
from otaforge.agent.server_api import ServerClient
from otaforge.agent.updater import Updater
from otaforge.client.management import ManagementClient
from otaforge.crypto.keys import generate_key, public_key_digest, public_key_pem
from otaforge.crypto.sbv2 import sign_v2
from otaforge.demo.local_server import LocalServer, ServerInfo
from otaforge.device.emulator import Behaviour, Device, DeviceConfig, compose_flash
from otaforge.device.flash import MemoryFlash
from otaforge.formats.image_builder import build_image
from otaforge.formats.partition_table import PartitionTable
from tests.agent.faultserver import FaultServer, make_ca

# the seed's layout, with 1 MiB slots so an "oversized" image stays cheap to build
PARTITIONS = """\
nvs,      data, nvs,     0x9000,   0x6000,
otadata,  data, ota,     0xf000,   0x2000,
phy_init, data, phy,     0x11000,  0x1000,
factory,  app,  factory, 0x20000,  0x100000,
ota_0,    app,  ota_0,   0x120000, 0x100000,
ota_1,    app,  ota_1,   0x220000, 0x100000,
"""
SLOT = 0x100000
FLASH_SIZE = 4 * 1024 * 1024
IMAGE_SIZE = 0x30000
_names = itertools.count(1)


@lru_cache(maxsize=64)
def image(version: str, secure_version: int = 0, seed: int = 0, size: int = IMAGE_SIZE,
          chip: str = "esp32") -> bytes:
    """A deterministic unsigned app image."""
    return build_image(version=version, secure_version=secure_version, seed=seed, size=size,
                       chip=chip)


@lru_cache(maxsize=1)
def signing_key() -> Any:
    return generate_key("rsa3072")


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerInfo]:
    with LocalServer(tmp_path_factory.mktemp("server") / "data") as info:
        yield info


@pytest.fixture(scope="session")
def admin(server: ServerInfo) -> Iterator[ManagementClient]:
    with server.admin() as client:
        yield client


@dataclass
class Rig:
    """One fleet, one device, one agent; optionally behind the fault proxy."""

    server: ServerInfo
    admin: ManagementClient
    fleet: str
    device_id: str
    token: str
    device: Device
    base_url: str
    ca_pem: bytes
    events: list[AgentEvent] = field(default_factory=list)
    progress: list[tuple[int, int]] = field(default_factory=list)
    fetchers: list[HttpxFetcher] = field(default_factory=list)

    def agent(self, **config_kw: Any) -> Updater:
        """A fresh agent (as after a reset: all it knows is in flash)."""
        fetcher = HttpxFetcher(self.ca_pem)
        self.fetchers.append(fetcher)
        client = ServerClient(fetcher, self.base_url, self.device_id, self.token)
        config = AgentConfig(self.base_url, self.fleet, self.device_id, self.token,
                             **config_kw)
        return Updater(self.device, client, fetcher, config, on_event=self.events.append,
                       on_progress=lambda d, t: self.progress.append((d, t)))

    def publish(self, data: bytes) -> dict[str, Any]:
        release: dict[str, Any] = self.admin.publish(self.fleet, data, channel="stable")
        return release

    def kinds(self) -> list[str]:
        return [e.kind for e in self.events]

    def deployments(self) -> list[dict[str, Any]]:
        detail: dict[str, Any] = self.admin.device(self.device_id)
        deps: list[dict[str, Any]] = detail["deployments"]
        return deps

    def server_events(self) -> list[dict[str, Any]]:
        detail: dict[str, Any] = self.admin.device(self.device_id)
        events: list[dict[str, Any]] = detail["events"]
        return events

    def slot_bytes(self, name: str, n: int = 0x2000) -> bytes:
        part = self.device.partition_table().find(name)
        assert part is not None
        return self.device.flash.read(part.offset, n)

    def running(self) -> tuple[str | None, str | None]:
        desc, part = self.device.running_desc, self.device.running_partition
        return (desc.version if desc else None), (part.name if part else None)

    def close(self) -> None:
        for fetcher in self.fetchers:
            fetcher.close()


def make_rig(server: ServerInfo, admin: ManagementClient, *, factory: bytes,
             base_url: str | None = None, ca_pem: bytes | None = None,
             apps: dict[str, Behaviour] | None = None, signed: bool = False,
             require_signature: bool = False, config: DeviceConfig | None = None) -> Rig:
    """A new fleet with one registered device booted from ``factory``."""
    n = next(_names)
    fleet, device_id = f"f{n}", f"dev{n}"
    keys = [public_key_pem(signing_key()).decode()] if require_signature else []
    admin.create_fleet(fleet, "esp32", PARTITIONS, keys, require_signature=require_signature)
    token = admin.create_device(fleet, device_id)["token"]
    table = PartitionTable.from_csv(PARTITIONS)
    flash = MemoryFlash(FLASH_SIZE, compose_flash(table, {"factory": factory}), strict=True)
    cfg = config or DeviceConfig(rollback=True, secure_boot_v2=signed)
    device = Device(flash, "esp32", cfg, apps=AgentFirmware(apps or {}))
    if signed:
        device.efuses.burn_key_digest(public_key_digest(signing_key()))
    boot = device.power_on()
    assert boot.status == "running"
    return Rig(server, admin, fleet, device_id, token, device, base_url or server.url,
               ca_pem or server.ca_pem)


def signed(data: bytes) -> bytes:
    return sign_v2(data, [signing_key()])


@pytest.fixture
def rig_factory(server: ServerInfo, admin: ManagementClient) -> Iterator[Any]:
    rigs: list[Rig] = []

    def factory(**kw: Any) -> Rig:
        rig = make_rig(server, admin, **kw)
        rigs.append(rig)
        return rig

    yield factory
    for rig in rigs:
        rig.close()


@pytest.fixture
def proxy(server: ServerInfo) -> Iterator[tuple[FaultServer, bytes]]:
    """A fault-injecting HTTPS proxy in front of the server; yields it and its CA PEM."""
    _ca, leaf, ca_pem = make_ca()
    with FaultServer(leaf, upstream=server.url, upstream_ca=server.ca_pem) as srv:
        yield srv, ca_pem

