"""``otaforge demo``: the seed's update flow end to end, on built-in defaults, as values.

A real update server on loopback HTTPS (fresh CA, pinned by the device), images built and
signed by otaforge itself with a fresh RSA-3072 key (the Secure Boot v2 scheme ESP32 verifies),
and one emulated ESP32 with Secure Boot v2 (the key digest burned into its eFuses),
anti-rollback and rollback enabled, running the update agent. Each step checks that the
device and the server behaved as the seed says; the result lists every timeline event and
every step verdict. Nothing here prints: ``cli/demo.py`` renders the events as they come.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from otaforge.agent.config import AgentConfig
from otaforge.agent.httpx_fetcher import HttpxFetcher
from otaforge.agent.results import AgentEvent
from otaforge.agent.selftest import AgentFirmware
from otaforge.agent.server_api import ServerClient
from otaforge.agent.updater import Updater
from otaforge.client.management import ManagementClient
from otaforge.crypto.keys import generate_key, private_key_pem, public_key_digest, public_key_pem
from otaforge.crypto.sbv2 import sign_v2
from otaforge.demo.local_server import LocalServer, ServerInfo
from otaforge.device.config import DeviceConfig
from otaforge.device.emulator import Device
from otaforge.device.flash import MemoryFlash
from otaforge.device.flash_image import compose
from otaforge.errors import OtaforgeError
from otaforge.formats.image_builder import build_image
from otaforge.formats.partition_table import PartitionTable
from otaforge.fsutil import atomic_write, ensure_dir

# the seed's partition table (factory + two OTA slots + otadata), 8 MB flash
SEED_PARTITIONS = """\
# Name,   Type, SubType,  Offset,   Size,     Flags
nvs,      data, nvs,      0x9000,   0x6000,
otadata,  data, ota,      0xf000,   0x2000,
phy_init, data, phy,      0x11000,  0x1000,
factory,  app,  factory,  0x20000,  0x1C0000,
ota_0,    app,  ota_0,    0x1E0000, 0x1C0000,
ota_1,    app,  ota_1,    0x3A0000, 0x1C0000,
coredump, data, coredump, 0x560000, 0x10000,
"""
FLASH_SIZE = 8 * 1024 * 1024
FLEET = "demo"
DEVICE_ID = "esp32-demo-01"
IMAGE_SIZE = 0x60000
# version -> (secure_version, behaviour of the app in it)
RELEASES: dict[str, tuple[int, str]] = {
    "1.0.0": (1, "healthy"),  # factory
    "1.1.0": (1, "healthy"),
    "1.2.0": (1, "fails_self_test"),
    "1.0.1": (0, "healthy"),  # a downgrade below the burned secure_version
    "1.3.0": (1, "healthy"),  # downloaded across a power cut
}
# a release that changes only the version string of another: updated by delta
DELTA_RELEASE = ("1.3.1", "1.3.0")


@dataclass(frozen=True)
class TimelineEvent:
    """One line of the demo's timeline.

    Attributes:
        step: the step it belongs to.
        actor: ``device``, ``server`` or ``demo``.
        kind: machine name of the event.
        message: text.
        ok: for ``verdict`` events, whether the step behaved as the seed says.
    """

    step: str
    actor: str
    kind: str
    message: str
    ok: bool | None = None


@dataclass
class DemoResult:
    """Every event and whether each step passed."""

    events: list[TimelineEvent] = field(default_factory=list)
    verdicts: dict[str, bool] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when every step passed."""
        return bool(self.verdicts) and all(self.verdicts.values())


EventSink = Callable[[TimelineEvent], None]
ProgressSink = Callable[[str, int, int], None]


