"""The seed's flow against the real server over loopback HTTPS (reliability matrix §6, E2E rows
and the agent rows that need no fault injection)."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from otaforge.agent.results import BootOutcome, Outcome
from otaforge.agent.updater import run_cycle
from otaforge.crypto.keys import generate_key
from otaforge.crypto.sbv2 import sign_v2
from otaforge.device.config import DeviceConfig
from otaforge.device.powercut import PowerCutPlan
from otaforge.errors import PowerCut, ServerError
from otaforge.formats.otadata import OtaImgState
from tests.e2e.conftest import image, signed


def _state(rig: Any) -> int:
    part = rig.device.running_partition
    return int(rig.device.ota.esp_ota_get_state_partition(part))


def test_update_confirms_and_server_records_it(rig_factory: Any) -> None:
    rig = rig_factory(factory=image("1.0.0"))
    release = rig.publish(image("1.1.0", seed=1))
    result = run_cycle(rig.agent())
    assert result.update.outcome == Outcome.INSTALLED
    assert result.after_reboot == BootOutcome.CONFIRMED
    assert rig.running() == ("1.1.0", "ota_0")
    assert _state(rig) == OtaImgState.VALID
    states = [e["state"] for e in reversed(rig.server_events())]
    assert states == ["downloading", "downloaded", "rebooting", "pending_verify", "confirmed"]
    assert rig.deployments()[0]["release_id"] == release["id"]
    assert rig.deployments()[0]["state"] == "confirmed"
    # progress is bytes read of image size, monotonic, never past 100 %
    done = [d for d, _ in rig.progress]
    assert done == sorted(done) and done[-1] == len(image("1.1.0", seed=1))
    assert all(d <= t for d, t in rig.progress)


def test_mark_valid_only_after_self_test(rig_factory: Any) -> None:
    rig = rig_factory(factory=image("1.0.0"))
    rig.publish(image("1.1.0", seed=1))
    run_cycle(rig.agent())
    kinds = rig.kinds()
    assert kinds.index("self_test") < kinds.index("confirmed")


def test_failing_self_test_rolls_back_and_server_records_rolled_back(rig_factory: Any) -> None:
    rig = rig_factory(factory=image("1.0.0"), apps={"1.1.0": "fails_self_test"})
    rig.publish(image("1.1.0", seed=1))
    result = run_cycle(rig.agent())
    assert result.after_reboot == BootOutcome.ROLLED_BACK
    assert rig.running() == ("1.0.0", "factory")
    assert rig.deployments()[0]["state"] == "rolled_back"
    assert "confirmed" not in rig.kinds()


def test_app_that_never_confirms_reverts_at_next_reset(rig_factory: Any) -> None:
    """Matrix row 62 (and 17: no new update while the app is unconfirmed)."""
    rig = rig_factory(factory=image("1.0.0"), apps={"1.1.0": "never_confirms"})
    rig.publish(image("1.1.0", seed=1))
    result = run_cycle(rig.agent())
    assert result.after_reboot == BootOutcome.UNCONFIRMED
    assert _state(rig) == OtaImgState.PENDING_VERIFY
    assert rig.agent().check_for_update().outcome == Outcome.BUSY
    assert rig.admin.device(rig.device_id)["otadata_state"] == "pending_verify"
    boot = rig.agent().reboot()
    assert boot == BootOutcome.ROLLED_BACK
    assert rig.running() == ("1.0.0", "factory")
    assert rig.deployments()[0]["state"] == "rolled_back"
    assert "confirmed" not in [e["state"] for e in rig.server_events()]


def test_same_version_is_skipped_without_download(rig_factory: Any, proxy: Any) -> None:
    """Matrix row 61: a rebuilt image with the running version is not flashed."""
    fault, ca = proxy
    rig = rig_factory(factory=image("1.0.0"), base_url=fault.url, ca_pem=ca)
    rig.publish(image("1.0.0", seed=7))  # same version string, other bytes
    slot = rig.slot_bytes("ota_0")
    for _ in range(2):
        result = rig.agent().check_for_update()
        assert (result.outcome, result.code) == (Outcome.SKIPPED, "same_version")
    assert not [r for r in fault.faults.requests if r["path"].startswith("/firmware/")]
    assert rig.slot_bytes("ota_0") == slot


def test_power_cut_mid_download_resumes_after_power_on(rig_factory: Any, proxy: Any) -> None:
    """Matrix row 48: power fails mid-transfer; the next boot resumes from the flash."""
    fault, ca = proxy
    rig = rig_factory(factory=image("1.0.0"), base_url=fault.url, ca_pem=ca)
    data = image("1.1.0", seed=1, size=0x50000)
    rig.publish(data)
    rig.device.flash.arm(PowerCutPlan(110, "torn"))
    try:
        rig.agent().check_for_update()
        raise AssertionError("power cut did not fire")
    except PowerCut:
        rig.device.flash.arm(None)
    assert rig.device.power_on().status == "running"
    assert rig.running() == ("1.0.0", "factory")
    result = run_cycle(rig.agent())
    assert result.after_reboot == BootOutcome.CONFIRMED
    assert rig.running() == ("1.1.0", "ota_0")
    resumed = [e for e in rig.events if e.kind == "resumed"]
    assert resumed and resumed[0].data["offset"] > 0
    ranges = [r for r in fault.faults.requests if "range" in r]
    assert ranges and ranges[0]["if-range"] == f'"{hashlib.sha256(data).hexdigest()}"'
    assert ranges[0]["range"] == f"bytes={resumed[0].data['offset']}-"


def test_signed_fleet_updates_with_secure_boot(rig_factory: Any) -> None:
    rig = rig_factory(factory=signed(image("1.0.0")), signed=True, require_signature=True)
    release = rig.publish(signed(image("1.1.0", seed=1)))
    result = run_cycle(rig.agent())
    assert result.after_reboot == BootOutcome.CONFIRMED
    # the check-in's image_sha256 covers the signature sector: the server knows it is current
    assert rig.agent().check_for_update().outcome == Outcome.NO_UPDATE
    assert rig.admin.device(rig.device_id)["running_sha256"] == release["sha256"]


def test_reports_are_idempotent(rig_factory: Any) -> None:
    from otaforge.errors import RefusalCode
    from otaforge.protocol.reports import Report, ReportState

    rig = rig_factory(factory=image("1.0.0"))
    client = rig.agent().client
    event = Report(ReportState.FAILED, None, "test", None, code=RefusalCode.SAME_VERSION)
    assert client.report(event) is True
    assert client.report(event) is False  # replay: recorded once
    assert len([e for e in rig.server_events() if e["event_id"] == event.event_id]) == 1


def _flip_signature(data: bytes) -> bytes:
    at = len(data) - 4096 + 200  # inside block 0 of the signature sector
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1:]


# fmt: off
UNTRUSTED = {
    "unsigned image":            lambda: image("1.1.0", seed=1),
    "signed by an unknown key":  lambda: sign_v2(image("1.1.0", seed=1),
                                                 [generate_key("rsa3072")]),
    "signature byte flipped":    lambda: _flip_signature(signed(image("1.1.0", seed=1))),
}
# fmt: on


@pytest.mark.parametrize("make", UNTRUSTED.values(), ids=UNTRUSTED.keys())
def test_untrusted_image_refused_by_secure_boot_device(rig_factory: Any, make: Any) -> None:
    """Matrix rows 27-29: the fleet accepts these (no signature policy), the device does not."""
    rig = rig_factory(factory=signed(image("1.0.0")), signed=True)
    rig.publish(make())
    result = rig.agent().check_for_update()
    assert (result.outcome, result.code) == (Outcome.REFUSED, "bad_signature")
    assert rig.running() == ("1.0.0", "factory")
    assert rig.device.ota.esp_ota_get_boot_partition().name == "factory"
    failed = [e for e in rig.server_events() if e["state"] == "failed"]
    assert failed and failed[0]["reason"].startswith("bad_signature")


def test_downgrade_below_efuse_refused_before_erase(rig_factory: Any) -> None:
    """Matrix row 30: neither the check-in nor the stock URL offers the downgrade (304); and
    fetched anyway by its /firmware URL, the device itself refuses it before erasing."""
    config = DeviceConfig(rollback=True, anti_rollback=True)
    rig = rig_factory(factory=image("1.0.0", secure_version=1), config=config)
    rig.publish(image("1.1.0", secure_version=2, seed=1))
    assert run_cycle(rig.agent()).after_reboot == BootOutcome.CONFIRMED
    assert rig.device.efuses.secure_version == 2
    agent = rig.agent()
    agent.check_in()  # the server learns the burned secure_version
    downgrade = image("1.0.5", secure_version=1, seed=2)
    with pytest.raises(ServerError) as refused:
        rig.publish(downgrade)
    assert refused.value.reason == "secure_version"
    release = rig.admin.publish(rig.fleet, downgrade, channel="stable", force=True)
    assert agent.check_for_update().outcome == Outcome.NO_UPDATE
    before = rig.slot_bytes("ota_1")
    stock = agent.fetch_stock(agent.client.stock_ota_url(rig.fleet))
    assert (stock.outcome, stock.reason) == (Outcome.NO_UPDATE, "304 Not Modified")
    direct = f"{agent.client.base_url}/firmware/{release['sha256']}.bin"
    result = agent.fetch_stock(direct)
    assert (result.outcome, result.code) == (Outcome.REFUSED, "secure_version")
    assert rig.slot_bytes("ota_1") == before
    assert rig.running() == ("1.1.0", "ota_0")


def test_stock_url_answers_304_for_running_image(rig_factory: Any) -> None:
    rig = rig_factory(factory=image("1.0.0"))
    rig.publish(image("1.1.0", seed=1))
    run_cycle(rig.agent())
    agent = rig.agent()
    result = agent.fetch_stock(agent.client.stock_ota_url(rig.fleet))
    assert (result.outcome, result.reason) == (Outcome.NO_UPDATE, "304 Not Modified")


def test_bootloader_without_rollback_is_not_reported_confirmed(rig_factory: Any) -> None:
    """Matrix row 63: state stays NEW after the first boot; no false confirmed."""
    config = DeviceConfig(rollback=True, bootloader_rollback=False)
    rig = rig_factory(factory=image("1.0.0"), config=config)
    rig.publish(image("1.1.0", seed=1))
    result = run_cycle(rig.agent())
    assert result.after_reboot == BootOutcome.UNVERIFIABLE
    states = [e["state"] for e in rig.server_events()]
    assert "confirmed" not in states and "pending_verify" in states


def test_signed_app_without_secure_boot_refuses_other_key(rig_factory: Any) -> None:
    """Signed-app updates (no hardware secure boot): esp_ota_end rejects another key's image;
    the agent reports the device's reason as a refusal."""
    config = DeviceConfig(rollback=True, signed_app=True)
    rig = rig_factory(factory=signed(image("1.0.0")), config=config)
    rig.publish(sign_v2(image("1.1.0", seed=1), [generate_key("rsa3072")]))
    result = rig.agent().check_for_update()
    assert (result.outcome, result.code) == (Outcome.REFUSED, "bad_signature"), result.reason
    assert rig.device.ota.esp_ota_get_boot_partition().name == "factory"
    rig.publish(signed(image("1.2.0", seed=2)))
    assert run_cycle(rig.agent()).after_reboot == BootOutcome.CONFIRMED


@pytest.mark.parametrize("behaviour", ["hangs", "panics"])
def test_app_that_hangs_or_panics_is_rolled_back_by_the_bootloader(rig_factory: Any,
                                                                   behaviour: str) -> None:
    """The task watchdog (hang) or a panic resets the new app before it can confirm: the
    bootloader rolls back and the agent, in the old app, reports rolled_back."""
    rig = rig_factory(factory=image("1.0.0"), apps={"1.1.0": behaviour})
    rig.publish(image("1.1.0", seed=1))
    result = run_cycle(rig.agent())
    assert result.after_reboot == BootOutcome.ROLLED_BACK
    assert rig.running() == ("1.0.0", "factory")
    assert rig.deployments()[0]["state"] == "rolled_back"
    assert rig.device.last_result is not None and rig.device.last_result.resets
