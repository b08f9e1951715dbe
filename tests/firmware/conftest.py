"""Fixtures for firmware tests: a real otaforge server, a build cache, seed projects."""

from __future__ import annotations

import itertools
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from otaforge.client.management import ManagementClient
from otaforge.demo.local_server import LocalServer, ServerInfo
from otaforge.demo.seed_firmware import write_project
from otaforge.device.config import DeviceConfig
from otaforge.device.flash import MemoryFlash
from otaforge.device.flash_image import compose
from otaforge.firmware.build import BuildResult, build
from otaforge.firmware.runner import FirmwareDevice
from otaforge.formats.partition_table import PartitionTable
from tests.firmware.seed_source import Seed, load_seed

FLASH_SIZE = 8 * 1024 * 1024
_names = itertools.count(1)

@pytest.fixture(scope="session", autouse=True)
def firmware_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    cache = tmp_path_factory.mktemp("fwcache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("OTAFORGE_FIRMWARE_CACHE", str(cache))
        yield cache


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerInfo]:
    with LocalServer(tmp_path_factory.mktemp("server") / "data") as info:
        yield info


@pytest.fixture(scope="session")
def admin(server: ServerInfo) -> Iterator[ManagementClient]:
    with server.admin() as client:
        yield client


@pytest.fixture(scope="session")
def seed() -> Seed:
    return load_seed()


def write_seed_project(root: Path, seed: Seed, ca_pem: bytes) -> Path:
    """The seed's project, cut from ../shared/seed/ (the harness is the demo's)."""
    return write_project(root, ca_pem, start_ota=seed.start_ota + seed.start_ota_with_progress,
                         app_main=seed.app_main, component_register=seed.component_register,
                         partitions_csv=seed.partitions_csv, sdkconfig=seed.sdkconfig)


@dataclass
class SeedRig:
    """One fleet and device on the real server, the seed project, and its download URL."""

    server: ServerInfo
    admin: ManagementClient
    project: Path
    fleet: str
    device_id: str
    token: str
    download_url: str  # the server's per-device URL: no request header needed
    lines: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.download_url

    def build(self, version: str, **defines: str) -> BuildResult:
        return build(self.project, version=version, defines=defines)

    def publish(self, image: bytes) -> dict[str, Any]:
        release: dict[str, Any] = self.admin.publish(self.fleet, image, channel="stable")
        return release

    def device(self, factory: bytes, config: DeviceConfig | None = None,
               wall_timeout_s: float = 5.0) -> FirmwareDevice:
        table = PartitionTable.from_csv((self.project / "partitions.csv").read_text())
        image = compose(table, {"factory": factory}, flash_size=FLASH_SIZE)
        return FirmwareDevice(MemoryFlash(FLASH_SIZE, image), "esp32",
                              config or DeviceConfig(rollback=True, max_boots=4),
                              wall_timeout_s=wall_timeout_s, console=self.lines.append)


@pytest.fixture
def seed_rig(server: ServerInfo, admin: ManagementClient, seed: Seed,
             tmp_path: Path) -> Iterator[SeedRig]:
    n = next(_names)
    fleet, device_id = f"seed{n}", f"seeddev{n}"
    admin.create_fleet(fleet, "esp32", seed.partitions_csv)
    added = admin.create_device(fleet, device_id)
    project = write_seed_project(tmp_path / "seed_app", seed, server.ca_pem)
    yield SeedRig(server, admin, project, fleet, device_id, added["token"],
                  added["download_url"])


Factory = Callable[..., SeedRig]


EXAMPLE = Path(__file__).resolve().parents[2] / "firmware" / "examples" / "ota_app"
_example_names = itertools.count(1)


def example_project(tmp_path: Path, ca_pem: bytes) -> Path:
    """A copy of the example (its EXTRA_COMPONENT_DIRS points at the repository's components)
    with the server's CA as main/server_cert.pem, as the README tells a user to do."""
    root = tmp_path / "firmware" / "examples" / "ota_app"
    shutil.copytree(EXAMPLE, root)
    shutil.copytree(EXAMPLE.parents[1] / "components", tmp_path / "firmware" / "components")
    (root / "main" / "server_cert.pem").write_bytes(ca_pem)
    return root


@pytest.fixture
def example(server: ServerInfo, admin: ManagementClient, tmp_path: Path) -> dict[str, Any]:
    n = next(_example_names)
    fleet, device_id = f"ex{n}", f"exdev{n}"
    csv = (EXAMPLE / "partitions.csv").read_text()
    admin.create_fleet(fleet, "esp32", csv)
    token = admin.create_device(fleet, device_id)["token"]
    defines = {"CONFIG_OTAFORGE_SERVER_URL": f'"{server.url}"',
               "CONFIG_OTAFORGE_FLEET": f'"{fleet}"',
               "CONFIG_OTAFORGE_DEVICE_ID": f'"{device_id}"',
               "CONFIG_OTAFORGE_DEVICE_TOKEN": f'"{token}"',
               "CONFIG_OTAFORGE_SELF_TEST_TIMEOUT_MS": "2000"}
    return {"project": example_project(tmp_path, server.ca_pem), "fleet": fleet,
            "device_id": device_id, "defines": defines, "csv": csv}