class _Demo:
    def __init__(self, work: Path, on_event: EventSink, on_progress: ProgressSink) -> None:
        self.work = work
        self.on_event = on_event
        self.on_progress = on_progress
        self.result = DemoResult()
        self.step = "setup"
        self.images: dict[str, bytes] = {}
        self.server_events_seen: set[str] = set()

    @staticmethod
    def secure_version(version: str) -> int:
        """The secure_version the demo builds ``version`` with."""
        return RELEASES[version][0]

    # --- timeline -------------------------------------------------------------------------

    def emit(self, actor: str, kind: str, message: str, ok: bool | None = None) -> None:
        """Record and forward one timeline event of the current step."""
        event = TimelineEvent(self.step, actor, kind, message, ok)
        self.result.events.append(event)
        self.on_event(event)

    def device_event(self, event: AgentEvent) -> None:
        """Forward an agent event (reports are shown from the server side instead)."""
        if event.kind in ("report", "report_failed", "report_refused"):
            return  # the server side shows what arrived
        self.emit("device", event.kind, event.message)

    def verdict(self, ok: bool, message: str) -> None:
        """Record whether the current step behaved as the seed says."""
        self.result.verdicts[self.step] = ok
        self.emit("demo", "verdict", message, ok)

    def server_view(self, admin: ManagementClient) -> dict[str, Any]:
        """Emit the device events the server recorded since the last call; its device detail."""
        detail: dict[str, Any] = admin.device(DEVICE_ID)
        for ev in reversed(detail.get("events", [])):
            if ev["event_id"] in self.server_events_seen:
                continue
            self.server_events_seen.add(ev["event_id"])
            extra = f" ({ev['reason']})" if ev.get("reason") else ""
            size = f" at {ev['bytes']} bytes" if ev.get("bytes") else ""
            dep = f"deployment #{ev['deployment_id']}: " if ev.get("deployment_id") else ""
            self.emit("server", "recorded", f"{dep}{ev['state']}{size}{extra}")
        return detail

    # --- setup ----------------------------------------------------------------------------

    def build(self) -> tuple[Any, bytes]:
        """Generate the signing key and the signed sample images; (key, key digest)."""
        key = generate_key("rsa3072")
        atomic_write(self.work / "signing_key.pem", private_key_pem(key), 0o600)
        for seed, (version, (secure_version, _)) in enumerate(RELEASES.items()):
            image = build_image(version=version, secure_version=secure_version, seed=seed,
                                size=IMAGE_SIZE)
            self.images[version] = sign_v2(image, [key])
            if version == DELTA_RELEASE[1]:  # same seed, same code, new version string
                new = build_image(version=DELTA_RELEASE[0], secure_version=secure_version,
                                  seed=seed, size=IMAGE_SIZE)
                self.images[DELTA_RELEASE[0]] = sign_v2(new, [key])
        digest = public_key_digest(key)
        self.emit("demo", "build", "built and signed (Secure Boot v2, RSA-3072, fresh key) "
                  + ", ".join(f"{v} (secure_version {sv})" for v, (sv, _) in RELEASES.items()))
        return key, digest

    def make_device(self, digest: bytes) -> Device:
        """The emulated ESP32: factory v1.0.0, Secure Boot v2 key burned, rollback on."""
        table = PartitionTable.from_csv(SEED_PARTITIONS)
        flash_image = compose(table, {"factory": self.images["1.0.0"]}, flash_size=FLASH_SIZE)
        flash = MemoryFlash(FLASH_SIZE, flash_image, strict=True)
        apps = AgentFirmware({v: b for v, (_, b) in RELEASES.items()})  # type: ignore[misc]
        config = DeviceConfig(rollback=True, anti_rollback=True, secure_boot_v2=True)
        device = Device(flash, "esp32", config, apps=apps)
        device.efuses.burn_key_digest(digest)
        return device


@contextmanager
def _workdir(path: Path | None) -> Iterator[Path]:
    if path is not None:
        ensure_dir(path)
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="otaforge-demo-") as tmp:
        yield Path(tmp)


def run_demo(workdir: Path | None = None, on_event: EventSink | None = None,
             on_progress: ProgressSink | None = None) -> DemoResult:
    """Run every step of the seed's flow; never raises for a misbehaving step.

    Args:
        workdir: where the server and key live (default: a temporary directory, removed).
        on_event: receives each timeline event as it happens.
        on_progress: receives (label, bytes written, image size) during downloads.

    Returns:
        The timeline and one verdict per step; ``result.ok`` only if every step passed.
    """
    demo_events = on_event or (lambda _e: None)
    progress = on_progress or (lambda _l, _d, _t: None)
    with _workdir(workdir) as work:
        demo = _Demo(work, demo_events, progress)
        try:
            with LocalServer(work / "server") as info:
                _run_steps(demo, info)
        except OtaforgeError as err:
            demo.verdict(False, f"stopped: {type(err).__name__}: {err}")
        return demo.result


def _run_steps(demo: _Demo, info: ServerInfo) -> None:
    from otaforge.demo import steps as demo_steps

    demo.step = "server"
    demo.emit("server", "start", f"update server initialised in a temporary directory and "
              f"listening on {info.url} (TLS, private CA in server_cert.pem)")
    demo.verdict(True, "server up")
    demo.step = "build"
    key, digest = demo.build()
    demo.verdict(len(demo.images) == len(RELEASES) + 1, "images built and signed")
    with info.admin() as admin, HttpxFetcher(info.ca_pem) as fetcher:
        demo.step = "fleet"
        fleet = admin.create_fleet(FLEET, "esp32", SEED_PARTITIONS,
                                   [public_key_pem(key).decode()], require_signature=True)
        token = admin.create_device(FLEET, DEVICE_ID)["token"]
        release = admin.publish(FLEET, demo.images["1.1.0"], channel="stable")
        demo.emit("server", "fleet", f"fleet {FLEET!r}: A/B partition table (ota slots of "
                  f"{fleet['ota_slot_size']} bytes), signatures required (key digest "
                  f"{fleet['key_digests'][0][:16]}...); device {DEVICE_ID} registered")
        demo.emit("server", "publish", f"published {release['version']} (secure_version "
                  f"{release['secure_version']}, signature verified) on channel 'stable'")
        demo.verdict(fleet["require_signature"] and release["signature"]["verified"],
                     "fleet requires signatures; release accepted")
        device = demo.make_device(digest)
        config = AgentConfig(info.url, FLEET, DEVICE_ID, token)
        client = ServerClient(fetcher, info.url, DEVICE_ID, token)

        def agent() -> Updater:
            """A fresh agent for the device (as after a reset)."""
            return Updater(device, client, fetcher, config, on_event=demo.device_event,
                           on_progress=lambda d, t: demo.on_progress("download", d, t))

        ctx = demo_steps.Context(demo, admin, device, agent, info)
        for step in demo_steps.STEPS:
            demo.step = step.__name__.removeprefix("step_").replace("_", "-")
            try:
                step(ctx)
            except OtaforgeError as err:
                demo.verdict(False, f"{type(err).__name__}: {err}")

