"""The demo's steps after setup, in order; each ends with one verdict (see :mod:`.run`)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from otaforge.agent.results import BootOutcome, Outcome
from otaforge.agent.updater import Updater
from otaforge.client.management import ManagementClient
from otaforge.demo.local_server import ServerInfo
from otaforge.demo.run import DELTA_RELEASE, DEVICE_ID, FLEET
from otaforge.device.emulator import Device
from otaforge.device.powercut import PowerCutPlan
from otaforge.errors import PowerCut, ServerError
from otaforge.formats.otadata import OtaImgState

if TYPE_CHECKING:
    from otaforge.demo.run import _Demo

POWER_CUT_AT_OP = 120  # flash operations into the download (~half of a 384 KiB image)
DELTA_WAIT_S = 60.0  # how long the delta step waits for the server's patch


@dataclass
class Context:
    """What every step works with."""

    demo: _Demo
    admin: ManagementClient
    device: Device
    agent: Callable[[], Updater]
    info: ServerInfo


def _running(ctx: Context) -> tuple[str | None, str | None, int | None]:
    dev = ctx.device
    part = dev.running_partition
    version = dev.running_desc.version if dev.running_desc else None
    state = None
    if part is not None and part.is_ota_slot:
        state = dev.ota.esp_ota_get_state_partition(part)
    return version, part.name if part else None, state


def _deployment_states(detail: dict[str, Any], release_id: int) -> list[str]:
    return [str(d["state"]) for d in detail.get("deployments", [])
            if d["release_id"] == release_id]


def _publish(ctx: Context, version: str) -> dict[str, Any]:
    release: dict[str, Any] = ctx.admin.publish(FLEET, ctx.demo.images[version],
                                                channel="stable")
    ctx.demo.emit("server", "publish", f"published {version} (secure_version "
                  f"{release['secure_version']}) on channel 'stable'")
    return release


def step_factory_boot(ctx: Context) -> None:
    """Boot an emulated ESP32 from factory (v1.0.0)."""
    result = ctx.device.power_on()
    ctx.demo.emit("device", "power_on", f"power on: bootloader: {result.reason}")
    ctx.agent().on_boot()
    version, part, _ = _running(ctx)
    ctx.demo.verdict(version == "1.0.0" and part == "factory",
                     f"runs {version} from {part} (expected 1.0.0 from factory)")


def step_update(ctx: Context) -> None:
    """Update to v1.1.0 with progress, reboot, self-test, mark valid, report confirmed."""
    agent = ctx.agent()
    result = agent.check_for_update()
    ctx.demo.server_view(ctx.admin)
    if result.outcome != Outcome.INSTALLED:
        ctx.demo.verdict(False, f"expected 1.1.0 to install, got {result.outcome}: "
                         f"{result.reason}")
        return
    boot = ctx.agent().reboot()
    detail = ctx.demo.server_view(ctx.admin)
    version, part, state = _running(ctx)
    deployments = [d["state"] for d in detail.get("deployments", [])]
    fuse = ctx.device.efuses.secure_version
    ok = (boot == BootOutcome.CONFIRMED and version == "1.1.0" and state == OtaImgState.VALID
          and fuse == ctx.demo.secure_version("1.1.0") and "confirmed" in deployments)
    ctx.demo.verdict(ok, f"runs {version} from {part} ({_state(state)}), eFuse secure_version "
                     f"{fuse}, server deployment {deployments[0] if deployments else '-'}")


def _state(state: int | None) -> str:
    return OtaImgState(state).name if state is not None else "factory"


def step_rollback(ctx: Context) -> None:
    """Publish v1.2.0 that fails its self-test: it rolls back to v1.1.0, server: rolled_back."""
    release = _publish(ctx, "1.2.0")
    result = ctx.agent().check_for_update()
    ctx.demo.server_view(ctx.admin)
    if result.outcome != Outcome.INSTALLED:
        ctx.demo.verdict(False, f"expected 1.2.0 to install, got {result.outcome}")
        return
    boot = ctx.agent().reboot()
    again = ctx.agent().check_for_update()
    detail = ctx.demo.server_view(ctx.admin)
    version, part, state = _running(ctx)
    rolled_back = "rolled_back" in _deployment_states(detail, release["id"])
    ok = (boot == BootOutcome.ROLLED_BACK and version == "1.1.0"
          and state == OtaImgState.VALID and rolled_back and again.outcome == Outcome.SKIPPED)
    ctx.demo.verdict(ok, f"back on {version} from {part} ({_state(state)}); server recorded "
                     f"{'rolled_back' if rolled_back else 'no rollback'}; offered again: "
                     f"{again.outcome} (no reflash loop)")


def step_anti_rollback(ctx: Context) -> None:
    """Publish a downgrade below the burned secure_version: the server refuses to point the
    channel at it; forced there, neither the check-in nor the stock URL offers it."""
    image = ctx.demo.images["1.0.1"]
    try:
        ctx.admin.publish(FLEET, image, channel="stable")
        refused: ServerError | None = None
        ctx.demo.emit("server", "publish", "published 1.0.1 on channel 'stable' (not refused)")
    except ServerError as err:
        refused = err
        ctx.demo.emit("server", "publish_refused", f"publish 1.0.1 refused "
                      f"({err.reason}): a device on 'stable' would refuse it")
    release = ctx.admin.publish(FLEET, image, channel="stable", force=True)
    ctx.demo.emit("server", "publish", f"published 1.0.1 (secure_version "
                  f"{release['secure_version']}) on channel 'stable' with --force")
    slot = ctx.device.ota.esp_ota_get_next_update_partition(None)
    assert slot is not None
    before = ctx.device.flash.read(slot.offset, 0x10000)
    agent = ctx.agent()
    managed = agent.check_for_update()
    stock_url = agent.client.stock_ota_url(FLEET)
    ctx.demo.emit("device", "stock", f"and the stock ESP-IDF way: GET {stock_url}")
    stock = agent.fetch_stock(stock_url)
    ctx.demo.server_view(ctx.admin)
    version, _, state = _running(ctx)
    untouched = ctx.device.flash.read(slot.offset, 0x10000) == before
    ok = (refused is not None and refused.reason == "secure_version"
          and managed.outcome == Outcome.NO_UPDATE and stock.outcome == Outcome.NO_UPDATE
          and version == "1.1.0" and state == OtaImgState.VALID and untouched)
    ctx.demo.verdict(ok, f"publish refused without --force; then neither the check-in nor "
                     f"the stock URL offered it ({stock.reason or stock.outcome}); "
                     f"{slot.name} untouched; still {version} ({_state(state)})")


def step_power_cut(ctx: Context) -> None:
    """Cut the power mid-download, power on again, resume from what is written."""
    _publish(ctx, "1.3.0")
    flash = ctx.device.flash
    arm = getattr(flash, "arm", None)
    if arm is None:
        ctx.demo.verdict(False, "this flash cannot inject power cuts")
        return
    arm(PowerCutPlan(POWER_CUT_AT_OP, "torn"))
    try:
        ctx.agent().check_for_update()
        ctx.demo.verdict(False, "the power cut never happened")
        return
    except PowerCut as cut:
        arm(None)
        ctx.demo.emit("device", "power_cut", f"POWER CUT during the download ({cut})")
    result = ctx.device.power_on()
    ctx.demo.emit("device", "power_on", f"power on: bootloader: {result.reason}")
    agent = ctx.agent()
    agent.on_boot()
    update = agent.check_for_update()
    resumed = [e.kind for e in ctx.demo.result.events if e.step == ctx.demo.step]
    ctx.demo.server_view(ctx.admin)
    if update.outcome != Outcome.INSTALLED:
        ctx.demo.verdict(False, f"expected 1.3.0 to install after the cut, got "
                         f"{update.outcome}: {update.reason}")
        return
    boot = ctx.agent().reboot()
    ctx.demo.server_view(ctx.admin)
    version, part, state = _running(ctx)
    ok = "resumed" in resumed and boot == BootOutcome.CONFIRMED and version == "1.3.0"
    ctx.demo.verdict(ok, f"resumed with Range after the cut; runs {version} from {part} "
                     f"({_state(state)})")


def step_stock_304(ctx: Context) -> None:
    """A stock esp_https_ota fetch of /ota/{fleet}/{device}.bin: 304 for the running image."""
    agent = ctx.agent()
    url = agent.client.stock_ota_url(FLEET)
    result = agent.fetch_stock(url)
    version, _, _ = _running(ctx)
    ctx.demo.verdict(result.outcome == Outcome.NO_UPDATE and version == "1.3.0",
                     f"GET {url.split('/ota/', 1)[-1]}: {result.reason or result.outcome}")


def _delta_made(ctx: Context, target_id: int, base_id: int) -> dict[str, Any] | None:
    """The delta base -> target once the server has made it (None after DELTA_WAIT_S)."""
    deadline = time.monotonic() + DELTA_WAIT_S
    while time.monotonic() < deadline:
        for delta in ctx.admin.deltas(FLEET)["deltas"]:
            if (delta["base_release_id"], delta["target_release_id"]) == (base_id, target_id) \
                    and delta["state"] not in ("pending", "running"):
                found: dict[str, Any] = delta
                return found
        time.sleep(0.05)
    return None


def step_delta(ctx: Context) -> None:
    """Publish 1.3.1 (only the version string changed): the server makes an esp_delta_ota
    patch from what the device runs, the device applies it, the server counts the bytes
    saved."""
    new_version, base_version = DELTA_RELEASE
    base_id = next(r["id"] for r in ctx.admin.releases(FLEET) if r["version"] == base_version)
    release = _publish(ctx, new_version)
    delta = _delta_made(ctx, release["id"], base_id)
    if delta is None or delta["state"] != "ready":
        ctx.demo.verdict(False, f"no delta was made: {delta}")
        return
    full = len(ctx.demo.images[new_version])
    ctx.demo.emit("server", "delta", f"made an esp_delta_ota patch from the running release: "
                  f"{delta['size']} bytes, {100 * delta['size'] / full:.2f}% of the "
                  f"{full}-byte image (detools sequential bsdiff + heatshrink, 64-byte header)")
    update = ctx.agent().check_for_update()
    used = [e.kind for e in ctx.demo.result.events if e.step == ctx.demo.step]
    ctx.demo.server_view(ctx.admin)
    if update.outcome != Outcome.INSTALLED:
        ctx.demo.verdict(False, f"expected {new_version} to install, got {update.outcome}: "
                         f"{update.reason}")
        return
    boot = ctx.agent().reboot()
    ctx.demo.server_view(ctx.admin)
    stats = ctx.admin.deltas(FLEET)
    saved = stats["per_device"].get(DEVICE_ID, 0)
    ctx.demo.emit("server", "saved", f"bytes saved by deltas: {saved} for {DEVICE_ID}, "
                  f"{stats['saved_bytes']} in fleet {FLEET!r}")
    version, part, state = _running(ctx)
    ok = ("delta" in used and "download" not in used and boot == BootOutcome.CONFIRMED
          and version == new_version and saved == full - delta["size"] > 0)
    ctx.demo.verdict(ok, f"updated by delta; runs {version} from {part} ({_state(state)}); "
                     f"{saved} bytes not sent")


def step_erase_otadata(ctx: Context) -> None:
    """``idf.py erase-otadata``: the next boot is the factory app."""
    ctx.device.erase_otadata()
    ctx.demo.emit("device", "erase_otadata", "erase-otadata: both otadata sectors erased")
    agent = ctx.agent()
    agent.reboot()
    agent.check_in()
    detail = ctx.demo.server_view(ctx.admin)
    version, part, _ = _running(ctx)
    ctx.demo.verdict(version == "1.0.0" and part == "factory"
                     and detail.get("running_partition") == "factory",
                     f"boots {version} from {part}; server sees it running "
                     f"{detail.get('running_version')} on {detail.get('running_partition')}")


def step_server_view(ctx: Context) -> None:
    """What the server learned: every deployment of this device and how it ended."""
    versions = {r["id"]: r["version"] for r in ctx.admin.releases(FLEET)}
    detail = ctx.admin.device(DEVICE_ID)
    ended: dict[str, list[str]] = {}
    for dep in reversed(detail.get("deployments", [])):
        version = versions.get(dep["release_id"], "?")
        ended.setdefault(version, []).append(dep["state"])
        reason = f" ({dep['reason']})" if dep.get("reason") else ""
        ctx.demo.emit("server", "deployment", f"deployment #{dep['id']}: {version} -> "
                      f"{dep['state']}{reason}")
    ctx.demo.emit("server", "device", f"device {DEVICE_ID}: running "
                  f"{detail.get('running_version')} on {detail.get('running_partition')}, "
                  f"eFuse secure_version {detail.get('efuse_secure_version')}")
    ok = ("confirmed" in ended.get("1.1.0", []) and "rolled_back" in ended.get("1.2.0", [])
          and "confirmed" in ended.get("1.3.0", []))
    ctx.demo.verdict(ok, "server recorded 1.1.0 confirmed, 1.2.0 rolled back, 1.3.0 "
                     "confirmed")


SEED_FLEET, SEED_DEVICE = "demo-seed", "esp32-seed-01"
SEED_SELF_TEST_FAILS = False  # the demo's checks test flips it: the step must then fail


def step_seed_firmware(ctx: Context) -> None:
    """The seed's own C code (start_ota(), the app_main() rollback check), compiled with
    gcc against otaforge's ESP-IDF layer, updates an emulated ESP32 from the server."""
    from otaforge.demo.seed_firmware import seed_text, write_shipped_project
    from otaforge.device.config import DeviceConfig
    from otaforge.device.flash import MemoryFlash
    from otaforge.device.flash_image import compose
    from otaforge.firmware.build import build
    from otaforge.firmware.runner import FirmwareDevice
    from otaforge.formats.partition_table import PartitionTable

    csv = seed_text("partitions.csv")
    ctx.admin.create_fleet(SEED_FLEET, "esp32", csv)
    url = ctx.admin.create_device(SEED_FLEET, SEED_DEVICE)["download_url"]
    ctx.demo.emit("server", "fleet", f"fleet {SEED_FLEET!r} with the seed's partition table; "
                  f"device {SEED_DEVICE}: download URL needing no header (start_ota(url) "
                  "sets only url and cert_pem)")
    project = write_shipped_project(ctx.demo.work / "seed_app", ctx.info.ca_pem)
    defines = {"CONFIG_SEED_OTA_URL": f'"{url}"'}
    factory = build(project, version="1.0.0", defines=defines)
    fail = {"CONFIG_SEED_SELF_TEST_FAIL": "y"} if SEED_SELF_TEST_FAILS else {}
    update = build(project, version="2.0.0", defines={**defines, **fail})
    ctx.demo.emit("demo", "build", f"compiled the seed's ota.c and app_main() unchanged "
                  f"(gcc, ESP-IDF warning flags): 1.0.0 in factory, 2.0.0 "
                  f"({len(update.image)} bytes) published")
    ctx.admin.publish(SEED_FLEET, update.image, channel="stable")
    table = PartitionTable.from_csv(csv)
    image = compose(table, {"factory": factory.image}, flash_size=8 * 1024 * 1024)

    def console(line: str) -> None:
        if " ota: " in line or " seed_app: " in line:
            ctx.demo.emit("device", "console", line)

    device = FirmwareDevice(MemoryFlash(8 * 1024 * 1024, image), "esp32",
                            DeviceConfig(rollback=True, max_boots=4), console=console)
    device.power_on()
    ends = [(b.partition, b.version, b.ended) for b in device.boots]
    slot = device.partition("ota_0")
    last = device.boots[-1] if device.boots else None
    ok = (ends == [("factory", "1.0.0", "software reset"), ("ota_0", "2.0.0", "idle")]
          and last is not None and last.state_after == OtaImgState.VALID
          and device.flash.read(slot.offset, len(update.image)) == update.image)
    path = " -> ".join(f"{p} {v} ({e})" for p, v, e in ends)
    ctx.demo.verdict(ok, f"{path}; 2.0.0 validated by the seed's app_main"
                     if ok else f"{path}: expected factory 1.0.0 -> ota_0 2.0.0 validated")


STEPS: tuple[Callable[[Context], None], ...] = (
    step_factory_boot, step_update, step_rollback, step_anti_rollback, step_power_cut,
    step_stock_304, step_delta, step_erase_otadata, step_server_view, step_seed_firmware,
)
